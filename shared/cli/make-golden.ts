// Regenerates shared/golden/: the seeded tiny model (float32 and int8 files) and the reference's
// greedy outputs on the golden sessions. Run only when the model definition changes on purpose
// (that is a format version change); golden.test.ts proves the committed data still holds.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  GOLDEN_SESSIONS,
  GOLDEN_TOLERANCES,
  initRandom,
  preset,
  readWeights,
  ReferenceEdge,
  ReferenceExperts,
  ReferenceModel,
  runGoldenSession,
  writeWeights,
  type GoldenFile,
  type QuantScheme,
} from '../src/index.ts';

export const GOLDEN_DIR = new URL('../golden/', import.meta.url).pathname;
export const GOLDEN_SEED = 1; // of seeds 1-24, the one whose greedy decisions have the widest logit margins
export const GOLDEN_SCHEMES: QuantScheme[] = ['f32', 'int8'];

export function goldenModelBytes(scheme: QuantScheme): Uint8Array {
  const config = preset('tiny');
  return writeWeights(config, initRandom(config, GOLDEN_SEED), { scheme });
}

export async function goldenFor(bytes: Uint8Array, scheme: QuantScheme, file: string): Promise<GoldenFile> {
  const w = readWeights(bytes);
  const model = new ReferenceModel(w.config, w.params());
  const sessions = [];
  for (const spec of GOLDEN_SESSIONS)
    sessions.push(
      await runGoldenSession(
        w.config,
        new ReferenceEdge(model),
        new ReferenceExperts(model),
        spec,
        model.initialState(),
      ),
    );
  return {
    description:
      'Greedy outputs of the float32 reference on the seeded tiny model (weights dequantized from the file). ' +
      'Every execution path must reproduce tokens and experts exactly, gates and logits checksums within tolerances.',
    model: { preset: 'tiny', seed: GOLDEN_SEED, scheme, file },
    tolerances: GOLDEN_TOLERANCES,
    sessions,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const scheme of GOLDEN_SCHEMES) {
    const file = `tiny-${scheme}.safetensors`;
    const bytes = goldenModelBytes(scheme);
    writeFileSync(join(GOLDEN_DIR, file), bytes);
    const g = await goldenFor(bytes, scheme, file);
    writeFileSync(join(GOLDEN_DIR, `tiny-${scheme}.golden.json`), JSON.stringify(g, null, 1) + '\n');
    console.log(`${file}: ${bytes.length} bytes; ${g.sessions.length} sessions`);
  }
}
