import { QUANT_SCHEMES } from '../../src/index.ts';
import {
  loadWeights,
  mib,
  onePath,
  oneOf,
  quantizeWithProgress,
  requireString,
  writeOut,
  type Command,
} from '../command.ts';

export const quantize: Command = {
  name: 'quantize',
  summary: 're-store a model as int8 (per-channel scales), optionally with 2:4 sparsity',
  usage: `switchyard quantize FILE -o OUT [--scheme int8|int8-2:4|f32]

  --scheme S       int8 (default): every matrix int8 with one scale per output row;
                   int8-2:4: also keep 2 of every 4 weights along the input (not the lookup tables);
                   f32: dequantize back to float32
  -o, --out FILE   the file to write`,
  options: { out: { type: 'string', short: 'o' }, scheme: { type: 'string' } },
  run(v, pos) {
    const path = onePath(pos, 'weights file');
    const out = requireString(v, 'out', 'an output path');
    const scheme = oneOf('scheme', (v.scheme as string) ?? 'int8', QUANT_SCHEMES);
    const w = loadWeights(path, true);
    const bytes = quantizeWithProgress(w.config, (s) => w.tensor(s.name), scheme, w.shard);
    writeOut(out, bytes);
    console.log(`wrote ${out}: ${mib(bytes.length)} (${scheme}; was ${mib(w.bytes.length)})`);
  },
};
