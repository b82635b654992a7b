// Scalar float32 kernels for the reference. Plain loops, accumulated in float64, stored as float32:
// slow and obviously right, which is what an oracle needs.

/** y[out] = W[out, in] · x[in] (+ b) */
export function matVec(
  w: Float32Array,
  rows: number,
  cols: number,
  x: ArrayLike<number>,
  b?: Float32Array,
): Float32Array {
  if (w.length !== rows * cols)
    throw new RangeError(`matVec: W has ${w.length} elements, expected ${rows}×${cols}`);
  if (x.length !== cols) throw new RangeError(`matVec: x has ${x.length} elements, expected ${cols}`);
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = b ? b[r] : 0;
    const o = r * cols;
    for (let k = 0; k < cols; k++) acc += w[o + k] * x[k];
    y[r] = acc;
  }
  return y;
}

/** Y[n, out] = X[n, in] · Wᵀ + b, row by row. */
export function matMulT(
  x: Float32Array,
  n: number,
  w: Float32Array,
  rows: number,
  cols: number,
  b?: Float32Array,
): Float32Array {
  const y = new Float32Array(n * rows);
  for (let i = 0; i < n; i++) y.set(matVec(w, rows, cols, x.subarray(i * cols, (i + 1) * cols), b), i * rows);
  return y;
}

export const LN_EPS = 1e-5;

export function layerNorm(x: Float32Array, g: Float32Array, b: Float32Array): Float32Array {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i];
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[i] - mean) * (x[i] - mean);
  const inv = 1 / Math.sqrt(v / n + LN_EPS);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * g[i] + b[i];
  return y;
}

/** erf to ~1e-15 (W. J. Cody's rational approximations would do too; this series/continued-fraction pair is enough). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series converges fast here.
    let sum = ax;
    let term = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  if (ax > 6) return x < 0 ? -1 : 1;
  // Continued fraction for erfc, evaluated backwards (Lentz not needed at this range).
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return x < 0 ? erfc - 1 : 1 - erfc;
}

/** Exact GELU: x·Φ(x). */
export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Numerically stable softmax in float64, returned as float32. */
export function softmax(x: ArrayLike<number>): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
  const e = new Float64Array(x.length);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += e[i] = Math.exp(x[i] - max);
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = e[i] / s;
  return y;
}

/** Indices of the k largest values, largest first; ties go to the lower index. */
export function topK(x: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: x.length }, (_, i) => i);
  idx.sort((a, b) => x[b] - x[a] || a - b);
  return idx.slice(0, k);
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
