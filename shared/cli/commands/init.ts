import { readFileSync } from 'node:fs';
import {
  countParams,
  initTensor,
  parseConfig,
  preset,
  PRESET_NAMES,
  QUANT_SCHEMES,
  type ModelConfig,
} from '../../src/index.ts';
import {
  intOption,
  mib,
  millions,
  oneOf,
  quantizeWithProgress,
  requireString,
  UsageError,
  writeOut,
  type Command,
} from '../command.ts';

export const init: Command = {
  name: 'init',
  summary: 'create a seeded random model from a preset or a config file',
  usage: `switchyard init (--preset NAME | --config FILE) [--seed N] [--scheme f32|int8|int8-2:4] -o FILE

  --preset NAME    one of: ${PRESET_NAMES.join(', ')}
  --config FILE    a JSON model config (fields in shared/FORMAT.md)
  --seed N         random seed (default 0); the same seed gives the same file
  --scheme S       how matrices are stored: ${QUANT_SCHEMES.join(', ')} (default int8)
  -o, --out FILE   the weights file to write`,
  options: {
    preset: { type: 'string' },
    config: { type: 'string' },
    seed: { type: 'string' },
    scheme: { type: 'string' },
    out: { type: 'string', short: 'o' },
  },
  run(v) {
    const out = requireString(v, 'out', 'an output path');
    if ((v.preset === undefined) === (v.config === undefined))
      throw new UsageError('expected exactly one of --preset and --config');
    let config: ModelConfig;
    if (typeof v.config === 'string') {
      let json: unknown;
      try {
        json = JSON.parse(readFileSync(v.config, 'utf8'));
      } catch (e) {
        throw new UsageError(`--config: cannot read JSON from "${v.config}": ${(e as Error).message}`);
      }
      config = parseConfig(json, v.config);
    } else config = preset(v.preset as string);
    const seed = intOption('seed', v.seed as string | undefined, 0);
    const scheme = oneOf('scheme', (v.scheme as string) ?? 'int8', QUANT_SCHEMES);
    // Tensors are drawn one at a time inside the quantize loop, so peak memory is the stored file plus one tensor.
    const bytes = quantizeWithProgress(
      config,
      (s) => ({ shape: s.shape, data: initTensor(s, seed) }),
      scheme,
    );
    writeOut(out, bytes);
    const n = countParams(config);
    console.log(
      `wrote ${out}: ${mib(bytes.length)}, ${millions(n.total)} parameters, seed ${seed}, ${scheme}`,
    );
  },
};
