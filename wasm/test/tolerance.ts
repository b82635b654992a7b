// The documented error bounds of the kernels against the float32 reference (see the header of
// wasm/src/kernels.ts). The case generator writes them into the case files; the tests use them for random
// shapes too.

const U = 2 ** -24; // float32 unit roundoff
const TINY = 1e-44; // a few float32 subnormal steps, for results that round near zero

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/** The int16 range the 'fast' kernels quantize x to (mirrors quant_range in assembly/matvec.ts). */
export function quantRange(colsPad: number): number {
  if (colsPad <= 0) return 32767;
  const r = Math.trunc(2147483647 / (127 * colsPad)) - 1;
  return Math.max(1, Math.min(32767, r));
}

/**
 * The smallest range any x-quantizing int8 path may use for `cols` columns: 8191 for relaxed-dot with 7-bit
 * parts (32767 with 8-bit ones), else quantRange.
 */
export function quantRangeFloor(cols: number): number {
  return Math.min(8191, quantRange(roundUp(cols, 16)));
}

interface RowSums {
  l1: number; // Σ_k |W_rk|
  abs: number; // Σ_k |W_rk · x_k|
}

function rowSums(w: ArrayLike<number>, rows: number, cols: number, x: ArrayLike<number>): RowSums[] {
  const out: RowSums[] = [];
  for (let r = 0; r < rows; r++) {
    let l1 = 0;
    let abs = 0;
    for (let k = 0; k < cols; k++) {
      l1 += Math.abs(w[r * cols + k]);
      abs += Math.abs(w[r * cols + k] * x[k]);
    }
    out.push({ l1, abs });
  }
  return out;
}

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/**
 * int8 with x quantized per call ('fast', 'relaxed-dot', and 2:4): x rounding, the reference's rounding of
 * q·scale to float32, and the final roundings. `w` is the dequantized matrix the reference uses.
 */
export function int8FastTolerance(
  w: ArrayLike<number>,
  rows: number,
  cols: number,
  x: ArrayLike<number>,
  y: ArrayLike<number>,
): number[] {
  const q = quantRangeFloor(cols);
  const mx = maxAbs(x);
  return rowSums(w, rows, cols, x).map(
    (s, r) => (1.02 * s.l1 * mx) / (2 * q) + U * s.abs + 4 * U * Math.abs(y[r]) + TINY,
  );
}

/**
 * int8 'precise': x as an int16 value plus an int16 residual in 1/(2R) steps, so x rounding contributes
 * Σ|W|·max|x|/(4R²); the rest as for 'fast'.
 */
export function int8PreciseTolerance(
  w: ArrayLike<number>,
  rows: number,
  cols: number,
  x: ArrayLike<number>,
  y: ArrayLike<number>,
): number[] {
  const q = quantRange(roundUp(cols, 16));
  const mx = maxAbs(x);
  return rowSums(w, rows, cols, x).map(
    (s, r) => (1.02 * s.l1 * mx) / (4 * q * q) + U * s.abs + 4 * U * Math.abs(y[r]) + TINY,
  );
}

/** float32 accumulation (f32 matrices and int8 'exact'): at most colsPad/4 + a few sequential roundings. */
export function f32Tolerance(
  w: ArrayLike<number>,
  rows: number,
  cols: number,
  x: ArrayLike<number>,
  y: ArrayLike<number>,
): number[] {
  const n = roundUp(cols, 16) / 4 + 17;
  return rowSums(w, rows, cols, x).map((s, r) => n * U * s.abs + 4 * U * Math.abs(y[r]) + TINY);
}

/** Absolute error allowed for the polynomial sigmoid and tanh (values in [−1, 1]): 8 ulps of 1. */
export const NONLINEAR_ABS = 8 * U;

/**
 * LSTM outputs from gate pre-activation tolerances (4H, both mat-vecs summed). σ is 1/4-Lipschitz and tanh
 * 1-Lipschitz, so each bound holds globally, not only to first order.
 */
export function lstmTolerance(
  preTol: ArrayLike<number>,
  gates: { i: number[]; f: number[]; g: number[]; o: number[] },
  c: ArrayLike<number>,
  cNew: ArrayLike<number>,
): { h: number[]; c: number[] } {
  const H = c.length;
  const h: number[] = [];
  const cc: number[] = [];
  const e = NONLINEAR_ABS;
  for (let j = 0; j < H; j++) {
    const di = preTol[j] / 4 + e;
    const df = preTol[H + j] / 4 + e;
    const dg = preTol[2 * H + j] + e;
    const dO = preTol[3 * H + j] / 4 + e;
    const fc = Math.abs(gates.f[j] * c[j]);
    const ig = Math.abs(gates.i[j] * gates.g[j]);
    const dc =
      Math.abs(c[j]) * df +
      Math.abs(gates.g[j]) * di +
      Math.abs(gates.i[j]) * dg +
      di * dg +
      4 * U * (fc + ig);
    cc.push(dc + TINY);
    h.push(Math.abs(Math.tanh(cNew[j])) * dO + (Math.abs(gates.o[j]) + dO) * (dc + e) + 4 * U + TINY);
  }
  return { h, c: cc };
}
