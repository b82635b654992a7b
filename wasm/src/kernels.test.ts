import { readFileSync } from 'node:fs';
import { dequantize, matVec, quantize24, quantizeInt8, Rng, type StoredTensor } from '@switchyard/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { CASE_FILES, toStored, type AllCases, type MatVecCase } from '../test/cases.ts';
import { generateCases } from '../test/gen-cases.ts';
import { f32Tolerance, int8FastTolerance, int8PreciseTolerance, NONLINEAR_ABS } from '../test/tolerance.ts';
import {
  createKernels,
  relaxedSimdSupported,
  WasmKernelError,
  type Int8Mode,
  type Int8ModeOption,
  type Kernels,
  type SimdFlavor,
} from './kernels.ts';
import { LayoutError } from './layout.ts';
import { enableRelaxedSimd, ensureBuilt, kernelBytes } from './node-loader.ts';

const relaxedOk = enableRelaxedSimd();
const FLAVORS: SimdFlavor[] = relaxedOk ? ['simd', 'relaxed-simd'] : ['simd'];
const kernels = new Map<SimdFlavor, Kernels>();

const cases = Object.fromEntries(
  CASE_FILES.map((name) => [
    name,
    JSON.parse(readFileSync(new URL(`../test/cases/${name}.json`, import.meta.url), 'utf8')),
  ]),
) as unknown as AllCases;

beforeAll(async () => {
  ensureBuilt();
  for (const flavor of FLAVORS) kernels.set(flavor, await createKernels(kernelBytes(), { flavor }));
});

/** Every element outside its tolerance, described; [] when all are within. */
function violations(
  got: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: ArrayLike<number> | number,
): string[] {
  const out: string[] = [];
  if (got.length !== expected.length) return [`length ${got.length}, expected ${expected.length}`];
  for (let i = 0; i < got.length; i++) {
    const t = typeof tol === 'number' ? tol : tol[i];
    const e = Math.fround(expected[i]);
    if (!(Math.abs(got[i] - e) <= t)) out.push(`[${i}] got ${got[i]}, expected ${e} ± ${t}`);
  }
  return out.slice(0, 8);
}

const relTol = (expected: ArrayLike<number>, rel: number) =>
  Array.from(expected, (e) => rel * Math.abs(e) + 1e-45);

it('Node can run the relaxed-SIMD module (so both flavors are tested)', () => {
  expect(relaxedOk).toBe(true);
  expect(relaxedSimdSupported()).toBe(true);
});

it('the case files are what gen-cases.ts makes from the current reference', () => {
  expect(JSON.parse(JSON.stringify(generateCases()))).toEqual(cases);
});

