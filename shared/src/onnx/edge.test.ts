import { describe, expect, it } from 'vitest';
import { preset } from '../config.ts';
import { initRandom } from '../init.ts';
import type { ControllerState } from '../interfaces.ts';
import { paramSpecs } from '../params.ts';
import { quantize24, type StoredTensor } from '../quant.ts';
import { ReferenceModel } from '../reference.ts';
import { THINK } from '../tokenizer.ts';
import { buildEdgeController, buildEdgeHead } from './edge.ts';
import { graphSummary } from './graph.ts';
import { createSession, dequantizedParams, f32, i64, maxAbsDiff, RUNTIMES } from './ort-test-utils.ts';
import { weightSourceFromParams, type WeightSource } from './weights.ts';

// ORT's LSTM uses float32 sigmoid/tanh approximations (MLAS, ~1e-7 relative) and float32 accumulation
// where the reference accumulates in float64; measured ≤ 1e-6. 1e-4 is ~100× below the error of a
// wrong gate order or a missing input.
const F32_TOL = 1e-4;
// int8 graphs dequantize to the reference's dequantized weights bit for bit: the same bound holds.
const INT8_TOL = 1e-4;
const TOL = { f32: F32_TOL, int8: INT8_TOL } as const;

const cfg = preset('tiny');
const params = initRandom(cfg, 21);
const { hidden: H } = cfg.controller;
const S = cfg.memory.dim;
const E = cfg.experts.count;

/**
 * A state after a few reference steps (greedy, prompt "2+2="), so h, c, m are non-zero and the STM holds
 * entries: the inputs the edge really feeds the controller.
 */
function rolledOut(ref: ReferenceModel, steps: number): { state: ControllerState; y: number } {
  const prompt = [...new TextEncoder().encode('user: 2+2=\n')];
  const caches = new Map<number, ReturnType<ReferenceModel['expertPrefill']>>();
  let state = ref.initialState();
  let y = THINK;
  for (let t = 0; t < steps; t++) {
    const { h, c } = ref.controller(state, y);
    const routing = ref.route(h);
    const m = new Float32Array(H);
    routing.experts.forEach((e, i) => {
      if (!caches.has(e)) caches.set(e, ref.expertPrefill(e, prompt));
      const out = ref.expertStep(e, h, caches.get(e)!);
      for (let j = 0; j < H; j++) m[j] += routing.gates[i] * out[j];
    });
    const head = ref.head(h, m);
    const stm = { ...state.stm, keys: state.stm.keys.slice(), values: state.stm.values.slice() };
    ReferenceModel.stmWrite(stm, head.stmKey, head.stmValue);
    state = { h, c, m, stm };
    y = head.logits.indexOf(Math.max(...head.logits));
  }
  return { state, y };
}

const f32Ref = new ReferenceModel(cfg, params);
const { state, y } = rolledOut(f32Ref, 4);

function source(scheme: 'f32' | 'int8'): { src: WeightSource; ref: ReferenceModel } {
  const src = weightSourceFromParams(cfg, params, scheme);
  return {
    src,
    ref: scheme === 'f32' ? f32Ref : new ReferenceModel(cfg, dequantizedParams(src, params.keys())),
  };
}

describe('the rolled-out state is a meaningful test input', () => {
  it('has a non-empty STM and non-zero h, c, m', () => {
    expect(state.stm.count).toBe(4);
    for (const v of [state.h, state.c, state.m]) expect(v.some((x) => Math.abs(x) > 1e-3)).toBe(true);
    expect(f32Ref.stmRead(state.stm, state.h).some((x) => Math.abs(x) > 1e-3)).toBe(true);
  });
});

describe.each(RUNTIMES)('edge graphs in %s', (runtime) => {
  describe.each(['f32', 'int8'] as const)('with %s weights', (scheme) => {
    const tol = TOL[scheme];

    it('controller gives the reference h, c (LSTM, gates permuted to i,o,f,c) and gate probs', async () => {
      const { src, ref } = source(scheme);
      const s = await createSession(runtime, buildEdgeController(src));
      const r = ref.stmRead(state.stm, state.h);
      const got = await s.run({
        token: i64([y]),
        r: f32(r, [1, S]),
        m: f32(state.m, [1, H]),
        h: f32(state.h, [1, H]),
        c: f32(state.c, [1, H]),
      });
      const want = ref.controller(state, y);
      expect(got.h_out.dims).toEqual([1, H]);
      expect(got.c_out.dims).toEqual([1, H]);
      expect(got.probs.dims).toEqual([1, E]);
      expect(maxAbsDiff(got.h_out.data, want.h)).toBeLessThanOrEqual(tol);
      expect(maxAbsDiff(got.c_out.data, want.c)).toBeLessThanOrEqual(tol);
      expect(maxAbsDiff(got.probs.data, ref.route(want.h).probs)).toBeLessThanOrEqual(tol);
      await s.release();
    });

    it('head gives the reference logits, STM key and STM value', async () => {
      const { src, ref } = source(scheme);
      const s = await createSession(runtime, buildEdgeHead(src));
      const got = await s.run({ h: f32(state.h, [1, H]), m: f32(state.m, [1, H]) });
      const want = ref.head(state.h, state.m);
      expect(got.logits.dims).toEqual([1, cfg.vocab]);
      expect(got.stm_key.dims).toEqual([1, S]);
      expect(got.stm_value.dims).toEqual([1, S]);
      expect(maxAbsDiff(got.logits.data, want.logits)).toBeLessThanOrEqual(tol);
      expect(maxAbsDiff(got.stm_key.data, want.stmKey)).toBeLessThanOrEqual(tol);
      expect(maxAbsDiff(got.stm_value.data, want.stmValue)).toBeLessThanOrEqual(tol);
      await s.release();
    });
  });
});

describe('stored forms', () => {
  it('int8 graphs keep int8 weights (about a quarter of the float32 size)', () => {
    const f = graphSummary(buildEdgeController(weightSourceFromParams(cfg, params, 'f32')));
    const q = graphSummary(buildEdgeController(weightSourceFromParams(cfg, params, 'int8')));
    expect(f.ops.DequantizeLinear).toBeUndefined();
    expect(q.ops.DequantizeLinear).toBeGreaterThan(0);
    expect(q.initializerBytes).toBeLessThan(f.initializerBytes / 3);
  });

  it('int8-2:4 tensors are densified and compute the reference on their dequantized values', async () => {
    const kinds = new Map(paramSpecs(cfg).map((s) => [s.name, s.kind]));
    const src: WeightSource = {
      config: cfg,
      get(name: string): StoredTensor {
        const t = params.get(name)!;
        return kinds.get(name) === 'matrix' ? quantize24(t) : { scheme: 'f32', shape: t.shape, data: t.data };
      },
    };
    const ref = new ReferenceModel(cfg, dequantizedParams(src, params.keys()));
    const s = await createSession('onnxruntime-node', buildEdgeHead(src));
    const got = await s.run({ h: f32(state.h, [1, H]), m: f32(state.m, [1, H]) });
    const want = ref.head(state.h, state.m);
    expect(maxAbsDiff(got.logits.data, want.logits)).toBeLessThanOrEqual(INT8_TOL);
    expect(maxAbsDiff(got.stm_value.data, want.stmValue)).toBeLessThanOrEqual(INT8_TOL);
    // Pruning half the weights must show: the dense reference is far from the 2:4 one.
    expect(maxAbsDiff(got.logits.data, f32Ref.head(state.h, state.m).logits)).toBeGreaterThan(100 * INT8_TOL);
    await s.release();
  });
});
