import { describe, expect, it } from 'vitest';
import { preset } from '../config.ts';
import { initRandom } from '../init.ts';
import { buildExpertStateless } from './expert.ts';
import { graphSummary, OnnxBuildError } from './graph.ts';
import { expertModelConfigPbtxt, expertModelName } from './triton.ts';
import { weightSourceFromParams } from './weights.ts';

const cfg = preset('tiny');
const opts = { maxBatch: 16, preferredBatch: [8, 4], maxQueueDelayUs: 500 };

/** The `name` → `{ data_type, dims }` of one block (input or output) of a config.pbtxt. */
function tensors(pbtxt: string, block: 'input' | 'output') {
  const body = pbtxt.match(new RegExp(`^${block} \\[\\n([\\s\\S]*?)^\\]`, 'm'))![1];
  return [...body.matchAll(/name: "(\w+)"\s+data_type: (\w+)\s+dims: \[ ([^\]]*) \]/g)].map((m) => ({
    name: m[1],
    type: m[2],
    dims: m[3].split(', ').map(Number),
  }));
}

describe('expertModelConfigPbtxt', () => {
  const text = expertModelConfigPbtxt(cfg, 3, opts);

  it('names the model and platform and sets the batch limit', () => {
    expect(expertModelName(3)).toBe('expert-3');
    expect(text).toMatch(/^name: "expert-3"$/m);
    expect(text).toMatch(/^platform: "onnxruntime_onnx"$/m);
    expect(text).toMatch(/^max_batch_size: 16$/m);
  });

  it('declares the stateless graph interface, per row (batch dimension implicit)', () => {
    const H = cfg.controller.hidden;
    expect(tensors(text, 'input')).toEqual([
      { name: 'tokens', type: 'TYPE_INT64', dims: [-1] },
      { name: 'prompt_len', type: 'TYPE_INT64', dims: [1] },
      { name: 'h', type: 'TYPE_FP32', dims: [H] },
    ]);
    expect(tensors(text, 'output')).toEqual([{ name: 'y', type: 'TYPE_FP32', dims: [H] }]);
    // The model's prompt_len is [B]: one scalar per row, so the [1] per request must be reshaped away.
    expect(text).toMatch(/name: "prompt_len"[^}]*reshape: \{ shape: \[ \] \}/);
  });

  it('matches the graph the stateless builder emits (names, types, rows = dims after B)', () => {
    const g = graphSummary(buildExpertStateless(weightSourceFromParams(cfg, initRandom(cfg, 1), 'f32'), 3));
    const pb = [...tensors(text, 'input'), ...tensors(text, 'output')];
    const model = [...g.inputs, ...g.outputs];
    expect(pb.map((t) => t.name)).toEqual(model.map((t) => t.name));
    model.forEach((t, i) => {
      expect(t.dims[0]).toBe('B');
      expect(pb[i].type).toBe(t.type === 'int64' ? 'TYPE_INT64' : 'TYPE_FP32');
      const rows = t.dims.slice(1).map((d) => (typeof d === 'number' ? d : -1));
      expect(t.name === 'prompt_len' ? [1] : rows).toEqual(pb[i].dims);
    });
  });

  it('writes a dynamic_batching block with sorted preferred sizes and the queue delay', () => {
    const block = text.match(/^dynamic_batching \{\n([\s\S]*?)^\}/m)![1];
    expect(block).toContain('preferred_batch_size: [ 4, 8 ]');
    expect(block).toContain('max_queue_delay_microseconds: 500');
  });

  it('rejects out-of-range options with what was expected', () => {
    expect(() => expertModelConfigPbtxt(cfg, 4, opts)).toThrow(OnnxBuildError);
    expect(() => expertModelConfigPbtxt(cfg, 4, opts)).toThrow(
      'expert id: expected an integer in [0, 3], found 4',
    );
    expect(() => expertModelConfigPbtxt(cfg, 0, { ...opts, maxBatch: 0 })).toThrow(/maxBatch/);
    expect(() => expertModelConfigPbtxt(cfg, 0, { ...opts, preferredBatch: [32] })).toThrow(
      'preferredBatch[0]: expected an integer in [1, 16], found 32',
    );
    expect(() => expertModelConfigPbtxt(cfg, 0, { ...opts, maxQueueDelayUs: -1 })).toThrow(/maxQueueDelayUs/);
  });
});
