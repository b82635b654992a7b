// wasm/'s kernel case files (inputs, expected outputs from the float32 reference, per-element tolerances) run
// inside workerd, on the kernel modules as the Worker imports them (CompiledWasm), both flavors, every int8
// mode. The same files run in Node in wasm/src/kernels.test.ts.
import {
  createKernels,
  type Int8Mode,
  type Kernels,
  type LoadOptions,
  type SimdFlavor,
} from '@switchyard/wasm';
import relaxedModule from '@switchyard/wasm/kernels-relaxed.wasm';
import simdModule from '@switchyard/wasm/kernels.wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import lstmCases from '../../../wasm/test/cases/lstm.json';
import f32Cases from '../../../wasm/test/cases/matvec-f32.json';
import int8SparseCases from '../../../wasm/test/cases/matvec-int8-24.json';
import int8Cases from '../../../wasm/test/cases/matvec-int8.json';
import softmaxCases from '../../../wasm/test/cases/softmax-topk.json';
import sparseCodeCases from '../../../wasm/test/cases/sparse-code.json';
import stmCases from '../../../wasm/test/cases/stm-read.json';
import {
  toStored,
  type AllCases,
  type CaseFile,
  type LstmCase,
  type MatVecCase,
  type SoftmaxTopKCase,
  type SparseCodeCase,
  type StmReadCase,
} from '../../../wasm/test/cases.ts';

const cases: AllCases = {
  'matvec-int8': int8Cases as CaseFile<MatVecCase>,
  'matvec-int8-24': int8SparseCases as CaseFile<MatVecCase>,
  'matvec-f32': f32Cases as CaseFile<MatVecCase>,
  lstm: lstmCases as CaseFile<LstmCase>,
  'softmax-topk': softmaxCases as CaseFile<SoftmaxTopKCase>,
  'stm-read': stmCases as CaseFile<StmReadCase>,
  'sparse-code': sparseCodeCases as CaseFile<SparseCodeCase>,
};

const FLAVORS: SimdFlavor[] = ['simd', 'relaxed-simd'];
const kernels = new Map<SimdFlavor, Kernels>();

beforeAll(async () => {
  for (const flavor of FLAVORS)
    kernels.set(flavor, await createKernels({ simd: simdModule, relaxed: relaxedModule }, { flavor }));
});

/** Every element outside its tolerance, described (at most 8); [] when all are within. */
function violations(
  got: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: ArrayLike<number> | number,
): string[] {
  if (got.length !== expected.length) return [`length ${got.length}, expected ${expected.length}`];
  const out: string[] = [];
  for (let i = 0; i < got.length; i++) {
    const t = typeof tol === 'number' ? tol : tol[i];
    const e = Math.fround(expected[i]);
    if (!(Math.abs(got[i] - e) <= t)) out.push(`[${i}] got ${got[i]}, expected ${e} ± ${t}`);
  }
  return out.slice(0, 8);
}

const named = <T extends { name: string }>(file: CaseFile<T>) => file.cases.map((c) => [c.name, c] as const);

it('the case files hold cases of every kind, including the edge shapes they promise', () => {
  for (const file of Object.values(cases)) expect(file.cases.length).toBeGreaterThan(0);
  const shapes = cases['matvec-int8'].cases.map((c) => [c.rows, c.cols]);
  expect(shapes.some(([r]) => r === 0)).toBe(true); // zero rows
  expect(shapes.some(([, c]) => c % 16 !== 0)).toBe(true); // columns not a multiple of 16
});

describe.each(FLAVORS)('%s kernels inside workerd', (flavor) => {
  const k = () => kernels.get(flavor)!;
  const int8Modes: Int8Mode[] =
    flavor === 'relaxed-simd' ? ['fast', 'relaxed-dot', 'exact'] : ['fast', 'exact'];

  it('runs the flavor it was asked for', () => {
    expect(k().flavor).toBe(flavor);
  });

  const runMatVec = (c: MatVecCase, options: LoadOptions) => {
    const m = k().loadMatrix(toStored(c.w, c.rows, c.cols), {
      ...options,
      bias: c.bias ? Float32Array.from(c.bias) : undefined,
    });
    return k().matVec(m, Float32Array.from(c.x));
  };

  for (const mode of int8Modes)
    it.each(named(cases['matvec-int8']))(`int8 mat-vec, ${mode}: %s`, (_, c) => {
      const tol = mode === 'exact' ? c.tolerance.exact : c.tolerance.fast;
      // A case without a bound for this path (subnormal x in float32) must still run and stay finite.
      if (!tol) expect(Array.from(runMatVec(c, { mode })).every(Number.isFinite)).toBe(true);
      else expect(violations(runMatVec(c, { mode }), c.expected, tol)).toEqual([]);
    });

  const sparseVariants: Array<[string, LoadOptions, 'fast' | 'exact']> = [
    ['2:4 kernel', { sparse: 'sparse' }, 'fast'],
    ['densified', { sparse: 'dense' }, 'fast'],
    ['densified exact', { mode: 'exact' }, 'exact'],
  ];
  for (const [label, options, tolKind] of sparseVariants)
    it.each(named(cases['matvec-int8-24']))(`2:4 mat-vec, ${label}: %s`, (_, c) => {
      expect(violations(runMatVec(c, options), c.expected, c.tolerance[tolKind]!)).toEqual([]);
    });

  it.each(named(cases['matvec-f32']))('f32 mat-vec: %s', (_, c) => {
    expect(violations(runMatVec(c, {}), c.expected, c.tolerance.exact!)).toEqual([]);
  });

  it.each(named(cases.lstm))('LSTM cell: %s', (_, c) => {
    const H = c.hidden;
    const wih = k().loadMatrix(toStored(c.wih, 4 * H, c.inputSize), { bias: Float32Array.from(c.b) });
    const whh = k().loadMatrix(toStored(c.whh, 4 * H, H));
    const out = k().lstmCell(wih, whh, c.input, c.h, c.c);
    expect(violations(out.c, c.expected.c, c.tolerance.c)).toEqual([]);
    expect(violations(out.h, c.expected.h, c.tolerance.h)).toEqual([]);
  });

  it.each(named(cases['softmax-topk']))('softmax top-k: %s', (_, c) => {
    const r = k().softmaxTopK(c.logits, c.k);
    expect(r.top).toEqual(c.expected.top);
    const probTol = c.expected.probs.map((p) => c.tolerance.probs * Math.abs(p) + 1e-45);
    expect(violations(r.probs, c.expected.probs, probTol)).toEqual([]);
    const gateTol = c.expected.gates.map((g) => c.tolerance.gates * Math.abs(g));
    expect(violations(r.gates, c.expected.gates, gateTol)).toEqual([]);
  });

  it.each(named(cases['stm-read']))('STM read: %s', (_, c) => {
    const r = k().stmRead(c.q, Float32Array.from(c.keys), Float32Array.from(c.values), c.count);
    expect(violations(r, c.expected, c.tolerance)).toEqual([]);
  });

  it.each(named(cases['sparse-code']))('sparse code: %s', (_, c) => {
    const m = k().loadMatrix(toStored(c.w, c.atoms, c.dim));
    const r = k().sparseCode(m, c.v, c.active);
    expect(r.atoms).toEqual(c.expected.atoms);
    expect(violations(r.weights, c.expected.weights, c.tolerance)).toEqual([]);
  });
});
