import { describe, expect, it } from 'vitest';
import { preset } from '../config.ts';
import { initRandom } from '../init.ts';
import { quantizeInt8 } from '../quant.ts';
import { buildEdgeHead } from './edge.ts';
import { buildExpertStep } from './expert.ts';
import { GraphBuilder, OnnxBuildError } from './graph.ts';
import { permuteRows, WeightEmitter, WeightSourceError, weightSourceFromParams } from './weights.ts';

const cfg = preset('tiny');
const params = initRandom(cfg, 2);

describe('weightSourceFromParams', () => {
  it('keeps float32 tensors as they are', () => {
    const t = weightSourceFromParams(cfg, params, 'f32').get('head.w');
    expect(t.scheme).toBe('f32');
    expect(t.scheme === 'f32' && t.data).toBe(params.get('head.w')!.data);
  });

  it('quantizes matrices with quantizeInt8 and leaves vectors float32', () => {
    const src = weightSourceFromParams(cfg, params, 'int8');
    expect(src.get('experts.1.layers.0.ffn.w1')).toEqual(
      quantizeInt8(params.get('experts.1.layers.0.ffn.w1')!),
    );
    expect(src.get('experts.1.layers.0.ffn.b1').scheme).toBe('f32');
    expect(src.get('lstm.b').scheme).toBe('f32');
    expect(src.get('head.w')).toBe(src.get('head.w'));
  });

  it('names a missing tensor and rejects unknown schemes', () => {
    const src = weightSourceFromParams(cfg, new Map(), 'int8');
    expect(() => src.get('head.w')).toThrow(WeightSourceError);
    expect(() => src.get('head.w')).toThrow(
      'tensor "head.w": expected it in the params, found no such tensor',
    );
    expect(() => weightSourceFromParams(cfg, params, 'int4' as 'int8')).toThrow(
      'weight scheme: expected one of f32, int8, found "int4"',
    );
  });
});

describe('builders check the weights they are given', () => {
  it('reject a tensor of the wrong shape, naming it', () => {
    const bad = new Map(params);
    bad.set('memory.w_k', { shape: [3, 3], data: new Float32Array(9) });
    expect(() => buildEdgeHead(weightSourceFromParams(cfg, bad, 'f32'))).toThrow(
      `tensor "memory.w_k": expected shape [${cfg.memory.dim},${cfg.controller.hidden}], found [3,3]`,
    );
  });

  it('reject an expert id outside the config', () => {
    expect(() => buildExpertStep(weightSourceFromParams(cfg, params, 'f32'), 4)).toThrow(OnnxBuildError);
    expect(() => buildExpertStep(weightSourceFromParams(cfg, params, 'f32'), 4)).toThrow(
      'expert id: expected an integer in [0, 4), found 4',
    );
  });

  it('reject a quantized vector', () => {
    const src = weightSourceFromParams(cfg, params, 'f32');
    const w = new WeightEmitter(new GraphBuilder(), {
      config: cfg,
      get: (n) =>
        n === 'head.b'
          ? { ...quantizeInt8({ shape: [1, 260], data: new Float32Array(260) }), shape: [260] }
          : src.get(n),
    });
    expect(() => w.vector('head.b')).toThrow(
      'tensor "head.b": expected a float32 vector, found int8 with shape [260]',
    );
  });

  it('reject a name the config does not define', () => {
    const w = new WeightEmitter(new GraphBuilder(), weightSourceFromParams(cfg, params, 'f32'));
    expect(() => w.dense('experts.9.w_in')).toThrow(
      /tensor "experts.9.w_in": expected a tensor name of this config/,
    );
  });
});

describe('permuteRows', () => {
  it('moves rows and their int8 scales together', () => {
    const t = quantizeInt8({ shape: [3, 2], data: Float32Array.of(1, 2, 30, 40, -5, 6) });
    const p = permuteRows(t, [2, 0, 1]);
    expect(p.scheme === 'int8' && Array.from(p.q)).toEqual([...t.q.slice(4, 6), ...t.q.slice(0, 4)]);
    expect(p.scheme === 'int8' && Array.from(p.scale)).toEqual([t.scale[2], t.scale[0], t.scale[1]]);
    expect(() => permuteRows(t, [0, 1])).toThrow('permuteRows: expected 3 row indices, found 2');
  });
});