describe.each(FLAVORS)('%s kernels', (flavor) => {
  const k = () => kernels.get(flavor)!;
  const int8Modes: Int8ModeOption[] =
    flavor === 'relaxed-simd'
      ? ['fast', 'precise', 'relaxed-dot', 'exact', 'auto']
      : ['fast', 'precise', 'exact', 'auto'];
  /** Which of a case's tolerances a mode is held to ('auto' picks relaxed-dot or fast). */
  const tolKind = (mode: Int8ModeOption) =>
    mode === 'exact' ? 'exact' : mode === 'precise' ? 'precise' : 'fast';

  const runMatVec = (c: MatVecCase, options: Parameters<Kernels['loadMatrix']>[1]) => {
    const m = k().loadMatrix(toStored(c.w, c.rows, c.cols), {
      ...options,
      bias: c.bias ? Float32Array.from(c.bias) : undefined,
    });
    return k().matVec(m, Float32Array.from(c.x));
  };

  describe('int8 mat-vec cases', () => {
    for (const mode of int8Modes)
      it.each(cases['matvec-int8'].cases.map((c) => [c.name, c] as const))(`${mode}: %s`, (_, c) => {
        const tol = c.tolerance[tolKind(mode)];
        if (!tol) return; // this case documents no bound for the path (subnormal x in float32)
        expect(violations(runMatVec(c, { mode }), c.expected, tol)).toEqual([]);
      });
  });

  describe('2:4 int8 mat-vec cases', () => {
    const variants: Array<[string, Parameters<Kernels['loadMatrix']>[1], 'fast' | 'precise' | 'exact']> = [
      ['2:4 kernel', { sparse: 'sparse' }, 'fast'],
      ['2:4 kernel, auto', { mode: 'auto' }, 'fast'],
      ['densified', { sparse: 'dense' }, 'fast'],
      ['densified precise', { mode: 'precise' }, 'precise'],
      ['densified exact', { mode: 'exact' }, 'exact'],
    ];
    for (const [label, options, tolKind] of variants)
      it.each(cases['matvec-int8-24'].cases.map((c) => [c.name, c] as const))(`${label}: %s`, (_, c) => {
        expect(violations(runMatVec(c, options), c.expected, c.tolerance[tolKind]!)).toEqual([]);
      });
  });

  it.each(cases['matvec-f32'].cases.map((c) => [c.name, c] as const))('f32 mat-vec: %s', (_, c) => {
    expect(violations(runMatVec(c, {}), c.expected, c.tolerance.exact!)).toEqual([]);
  });

  it.each(cases.lstm.cases.map((c) => [c.name, c] as const))('LSTM cell: %s', (_, c) => {
    const H = c.hidden;
    const wih = k().loadMatrix(toStored(c.wih, 4 * H, c.inputSize), { bias: Float32Array.from(c.b) });
    const whh = k().loadMatrix(toStored(c.whh, 4 * H, H));
    const out = k().lstmCell(wih, whh, c.input, c.h, c.c);
    expect(violations(out.c, c.expected.c, c.tolerance.c)).toEqual([]);
    expect(violations(out.h, c.expected.h, c.tolerance.h)).toEqual([]);
  });

  it.each(cases['softmax-topk'].cases.map((c) => [c.name, c] as const))('softmax top-k: %s', (_, c) => {
    const r = k().softmaxTopK(c.logits, c.k);
    expect(r.top).toEqual(c.expected.top);
    expect(violations(r.probs, c.expected.probs, relTol(c.expected.probs, c.tolerance.probs))).toEqual([]);
    const gates = c.expected.gates;
    const bad = r.gates.filter((g, i) => !(Math.abs(g - gates[i]) <= c.tolerance.gates * Math.abs(gates[i])));
    expect(bad).toEqual([]);
  });

  it.each(cases['stm-read'].cases.map((c) => [c.name, c] as const))('STM read: %s', (_, c) => {
    const r = k().stmRead(c.q, Float32Array.from(c.keys), Float32Array.from(c.values), c.count);
    expect(violations(r, c.expected, c.tolerance)).toEqual([]);
    if (c.count === 0) expect(Array.from(r)).toEqual(new Array(c.dim).fill(0));
  });

  it.each(cases['sparse-code'].cases.map((c) => [c.name, c] as const))('sparse code: %s', (_, c) => {
    const m = k().loadMatrix(toStored(c.w, c.atoms, c.dim));
    const r = k().sparseCode(m, c.v, c.active);
    expect(r.atoms).toEqual(c.expected.atoms);
    expect(violations(r.weights, c.expected.weights, c.tolerance)).toEqual([]);
  });

  describe('at the r1-seed LSTM shape (2048×896), random weights', () => {
    const rng = new Rng(9);
    const rows = 2048;
    const cols = 896;
    const data = Float32Array.from({ length: rows * cols }, () => rng.normal() * 0.03);
    const x = Float32Array.from({ length: cols }, () => rng.normal());
    const bias = Float32Array.from({ length: rows }, () => rng.normal());
    const check = (t: StoredTensor, modes: Int8ModeOption[], sparse?: 'sparse' | 'dense') => {
      const w = dequantize(t).data;
      const ref = matVec(w, rows, cols, x, bias);
      const tolerances = {
        fast: int8FastTolerance(w, rows, cols, x, ref),
        precise: int8PreciseTolerance(w, rows, cols, x, ref),
        exact: f32Tolerance(w, rows, cols, x, ref),
      };
      for (const mode of modes) {
        const y = k().matVec(k().loadMatrix(t, { bias, mode, sparse }), x);
        expect(violations(y, ref, tolerances[tolKind(mode)]), mode).toEqual([]);
      }
    };
    it('dense int8, every mode', () => check(quantizeInt8({ shape: [rows, cols], data }), int8Modes));
    it('2:4 int8', () => check(quantize24({ shape: [rows, cols], data }), ['fast']));
    it('f32', () => {
      const ref = matVec(data, rows, cols, x, bias);
      const y = k().matVec(k().loadMatrix({ shape: [rows, cols], data }, { bias }), x);
      expect(violations(y, ref, f32Tolerance(data, rows, cols, x, ref))).toEqual([]);
    });
  });

  describe('exp, sigmoid and tanh', () => {
    const grid = (lo: number, hi: number, n: number) =>
      Float32Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
    const ulps = (got: number, exact: number) =>
      Math.abs(got - exact) / (2 ** -23 * 2 ** Math.floor(Math.log2(Math.abs(exact))));

    it('exp is within 3 ulps on [−87.3, 88.3]', () => {
      const x = grid(-87.3, 88.3, 40_001);
      const y = k().exp(x);
      const worst = Math.max(...Array.from(y, (v, i) => ulps(v, Math.exp(x[i]))));
      expect(worst).toBeLessThanOrEqual(3);
    });

    it('exp saturates beyond its range instead of overflowing', () => {
      const y = k().exp([200, -200, 1000, -1000]);
      expect(y[0]).toBeGreaterThan(2e38);
      expect(Number.isFinite(y[0])).toBe(true);
      expect(y[1]).toBeGreaterThanOrEqual(0);
      expect(y[1]).toBeLessThan(2e-38);
    });

    it('sigmoid is within 8 ulps of 1 absolutely on [−40, 40], and exact at the limits', () => {
      const x = grid(-40, 40, 40_001);
      const y = k().sigmoid(x);
      const bad = Array.from(y).filter((v, i) => !(Math.abs(v - 1 / (1 + Math.exp(-x[i]))) <= NONLINEAR_ABS));
      expect(bad).toEqual([]);
      expect(Array.from(k().sigmoid([0, 100, -100]))).toEqual([0.5, 1, expect.any(Number)]);
      expect(k().sigmoid([-100])[0]).toBeLessThan(1e-38);
    });

    it('tanh is within 8 ulps of 1 absolutely, within 4 ulps relatively near 0, odd, and ±1 in the tails', () => {
      const x = grid(-20, 20, 40_001);
      const y = k().tanh(x);
      const bad = Array.from(y).filter((v, i) => !(Math.abs(v - Math.tanh(x[i])) <= NONLINEAR_ABS));
      expect(bad).toEqual([]);
      const small = Float32Array.from([1e-30, 1e-8, 1e-4, 0.01, 0.1, 0.3, 0.5, 0.62, 0.63, 0.7, 1]);
      const ys = k().tanh(small);
      expect(Math.max(...Array.from(ys, (v, i) => ulps(v, Math.tanh(small[i]))))).toBeLessThanOrEqual(4);
      const neg = k().tanh(small.map((v) => -v));
      expect(Array.from(neg)).toEqual(Array.from(ys, (v) => -v));
      expect(Array.from(k().tanh([50, -50, 0]))).toEqual([1, -1, 0]);
    });

    it('vector lanes and the scalar tail agree (odd lengths)', () => {
      const x = Float32Array.from([0.3, -1.7, 2.5, -0.01, 4.2, -3.3, 0.9]);
      const whole = k().tanh(x);
      const singles = Array.from(x, (v) => k().tanh([v])[0]);
      expect(Array.from(whole)).toEqual(singles);
    });
  });

  describe('memory', () => {
    it('returns to its mark after every compute call', () => {
      const m = k().loadMatrix(quantizeInt8({ shape: [5, 7], data: new Float32Array(35).fill(0.5) }));
      const before = k().mark();
      k().matVec(m, new Float32Array(7).fill(1));
      k().softmaxTopK([1, 2, 3], 2);
      k().sparseCode(m, new Float32Array(7).fill(1), 3);
      expect(k().mark()).toBe(before);
    });

    it('keeps earlier matrices intact while memory grows', () => {
      const rng = new Rng(5);
      const t = quantizeInt8({
        shape: [40, 24],
        data: Float32Array.from({ length: 960 }, () => rng.normal()),
      });
      const x = Float32Array.from({ length: 24 }, () => rng.normal());
      const m = k().loadMatrix(t);
      const first = k().matVec(m, x);
      const size = k().memoryBytes;
      const big = new Float32Array(1 << 20);
      while (k().memoryBytes < size + (16 << 20)) k().loadMatrix({ shape: [1024, 1024], data: big });
      expect(Array.from(k().matVec(m, x))).toEqual(Array.from(first));
    });
  });

  describe('errors', () => {
    const t8 = quantizeInt8({ shape: [4, 8], data: new Float32Array(32).fill(1) });

    it('names the expected and found sizes', () => {
      const m = k().loadMatrix(t8);
      expect(() => k().matVec(m, new Float32Array(7))).toThrow(/matVec x: expected 8 elements .* found 7/);
      expect(() => k().loadMatrix({ ...t8, q: new Int8Array(31) })).toThrow(WasmKernelError);
      expect(() => k().loadMatrix(t8, { bias: new Float32Array(3) })).toThrow(
        /expected 4 elements .*found 3/,
      );
      expect(() => k().loadMatrix({ scheme: 'f32', shape: [2, 2, 2], data: new Float32Array(8) })).toThrow(
        /expected a 2-D shape/,
      );
    });

    it('rejects 2:4 tensors the layout cannot hold', () => {
      const bad = quantize24({ shape: [2, 8], data: Float32Array.from({ length: 16 }, (_, i) => i + 1) });
      const swapped = { ...bad, idx: bad.idx.map((b) => ((b & 3) << 2) | (b >> 2) | (b & 0xf0)) };
      expect(() => k().loadMatrix(swapped)).toThrow(LayoutError);
      expect(() => k().loadMatrix({ ...bad, shape: [2, 6] })).toThrow(/divisible by 4/);
    });

    it('lists the valid modes and flavors', () => {
      expect(() => k().loadMatrix(t8, { mode: 'fastest' as Int8Mode })).toThrow(
        /auto, fast, precise, exact, relaxed-dot/,
      );
      if (flavor === 'simd')
        expect(() => k().loadMatrix(t8, { mode: 'relaxed-dot' })).toThrow(/expected the relaxed-simd flavor/);
      expect(() =>
        k().setMode(k().loadMatrix(quantize24({ shape: [4, 8], data: new Float32Array(32) })), 'exact'),
      ).toThrow(/expected an int8 matrix/);
    });

    it('checks k, count and a', () => {
      expect(() => k().softmaxTopK([1, 2], 3)).toThrow(/expected an integer in 1\.\.2, found 3/);
      expect(() => k().stmRead([1, 2], new Float32Array(4), new Float32Array(4), 3)).toThrow(
        /0\.\.2, found 3/,
      );
      expect(() => k().sparseCode(k().loadMatrix(t8), new Float32Array(8), -1)).toThrow(/non-negative/);
    });
  });

  it('setMode switches an int8 matrix between the fast, precise and exact paths', () => {
    const rng = new Rng(11);
    const t = quantizeInt8({ shape: [6, 40], data: Float32Array.from({ length: 240 }, () => rng.normal()) });
    const x = Float32Array.from({ length: 40 }, () => rng.normal());
    const w = dequantize(t).data;
    const ref = matVec(w, 6, 40, x);
    const m = k().loadMatrix(t, { mode: 'fast' });
    const fast = k().matVec(m, x);
    const exact = k().matVec(k().setMode(m, 'exact'), x);
    expect(violations(exact, ref, f32Tolerance(w, 6, 40, x, ref))).toEqual([]);
    expect(Array.from(exact)).not.toEqual(Array.from(fast));
    const precise = k().setMode(m, 'precise');
    expect(precise.mode).toBe('precise');
    expect(violations(k().matVec(precise, x), ref, int8PreciseTolerance(w, 6, 40, x, ref))).toEqual([]);
    expect(k().setMode(m, 'auto').mode).toBe(k().autoMode);
  });

  it("'auto' (the default) is relaxed-dot exactly where it runs fused with 8-bit parts, else fast", () => {
    const t = quantizeInt8({ shape: [4, 8], data: new Float32Array(32).fill(1) });
    expect(k().loadMatrix(t).mode).toBe(k().autoMode);
    expect(k().loadMatrix(t, { mode: 'auto' }).mode).toBe(k().autoMode);
    expect(k().autoMode).toBe(k().relaxedDot === 'fused-8bit' ? 'relaxed-dot' : 'fast');
    if (flavor === 'simd') expect(k().relaxedDot).toBeUndefined();
    else expect(['fused-8bit', 'fused-7bit', 'unfused-7bit']).toContain(k().relaxedDot);
  });

  it("'precise' is within float32 rounding where 'fast' is not", () => {
    // x with a wide dynamic range: fast's int16 step is max|x|/32767, far above the small entries' ulps.
    const rng = new Rng(12);
    const rows = 9;
    const cols = 64;
    const t = quantizeInt8({
      shape: [rows, cols],
      data: Float32Array.from({ length: rows * cols }, () => rng.normal()),
    });
    const x = Float32Array.from({ length: cols }, (_, i) => (i === 0 ? 100 : rng.normal() * 1e-3));
    const w = dequantize(t).data;
    const ref = matVec(w, rows, cols, x);
    const f32 = f32Tolerance(w, rows, cols, x, ref);
    const err = (mode: Int8Mode) =>
      Math.max(
        ...Array.from(k().matVec(k().loadMatrix(t, { mode }), x), (v, r) => Math.abs(v - ref[r]) / f32[r]),
      );
    expect(err('precise')).toBeLessThanOrEqual(1);
    expect(err('fast')).toBeGreaterThan(1);
  });
});

