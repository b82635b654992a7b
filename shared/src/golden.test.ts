import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GOLDEN_DIR, GOLDEN_SCHEMES, goldenFor, goldenModelBytes } from '../cli/make-golden.ts';
import { compareGolden, GOLDEN_SESSIONS, type GoldenFile } from './golden.ts';
import { readWeights } from './weights/index.ts';

describe.each(GOLDEN_SCHEMES)('golden cases, %s model', (scheme) => {
  const file = `tiny-${scheme}.safetensors`;
  const bytes = new Uint8Array(readFileSync(join(GOLDEN_DIR, file)));
  const golden: GoldenFile = JSON.parse(readFileSync(join(GOLDEN_DIR, `tiny-${scheme}.golden.json`), 'utf8'));

  it('the committed weights are what init + quantize produce for the seed, byte for byte', () => {
    expect(Buffer.compare(goldenModelBytes(scheme), bytes)).toBe(0);
    expect(readWeights(bytes).config.experts.count).toBe(4);
  });

  it('covers every golden session and routes to every expert', () => {
    expect(golden.sessions.map((s) => s.name)).toEqual(GOLDEN_SESSIONS.map((s) => s.name));
    const used = new Set(
      golden.sessions.flatMap((s) => s.turns.flatMap((t) => t.steps.flatMap((x) => x.experts))),
    );
    expect(used.size).toBe(4);
  });

  it('the reference still produces the committed outputs', async () => {
    const again = await goldenFor(bytes, scheme, file);
    for (const [i, s] of golden.sessions.entries()) {
      expect(compareGolden(s, again.sessions[i], { gate: 1e-7, logits_checksum: 1e-7 })).toEqual([]);
      expect(again.sessions[i].turns.map((t) => t.tokens)).toEqual(s.turns.map((t) => t.tokens));
    }
  });

  it('compareGolden reports a path that diverges', async () => {
    const s = structuredClone(golden.sessions[0]);
    s.turns[0].steps[2].token += 1;
    s.turns[0].steps[3].gates[0] += 0.01;
    const diff = compareGolden(golden.sessions[0], s);
    expect(diff.map((d) => [d.step, d.what.split(':')[0]])).toEqual([
      [3, 'token'],
      [4, 'gate 0'],
    ]);
  });
});
