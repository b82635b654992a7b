import { loadWeights, mib, UsageError, type Command } from '../command.ts';

export const verify: Command = {
  name: 'verify',
  summary: 'check every tensor of one or more weights files against its checksum, names and shapes',
  usage: `switchyard verify FILE [FILE ...]

  Exits 1 at the first bad file, naming the tensor, what was expected and what was found.`,
  options: {},
  run(_v, pos) {
    if (!pos.length) throw new UsageError('expected at least one weights file, found none');
    for (const path of pos) {
      const w = loadWeights(path, true);
      console.log(
        `ok ${path}: ${w.entries.length} entries (${w.names().length} tensors), checksums match, ${mib(w.bytes.length)}, shard ${w.shard.kind}`,
      );
    }
  },
};
