import { join } from 'node:path';
import {
  buildEdgeController,
  buildEdgeHead,
  buildExpertStateless,
  expertModelConfigPbtxt,
  expertModelName,
  type WeightSource,
} from '../../src/index.ts';
import {
  intOption,
  loadWeights,
  mib,
  onePath,
  oneOf,
  requireString,
  writeOut,
  type Command,
} from '../command.ts';
import { progress } from '../progress.ts';

export const exportOnnx: Command = {
  name: 'export-onnx',
  summary:
    'export a Triton/KServe model repository (expert-{e}/1/model.onnx + config.pbtxt) and the edge graphs',
  usage: `switchyard export-onnx FILE -o DIR [--weights stored|f32] [--max-batch N] [--queue-delay-us N]

  Writes DIR/expert-{e}/1/model.onnx and DIR/expert-{e}/config.pbtxt for every expert in FILE (the
  stateless model: prefill and step in one call), and DIR/edge/controller.onnx, DIR/edge/head.onnx
  when FILE holds the edge tensors.

  --weights W          stored (default): int8 stays int8 with DequantizeLinear; f32: dequantize first
  --max-batch N        Triton max_batch_size (default 64)
  --queue-delay-us N   Triton dynamic batching max_queue_delay_microseconds (default 2000)
  -o, --out DIR        the model repository to write`,
  options: {
    out: { type: 'string', short: 'o' },
    weights: { type: 'string' },
    'max-batch': { type: 'string' },
    'queue-delay-us': { type: 'string' },
  },
  run(v, pos) {
    const path = onePath(pos, 'weights file');
    const dir = requireString(v, 'out', 'an output directory');
    const mode = oneOf('weights', (v.weights as string) ?? 'stored', ['stored', 'f32'] as const);
    const maxBatch = intOption('max-batch', v['max-batch'] as string | undefined, 64, 1);
    const delay = intOption('queue-delay-us', v['queue-delay-us'] as string | undefined, 2000, 0);
    const w = loadWeights(path, true);
    const src: WeightSource = {
      config: w.config,
      get: (name) => (mode === 'f32' ? { scheme: 'f32', ...w.tensor(name) } : w.stored(name)),
    };
    const experts = w.experts();
    const hasEdge = w.shard.kind !== 'experts';
    const bar = progress('export-onnx', experts.length + (hasEdge ? 2 : 0));
    let done = 0;
    let total = 0;
    const preferred = [1, 4, 16, 64].filter((b) => b <= maxBatch);
    for (const e of experts) {
      const model = buildExpertStateless(src, e);
      const name = expertModelName(e);
      writeOut(join(dir, name, '1', 'model.onnx'), model);
      writeOut(
        join(dir, name, 'config.pbtxt'),
        expertModelConfigPbtxt(w.config, e, { maxBatch, preferredBatch: preferred, maxQueueDelayUs: delay }),
      );
      total += model.length;
      bar.update(++done, name);
    }
    if (hasEdge) {
      for (const [file, build] of [
        ['controller.onnx', buildEdgeController],
        ['head.onnx', buildEdgeHead],
      ] as const) {
        const model = build(src);
        writeOut(join(dir, 'edge', file), model);
        total += model.length;
        bar.update(++done, file);
      }
    }
    bar.done();
    console.log(
      `wrote ${dir}: ${experts.length} expert models${hasEdge ? ' + edge/controller.onnx, edge/head.onnx' : ''}, ${mib(total)} (${mode} weights)`,
    );
  },
};