describe('createKernels', () => {
  it('auto takes relaxed SIMD when given and supported, plain SIMD otherwise', async () => {
    const bytes = kernelBytes();
    expect((await createKernels(bytes)).flavor).toBe(relaxedOk ? 'relaxed-simd' : 'simd');
    expect((await createKernels({ simd: bytes.simd })).flavor).toBe('simd');
    const compiled = await createKernels({ simd: new WebAssembly.Module(bytes.simd) }, { flavor: 'simd' });
    expect(compiled.flavor).toBe('simd');
  });

  it('rejects unknown flavors and a missing relaxed module', async () => {
    const bytes = kernelBytes();
    await expect(createKernels(bytes, { flavor: 'avx' as SimdFlavor })).rejects.toThrow(
      /auto, simd, relaxed-simd/,
    );
    await expect(createKernels({ simd: bytes.simd }, { flavor: 'relaxed-simd' })).rejects.toThrow(
      /sources\.relaxed/,
    );
  });

  it('refuses a module built for the other flavor', async () => {
    const bytes = kernelBytes();
    const instance = await WebAssembly.instantiate(bytes.simd, {});
    const { Kernels } = await import('./kernels.ts');
    expect(() => new Kernels(instance.instance.exports as never, 'relaxed-simd')).toThrow(
      /expected a relaxed-simd build/,
    );
  });
});
