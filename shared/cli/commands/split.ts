import { join } from 'node:path';
import { splitWeights } from '../../src/index.ts';
import {
  intOption,
  loadWeights,
  mib,
  onePath,
  requireString,
  UsageError,
  writeOut,
  type Command,
} from '../command.ts';

/** "0-3,4-7" or "0,2;1,3" → [[0,1,2,3],[4,5,6,7]] ... groups separated by ';' or '/', ranges with '-'. */
export function parseGroups(text: string): number[][] {
  return text.split(/[;/]/).map((g) =>
    g.split(',').flatMap((part) => {
      const m = /^\s*(\d+)(?:\s*-\s*(\d+))?\s*$/.exec(part);
      if (!m) throw new UsageError(`--groups: expected ids or ranges like 0-3,5, found "${part}"`);
      const a = Number(m[1]);
      const b = m[2] === undefined ? a : Number(m[2]);
      if (b < a) throw new UsageError(`--groups: range "${part}" runs backwards`);
      return Array.from({ length: b - a + 1 }, (_, i) => a + i);
    }),
  );
}

export const split: Command = {
  name: 'split',
  summary: 'split a model into an edge file and N expert-shard files',
  usage: `switchyard split FILE -o DIR (--shards N | --groups "0-7;8-15")

  --shards N       N contiguous, near-equal groups of experts
  --groups LIST    explicit groups, separated by ';', each ids or ranges like 0-3,6
  -o, --out DIR    writes DIR/edge.safetensors and DIR/experts-A-B.safetensors`,
  options: { out: { type: 'string', short: 'o' }, shards: { type: 'string' }, groups: { type: 'string' } },
  run(v, pos) {
    const path = onePath(pos, 'weights file');
    const dir = requireString(v, 'out', 'an output directory');
    if ((v.shards === undefined) === (v.groups === undefined))
      throw new UsageError('expected exactly one of --shards and --groups');
    const w = loadWeights(path, true);
    const plan =
      v.groups !== undefined
        ? parseGroups(v.groups as string)
        : intOption('shards', v.shards as string, 1, 1);
    const r = splitWeights(w, plan);
    writeOut(join(dir, 'edge.safetensors'), r.edge);
    console.log(`wrote ${join(dir, 'edge.safetensors')}: ${mib(r.edge.length)}`);
    for (const s of r.shards) {
      const contiguous = s.experts.every((e, i) => e === s.experts[0] + i);
      const ids = contiguous ? `${s.experts[0]}-${s.experts.at(-1)}` : s.experts.join('_');
      const name = `experts-${ids}.safetensors`;
      writeOut(join(dir, name), s.bytes);
      console.log(`wrote ${join(dir, name)}: ${mib(s.bytes.length)} (experts ${s.experts.join(', ')})`);
    }
  },
};
