import {
  initRandom,
  preset,
  quantize24,
  quantizeInt8,
  dequantize,
  ReferenceModel,
  routeFromProbs,
  type ControllerState,
  type ParamMap,
  type StoredTensor,
  type Tensor,
} from '@switchyard/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { int8FastTolerance } from '../test/tolerance.ts';
import { EDGE_MATRICES, WasmEdgeCompute, type WasmEdgeOptions } from './edge-step.ts';
import { createKernels, type Kernels, type SimdFlavor } from './kernels.ts';
import { enableRelaxedSimd, ensureBuilt, kernelBytes } from './node-loader.ts';

const FLAVORS: SimdFlavor[] = enableRelaxedSimd() ? ['simd', 'relaxed-simd'] : ['simd'];
const config = preset('tiny');
const params = initRandom(config, 42, (s) => s.tier === 'edge');
const kernels = new Map<SimdFlavor, Kernels>();

beforeAll(async () => {
  ensureBuilt();
  for (const flavor of FLAVORS) kernels.set(flavor, await createKernels(kernelBytes(), { flavor }));
});

/** The edge tensors stored as `scheme`, and the float32 map the reference computes with. */
function stored(scheme: 'f32' | 'int8' | 'int8-2:4'): {
  tensors: Map<string, StoredTensor | Tensor>;
  ref: ParamMap;
} {
  const tensors = new Map<string, StoredTensor | Tensor>(params);
  const ref: ParamMap = new Map(params);
  if (scheme !== 'f32')
    for (const name of EDGE_MATRICES) {
      const t = params.get(name)!;
      const s = scheme === 'int8' ? quantizeInt8(t) : quantize24(t);
      tensors.set(name, s);
      ref.set(name, dequantize(s));
    }
  return { tensors, ref };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function cloneState(s: ControllerState): ControllerState {
  return {
    h: s.h.slice(),
    c: s.c.slice(),
    m: s.m.slice(),
    stm: { keys: s.stm.keys.slice(), values: s.stm.values.slice(), count: s.stm.count, next: s.stm.next },
  };
}

/** A stand-in for the expert mixture, the same function of h for both sides. */
function fakeMixture(h: Float32Array): Float32Array {
  return h.map((v, i) => Math.tanh(2 * v - 0.1 * (i % 5)));
}

const TOKENS = [258, 72, 105, 33, 10, 200, 0, 259, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 257];

describe.each(FLAVORS)('%s edge step against ReferenceModel (tiny preset, seed 42)', (flavor) => {
  // Per-step bounds. 'exact', 'precise' and f32 differ from the reference by float32 rounding (and the
  // float32 exp/tanh), far below 1e-5 at these sizes. 'fast' and 'relaxed-dot' add the x rounding of each
  // mat-vec: a head in those modes is held to its tolerance.ts bound directly; for the controller, the bound
  // of W_ih·[x; r; m] alone is ~1e-3 here (Σ|W_r| ≈ 7, max|x| ≈ 2.5, range 8191 at the least), and σ, tanh
  // and the gate softmax do not amplify it. The head runs 'precise' unless asked otherwise: logits ≤ 1e-5.
  const variants: Array<[string, 'f32' | 'int8' | 'int8-2:4', WasmEdgeOptions, number]> = [
    ['f32 weights', 'f32', {}, 1e-5],
    ['int8 exact', 'int8', { mode: 'exact' }, 1e-5],
    ['int8 precise', 'int8', { mode: 'precise' }, 1e-5],
    ['int8 default (auto)', 'int8', {}, 2e-3],
    ['int8 fast', 'int8', { mode: 'fast' }, 2e-3],
    ['int8 fast, head fast too', 'int8', { mode: 'fast', modes: { 'head.w': 'fast' } }, 2e-3],
    ['2:4 kernel', 'int8-2:4', { sparse: 'sparse' }, 2e-3],
    ['2:4 kernel, head on it too', 'int8-2:4', { modes: { 'head.w': 'auto' } }, 2e-3],
  ];

  for (const [label, scheme, options, tol] of variants) {
    it(`${label}: every step's controller, routing, head, STM write and LTM code`, () => {
      const { tensors, ref: refParams } = stored(scheme);
      const ref = new ReferenceModel(config, refParams, 'edge');
      const wasm = new WasmEdgeCompute(kernels.get(flavor)!, config, tensors, options);
      expect(wasm.name).toBe(`wasm-${flavor}`);
      const state = ref.initialState();
      const headMode = wasm.modes['head.w'];
      const headRounds = headMode === 'fast' || headMode === 'relaxed-dot';
      let worst = 0;
      let logits = 0;
      for (const token of TOKENS) {
        // Both sides start each step from the reference state, so errors are per step, not compounded.
        const w = wasm.controllerSync(cloneState(state), token);
        const r = ref.controller(cloneState(state), token);
        const probs = ref.route(r.h).probs;
        worst = Math.max(worst, maxDiff(w.h, r.h), maxDiff(w.c, r.c), maxDiff(w.probs, probs));
        const wr = routeFromProbs(w.probs, config.experts.top_k);
        const rr = routeFromProbs(probs, config.experts.top_k);
        expect(wr.experts).toEqual(rr.experts);

        state.h = r.h;
        state.c = r.c;
        state.m = fakeMixture(r.h);
        const wh = wasm.headSync(state.h, state.m);
        const rh = ref.head(state.h, state.m);
        worst = Math.max(worst, maxDiff(wh.stmKey, rh.stmKey), maxDiff(wh.stmValue, rh.stmValue));
        if (headRounds) {
          const hm = new Float32Array([...state.h, ...state.m]);
          const bound = int8FastTolerance(
            refParams.get('head.w')!.data,
            config.vocab,
            2 * ref.H,
            hm,
            rh.logits,
          );
          expect(Array.from(wh.logits).filter((v, i) => !(Math.abs(v - rh.logits[i]) <= bound[i]))).toEqual(
            [],
          );
        } else logits = Math.max(logits, maxDiff(wh.logits, rh.logits));
        ReferenceModel.stmWrite(state.stm, rh.stmKey, rh.stmValue);

        const wc = wasm.ltmCodeSync(state.h);
        const rc = ref.ltmCode(state.h);
        expect(wc.atoms).toEqual(rc.atoms);
        worst = Math.max(worst, maxDiff(wc.weights, rc.weights));
      }
      expect(state.stm.count).toBe(config.memory.stm_slots); // the ring filled and wrapped
      expect(worst).toBeLessThanOrEqual(tol);
      expect(logits).toBeLessThanOrEqual(1e-5);
    });
  }

  it("per-matrix modes: 'modes' overrides 'mode'; the head defaults to 'precise' ('exact' with mode 'exact')", () => {
    const k = kernels.get(flavor)!;
    const { tensors } = stored('int8');
    const auto = new WasmEdgeCompute(k, config, tensors);
    for (const name of EDGE_MATRICES.filter((n) => n !== 'head.w')) expect(auto.modes[name]).toBe(k.autoMode);
    expect(auto.modes['head.w']).toBe('precise');
    expect(new WasmEdgeCompute(k, config, tensors, { mode: 'exact' }).modes['head.w']).toBe('exact');
    const mixed = new WasmEdgeCompute(k, config, tensors, {
      mode: 'fast',
      modes: { 'lstm.w_ih': 'exact', 'head.w': 'fast' },
    });
    expect(mixed.modes).toEqual({
      'lstm.w_ih': 'exact',
      'lstm.w_hh': 'fast',
      'gate.w': 'fast',
      'memory.w_rq': 'fast',
      'memory.w_k': 'fast',
      'memory.w_v': 'fast',
      'memory.w_code': 'fast',
      'head.w': 'fast',
    });
    const f32 = new WasmEdgeCompute(k, config, stored('f32').tensors, { modes: { 'head.w': 'fast' } });
    expect(f32.modes['head.w']).toBeUndefined(); // float32 matrices have no int8 mode
    expect(
      () =>
        new WasmEdgeCompute(k, config, tensors, { modes: { 'head.b': 'fast' } as WasmEdgeOptions['modes'] }),
    ).toThrow(/modes: expected keys among lstm.w_ih, .*head.w, found "head.b"/);
  });

  it('a 20-step rollout on its own state stays with the reference (int8 fast)', () => {
    const { tensors, ref: refParams } = stored('int8');
    const ref = new ReferenceModel(config, refParams, 'edge');
    const wasm = new WasmEdgeCompute(kernels.get(flavor)!, config, tensors);
    const rs = ref.initialState();
    const ws = ref.initialState();
    for (const token of TOKENS)
      for (const [s, side] of [
        [rs, 'ref'],
        [ws, 'wasm'],
      ] as const) {
        const out = side === 'ref' ? ref.controller(s, token) : wasm.controllerSync(s, token);
        s.h = out.h;
        s.c = out.c;
        s.m = fakeMixture(out.h);
        const head = side === 'ref' ? ref.head(s.h, s.m) : wasm.headSync(s.h, s.m);
        ReferenceModel.stmWrite(s.stm, head.stmKey, head.stmValue);
      }
    // The cell is contractive here (forget gates < 1), so per-step errors do not build up over the turn.
    expect(maxDiff(ws.h, rs.h)).toBeLessThanOrEqual(1e-2);
    expect(maxDiff(ws.c, rs.c)).toBeLessThanOrEqual(1e-2);
  });

  it('rejects wrong tokens, state sizes and missing tensors', () => {
    const { tensors } = stored('f32');
    const wasm = new WasmEdgeCompute(kernels.get(flavor)!, config, tensors);
    const s = new ReferenceModel(config, params, 'edge').initialState();
    expect(() => wasm.controllerSync(s, config.vocab)).toThrow(/token: expected an integer in \[0, 260\)/);
    expect(() => wasm.controllerSync({ ...s, h: new Float32Array(3) }, 1)).toThrow(
      /state.h: expected 64 elements, found 3/,
    );
    const partial = new Map(tensors);
    partial.delete('gate.w');
    expect(() => new WasmEdgeCompute(kernels.get(flavor)!, config, partial)).toThrow(/tensor "gate.w"/);
  });
});
