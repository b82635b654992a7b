import { countParams, numel, paramSpecs, type QuantScheme } from '../../src/index.ts';
import { loadWeights, mib, millions, onePath, type Command } from '../command.ts';

export const inspect: Command = {
  name: 'inspect',
  summary: 'show a weights file: config, shard, tensors, sizes, parameter counts, fraction active per step',
  usage: `switchyard inspect FILE [--tensors] [--json]

  --tensors   list every tensor (name, scheme, shape, stored bytes)
  --json      machine-readable output`,
  options: { tensors: { type: 'boolean' }, json: { type: 'boolean' } },
  run(v, pos) {
    const path = onePath(pos, 'weights file');
    const w = loadWeights(path, false);
    const c = w.config;
    const counts = countParams(c);
    const specs = new Map(paramSpecs(c).map((s) => [s.name, s]));
    const bytesOf = (name: string) =>
      w.entries.filter((e) => e.tensor === name).reduce((a, e) => a + (e.end - e.begin), 0);
    const tensors = w.names().map((name) => ({
      name,
      scheme: w.schemes.get(name) as QuantScheme,
      shape: specs.get(name)!.shape,
      params: numel(specs.get(name)!.shape),
      bytes: bytesOf(name),
    }));
    const inFile = tensors.reduce((a, t) => a + t.params, 0);
    const byScheme: Record<string, number> = {};
    for (const t of tensors) byScheme[t.scheme] = (byScheme[t.scheme] ?? 0) + t.params;
    const summary = {
      file: path,
      bytes: w.bytes.length,
      formatVersion: w.formatVersion,
      shard: w.shard,
      config: c,
      parameters: {
        model: counts.total,
        inFile,
        edge: counts.edge,
        expertShared: counts.expertShared,
        perExpert: counts.perExpert,
        activePerStep: counts.activePerStep,
        activeFraction: counts.activeFraction,
      },
      schemes: byScheme,
      ...(v.tensors ? { tensors } : {}),
    };
    if (v.json) return void console.log(JSON.stringify(summary, null, 2));
    const e = c.experts;
    const lines = [
      `${path}: switchyard rru-moe, format v${w.formatVersion}, ${mib(w.bytes.length)}`,
      `shard      ${w.shard.kind}${w.shard.kind === 'edge' ? '' : ` (experts ${w.shard.experts.join(', ')})`}`,
      `vocab      ${c.vocab}`,
      `controller embed ${c.controller.embed}, hidden ${c.controller.hidden}`,
      `memory     dim ${c.memory.dim}, STM slots ${c.memory.stm_slots}, LTM atoms ${c.memory.ltm_atoms} (active ${c.memory.ltm_active})`,
      `experts    ${e.count} × (${e.layers} layers, width ${e.width}, ${e.heads} heads, ffn ${e.ffn}), top-${e.top_k}, max prompt ${e.max_prompt}`,
      `think      at most ${c.max_think_steps} steps`,
      '',
      `parameters ${millions(counts.total)} in the model, ${millions(inFile)} in this file`,
      `  edge           ${millions(counts.edge)}`,
      `  expert-shared  ${millions(counts.expertShared)}`,
      `  per expert     ${millions(counts.perExpert)}`,
      `  active / step  ${millions(counts.activePerStep)} (${(100 * counts.activeFraction).toFixed(1)}% of the model)`,
      `storage    ${Object.entries(byScheme)
        .map(([s, n]) => `${s}: ${millions(n)}`)
        .join(', ')}`,
    ];
    if (v.tensors) {
      lines.push('', 'tensor'.padEnd(40) + 'scheme'.padEnd(10) + 'shape'.padEnd(16) + 'bytes');
      for (const t of tensors)
        lines.push(t.name.padEnd(40) + t.scheme.padEnd(10) + `[${t.shape.join(', ')}]`.padEnd(16) + t.bytes);
    }
    console.log(lines.join('\n'));
  },
};
