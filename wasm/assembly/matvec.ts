// Mat-vec kernels: y[r] = scale[r] · Σ_k q[r,k]·x[k] + b[r] over int8 (dense tiles or 2:4 records) and
// y = W x + b over float32. The loader (wasm/src/layout.ts) fixes the layouts; layout.ts here names them.
import {
  D_BIAS,
  D_COLS,
  D_COLS_PAD,
  D_KIND,
  D_MODE,
  D_ROWS,
  D_ROWS_PAD,
  D_ROW_SUM,
  D_SCALE,
  D_W,
  KIND_F32,
  KIND_INT8,
  KIND_INT8_24,
  MODE_EXACT,
  MODE_PRECISE,
  MODE_RELAXED_DOT,
} from './layout';
import { mark, release, scratch } from './memory';

// ---------------------------------------------------------------- x quantization

/**
 * The int16 range for x such that no i32 lane or row total can overflow: |q|·|xq| summed over colsPad
 * columns stays below 2^31. 32767 up to ~500 columns, then falling (8191 at ~2060, 2047 at ~8260).
 */
export function quant_range(colsPad: i32): i32 {
  if (colsPad <= 0) return 32767;
  const r = <i32>(<f64>2147483647 / (127 * <f64>colsPad)) - 1;
  return r > 32767 ? 32767 : r < 1 ? 1 : r;
}

// The step of the last quantize call: x[k] ≈ xq[k]·xStep.
let xStep: f64 = 0;

function absMax(x: usize, n: i32): f32 {
  let m = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) m = f32x4.max(m, f32x4.abs(v128.load(x + ((<usize>i) << 2))));
  let s = max(
    max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)),
    max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)),
  );
  for (; i < n; i++) s = max(s, abs(load<f32>(x + ((<usize>i) << 2))));
  return s;
}

/**
 * Rounds x·(range/max|x|) to integers in [−range, range] (x·c1·c2 with c1 a power of two, so that tiny
 * inputs whose inverse would overflow float32 still scale exactly). Sets xStep; returns the multiplier pair.
 * Writes nothing: the callers store in their own formats.
 */
function quantScale(x: usize, n: i32, range: i32): v128 {
  const m = absMax(x, n);
  if (!(m > 0)) {
    xStep = 0;
    return f32x4(0, 0, 0, 0);
  }
  let inv = <f64>range / <f64>m;
  let c1: f64 = 1;
  if (inv > 1e30) {
    c1 = 18446744073709551616.0; // 2^64
    inv /= c1;
  }
  const c2 = <f32>inv;
  xStep = 1 / (c1 * <f64>c2);
  return f32x4(<f32>c1, c2, 0, 0);
}

function scaleLanes(v: v128, c: v128): v128 {
  return f32x4.mul(
    f32x4.mul(v, f32x4.splat(f32x4.extract_lane(c, 0))),
    f32x4.splat(f32x4.extract_lane(c, 1)),
  );
}

/** xq[0..nPad) = int16 round(x / xStep), zero past n. */
export function quantizeX16(x: usize, n: i32, nPad: i32, range: i32, xq: usize): void {
  const c = quantScale(x, n, range);
  const c1 = f32x4.splat(f32x4.extract_lane(c, 0));
  const c2 = f32x4.splat(f32x4.extract_lane(c, 1));
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const a = i32x4.trunc_sat_f32x4_s(
      f32x4.nearest(f32x4.mul(f32x4.mul(v128.load(x + ((<usize>i) << 2)), c1), c2)),
    );
    const b = i32x4.trunc_sat_f32x4_s(
      f32x4.nearest(f32x4.mul(f32x4.mul(v128.load(x + ((<usize>i) << 2), 16), c1), c2)),
    );
    v128.store(xq + ((<usize>i) << 1), i16x8.narrow_i32x4_s(a, b));
  }
  for (; i < n; i++) {
    const v = f32x4.extract_lane(scaleLanes(f32x4.splat(load<f32>(x + ((<usize>i) << 2))), c), 0);
    store<i16>(xq + ((<usize>i) << 1), <i16>(<i32>nearest(v)));
  }
  for (; i < nPad; i++) store<i16>(xq + ((<usize>i) << 1), 0);
}

/**
 * For the relaxed dot: u = round(x/xStep) + 2^(2·bits−1) in [1, 2^(2·bits) − 1], stored as hi = u >> bits and
 * lo = u & (2^bits − 1) bytes, so x/xStep = 2^bits·hi + lo − 2^(2·bits−1), within ±(2^(2·bits−1) − 1): 8191
 * for 7-bit parts, 32767 for 8-bit ones. Padding columns get u = 0; their weights are zero.
 */
export function quantizeXParts(x: usize, n: i32, nPad: i32, bits: i32, hi: usize, lo: usize): void {
  const half = 1 << (2 * bits - 1);
  const c = quantScale(x, n, half - 1);
  const c1 = f32x4.splat(f32x4.extract_lane(c, 0));
  const c2 = f32x4.splat(f32x4.extract_lane(c, 1));
  const off = i32x4.splat(half);
  const mask = (1 << bits) - 1;
  const maskv = i32x4.splat(mask);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const p = x + ((<usize>i) << 2);
    const u0 = i32x4.add(
      i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(f32x4.mul(v128.load(p), c1), c2))),
      off,
    );
    const u1 = i32x4.add(
      i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(f32x4.mul(v128.load(p, 16), c1), c2))),
      off,
    );
    const u2 = i32x4.add(
      i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(f32x4.mul(v128.load(p, 32), c1), c2))),
      off,
    );
    const u3 = i32x4.add(
      i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(f32x4.mul(v128.load(p, 48), c1), c2))),
      off,
    );
    v128.store(
      hi + <usize>i,
      i8x16.narrow_i16x8_u(
        i16x8.narrow_i32x4_s(i32x4.shr_u(u0, bits), i32x4.shr_u(u1, bits)),
        i16x8.narrow_i32x4_s(i32x4.shr_u(u2, bits), i32x4.shr_u(u3, bits)),
      ),
    );
    v128.store(
      lo + <usize>i,
      i8x16.narrow_i16x8_u(
        i16x8.narrow_i32x4_s(v128.and(u0, maskv), v128.and(u1, maskv)),
        i16x8.narrow_i32x4_s(v128.and(u2, maskv), v128.and(u3, maskv)),
      ),
    );
  }
  for (; i < n; i++) {
    const v = f32x4.extract_lane(scaleLanes(f32x4.splat(load<f32>(x + ((<usize>i) << 2))), c), 0);
    const u = <i32>nearest(v) + half;
    store<u8>(hi + <usize>i, <u8>(u >> bits));
    store<u8>(lo + <usize>i, <u8>(u & mask));
  }
  for (; i < nPad; i++) {
    store<u8>(hi + <usize>i, 0);
    store<u8>(lo + <usize>i, 0);
  }
}

/** Lanes 0-1 of a and 0-1 of b, as int32 lanes 0-1 and 2-3 (f64 values already integral). */
function truncPair(a: v128, b: v128): v128 {
  return i32x4.shuffle(i32x4.trunc_sat_f64x2_s_zero(a), i32x4.trunc_sat_f64x2_s_zero(b), 0, 1, 4, 5);
}

/**
 * For 'precise': x/xStep = v ≈ xh + xl/(2·range), both int16 in [−range, range], in float64 so that only the
 * residual's rounding (at most 1/(4·range) of a step) is lost. xStep = max|x|/range.
 */
export function quantizeX16x2(x: usize, n: i32, nPad: i32, range: i32, xh: usize, xl: usize): void {
  const m = <f64>absMax(x, n);
  let i = 0;
  if (m > 0) {
    const s = <f64>range / m; // ≤ 32767 / 2⁻¹⁴⁹: no float64 overflow, unlike the float32 scaling above
    xStep = m / <f64>range;
    const sv = f64x2.splat(s);
    const tw = f64x2.splat(2 * <f64>range);
    for (; i + 4 <= n; i += 4) {
      const v = v128.load(x + ((<usize>i) << 2));
      const a = f64x2.mul(f64x2.promote_low_f32x4(v), sv);
      const b = f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)), sv);
      const ah = f64x2.nearest(a);
      const bh = f64x2.nearest(b);
      const al = f64x2.nearest(f64x2.mul(f64x2.sub(a, ah), tw));
      const bl = f64x2.nearest(f64x2.mul(f64x2.sub(b, bh), tw));
      const h = truncPair(ah, bh);
      const l = truncPair(al, bl);
      const o = (<usize>i) << 1;
      v128.store_lane<i64>(xh + o, i16x8.narrow_i32x4_s(h, h), 0);
      v128.store_lane<i64>(xl + o, i16x8.narrow_i32x4_s(l, l), 0);
    }
    for (; i < n; i++) {
      const a = <f64>load<f32>(x + ((<usize>i) << 2)) * s;
      const ah = nearest(a);
      store<i16>(xh + ((<usize>i) << 1), <i16>(<i32>ah));
      store<i16>(xl + ((<usize>i) << 1), <i16>(<i32>nearest((a - ah) * 2 * <f64>range)));
    }
  } else xStep = 0;
  for (; i < nPad; i++) {
    store<i16>(xh + ((<usize>i) << 1), 0);
    store<i16>(xl + ((<usize>i) << 1), 0);
  }
}

// ---------------------------------------------------------------- finishing rows

/** y[r] = f32(dot·xStep·scale[r] + b[r]) in f64, so that neither tiny nor huge scales lose range on the way. */
function finishRow(desc: usize, y: usize, r: i32, dot: f64): void {
  const scale = <f64>load<f32>(load<usize>(desc + D_SCALE) + ((<usize>r) << 2));
  const bias = load<usize>(desc + D_BIAS);
  let v = dot * xStep * scale;
  if (bias != 0) v += <f64>load<f32>(bias + ((<usize>r) << 2));
  store<f32>(y + ((<usize>r) << 2), <f32>v);
}

function finish4(desc: usize, y: usize, r: i32, rows: i32, s: v128): void {
  if (r < rows) finishRow(desc, y, r, <f64>i32x4.extract_lane(s, 0));
  if (r + 1 < rows) finishRow(desc, y, r + 1, <f64>i32x4.extract_lane(s, 1));
  if (r + 2 < rows) finishRow(desc, y, r + 2, <f64>i32x4.extract_lane(s, 2));
  if (r + 3 < rows) finishRow(desc, y, r + 3, <f64>i32x4.extract_lane(s, 3));
}

/** Lane i of the result = the horizontal sum of a_i. */
function hsum4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const s01 = i32x4.add(i32x4.shuffle(a0, a1, 0, 4, 1, 5), i32x4.shuffle(a0, a1, 2, 6, 3, 7));
  const s23 = i32x4.add(i32x4.shuffle(a2, a3, 0, 4, 1, 5), i32x4.shuffle(a2, a3, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(s01, s23, 0, 1, 4, 5), i32x4.shuffle(s01, s23, 2, 3, 6, 7));
}

function hsum4f(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const s01 = f32x4.add(i32x4.shuffle(a0, a1, 0, 4, 1, 5), i32x4.shuffle(a0, a1, 2, 6, 3, 7));
  const s23 = f32x4.add(i32x4.shuffle(a2, a3, 0, 4, 1, 5), i32x4.shuffle(a2, a3, 2, 6, 3, 7));
  return f32x4.add(i32x4.shuffle(s01, s23, 0, 1, 4, 5), i32x4.shuffle(s01, s23, 2, 3, 6, 7));
}

// ---------------------------------------------------------------- dense int8

// Tiles of 4 rows × 16 columns, 64 contiguous bytes, row-block major: one pointer walks the whole matrix.
//
// workerd runs wasm with explicit bounds checks here (as fast as V8's --wasm-enforce-bounds-checks, ~2×
// slower than with none), so every load costs a compare and a branch besides the load: these loops load
// each weight byte once as part of a full 16-byte load, and share every x load among a tile's 4 rows.

// One row's 16 weights against the int16 x chunk (x0: columns 0-7, x1: 8-15), widened in registers.
function dot16(acc: v128, v: v128, x0: v128, x1: v128): v128 {
  return i32x4.add(
    acc,
    i32x4.add(
      i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(v), x0),
      i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(v), x1),
    ),
  );
}

/** Per 4-row tile, lane i of sums[r..r+4) = Σ_k q[r+i,k]·xq[k] (int16 xq, colsPad of them). */
function int16Sums(w: usize, xq: usize, rowsPad: i32, colsPad: i32, sums: usize): void {
  const blockBytes = (<usize>colsPad) << 2;
  for (let r = 0; r < rowsPad; r += 4) {
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    let xp = xq;
    const end = w + blockBytes;
    while (w < end) {
      const x0 = v128.load(xp);
      const x1 = v128.load(xp, 16);
      a0 = dot16(a0, v128.load(w), x0, x1);
      a1 = dot16(a1, v128.load(w, 16), x0, x1);
      a2 = dot16(a2, v128.load(w, 32), x0, x1);
      a3 = dot16(a3, v128.load(w, 48), x0, x1);
      w += 64;
      xp += 32;
    }
    v128.store(sums + ((<usize>r) << 2), hsum4(a0, a1, a2, a3));
  }
}

/** The same for two int16 vectors at once (precise: value and residual), sharing each widened weight. */
function int16Sums2(w: usize, xh: usize, xl: usize, rowsPad: i32, colsPad: i32, sh: usize, sl: usize): void {
  const blockBytes = (<usize>colsPad) << 2;
  for (let r = 0; r < rowsPad; r += 4) {
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    let b0 = i32x4.splat(0);
    let b1 = i32x4.splat(0);
    let b2 = i32x4.splat(0);
    let b3 = i32x4.splat(0);
    let k: usize = 0;
    const end = w + blockBytes;
    while (w < end) {
      const h0 = v128.load(xh + k);
      const h1 = v128.load(xh + k, 16);
      const l0 = v128.load(xl + k);
      const l1 = v128.load(xl + k, 16);
      let v = v128.load(w);
      let p = i16x8.extend_low_i8x16_s(v);
      let q = i16x8.extend_high_i8x16_s(v);
      a0 = i32x4.add(a0, i32x4.add(i32x4.dot_i16x8_s(p, h0), i32x4.dot_i16x8_s(q, h1)));
      b0 = i32x4.add(b0, i32x4.add(i32x4.dot_i16x8_s(p, l0), i32x4.dot_i16x8_s(q, l1)));
      v = v128.load(w, 16);
      p = i16x8.extend_low_i8x16_s(v);
      q = i16x8.extend_high_i8x16_s(v);
      a1 = i32x4.add(a1, i32x4.add(i32x4.dot_i16x8_s(p, h0), i32x4.dot_i16x8_s(q, h1)));
      b1 = i32x4.add(b1, i32x4.add(i32x4.dot_i16x8_s(p, l0), i32x4.dot_i16x8_s(q, l1)));
      v = v128.load(w, 32);
      p = i16x8.extend_low_i8x16_s(v);
      q = i16x8.extend_high_i8x16_s(v);
      a2 = i32x4.add(a2, i32x4.add(i32x4.dot_i16x8_s(p, h0), i32x4.dot_i16x8_s(q, h1)));
      b2 = i32x4.add(b2, i32x4.add(i32x4.dot_i16x8_s(p, l0), i32x4.dot_i16x8_s(q, l1)));
      v = v128.load(w, 48);
      p = i16x8.extend_low_i8x16_s(v);
      q = i16x8.extend_high_i8x16_s(v);
      a3 = i32x4.add(a3, i32x4.add(i32x4.dot_i16x8_s(p, h0), i32x4.dot_i16x8_s(q, h1)));
      b3 = i32x4.add(b3, i32x4.add(i32x4.dot_i16x8_s(p, l0), i32x4.dot_i16x8_s(q, l1)));
      w += 64;
      k += 32;
    }
    const o = (<usize>r) << 2;
    v128.store(sh + o, hsum4(a0, a1, a2, a3));
    v128.store(sl + o, hsum4(b0, b1, b2, b3));
  }
}

// x quantized to int16 with one scale; integer sums, rows finished in float64.
function int8Fast(desc: usize, x: usize, y: usize): void {
  const rows = load<i32>(desc + D_ROWS);
  const cols = load<i32>(desc + D_COLS);
  const rowsPad = load<i32>(desc + D_ROWS_PAD);
  const colsPad = load<i32>(desc + D_COLS_PAD);
  const m = mark();
  const xq = scratch((<usize>colsPad) << 1);
  const sums = scratch((<usize>rowsPad) << 2);
  quantizeX16(x, cols, colsPad, quant_range(colsPad), xq);
  int16Sums(load<usize>(desc + D_W), xq, rowsPad, colsPad, sums);
  for (let r = 0; r < rows; r++) finishRow(desc, y, r, <f64>load<i32>(sums + ((<usize>r) << 2)));
  release(m);
}

// x = xStep·(xh + xl/(2R)): two integer sums over the same weights, joined in float64.
function int8Precise(desc: usize, x: usize, y: usize): void {
  const rows = load<i32>(desc + D_ROWS);
  const cols = load<i32>(desc + D_COLS);
  const rowsPad = load<i32>(desc + D_ROWS_PAD);
  const colsPad = load<i32>(desc + D_COLS_PAD);
  const range = quant_range(colsPad);
  const m = mark();
  const xh = scratch((<usize>colsPad) << 1);
  const xl = scratch((<usize>colsPad) << 1);
  const sh = scratch((<usize>rowsPad) << 2);
  const sl = scratch((<usize>rowsPad) << 2);
  quantizeX16x2(x, cols, colsPad, range, xh, xl);
  int16Sums2(load<usize>(desc + D_W), xh, xl, rowsPad, colsPad, sh, sl);
  const inv = 1 / (2 * <f64>range);
  for (let r = 0; r < rows; r++) {
    const o = (<usize>r) << 2;
    finishRow(desc, y, r, <f64>load<i32>(sh + o) + <f64>load<i32>(sl + o) * inv);
  }
  release(m);
}

// Same tiles; exact: each int8 goes to float32 and is multiplied by x as given (float32 accumulation).
function int8Exact(desc: usize, x: usize, y: usize): void {
  const rows = load<i32>(desc + D_ROWS);
  const cols = load<i32>(desc + D_COLS);
  const rowsPad = load<i32>(desc + D_ROWS_PAD);
  const colsPad = load<i32>(desc + D_COLS_PAD);
  const m = mark();
  const xp0 = padX(x, cols, colsPad);
  let w = load<usize>(desc + D_W);
  const blockBytes = (<usize>colsPad) << 2;
  xStep = 1;
  for (let r = 0; r < rowsPad; r += 4) {
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    let xp = xp0;
    const end = w + blockBytes;
    while (w < end) {
      const x0 = v128.load(xp);
      const x1 = v128.load(xp, 16);
      const x2 = v128.load(xp, 32);
      const x3 = v128.load(xp, 48);
      a0 = dequantDot(a0, v128.load(w, 0), x0, x1, x2, x3);
      a1 = dequantDot(a1, v128.load(w, 16), x0, x1, x2, x3);
      a2 = dequantDot(a2, v128.load(w, 32), x0, x1, x2, x3);
      a3 = dequantDot(a3, v128.load(w, 48), x0, x1, x2, x3);
      w += 64;
      xp += 64;
    }
    const s = hsum4f(a0, a1, a2, a3);
    if (r < rows) finishRow(desc, y, r, <f64>f32x4.extract_lane(s, 0));
    if (r + 1 < rows) finishRow(desc, y, r + 1, <f64>f32x4.extract_lane(s, 1));
    if (r + 2 < rows) finishRow(desc, y, r + 2, <f64>f32x4.extract_lane(s, 2));
    if (r + 3 < rows) finishRow(desc, y, r + 3, <f64>f32x4.extract_lane(s, 3));
  }
  release(m);
}

function dequantDot(acc: v128, v: v128, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const lo = i16x8.extend_low_i8x16_s(v);
  const hi = i16x8.extend_high_i8x16_s(v);
  acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), x0));
  acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), x1));
  acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), x2));
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), x3));
}

/** A copy of x in scratch, zero-padded to nPad floats, so that the kernels need no column tail. */
function padX(x: usize, n: i32, nPad: i32): usize {
  const p = scratch((<usize>nPad) << 2);
  memory.copy(p, x, (<usize>n) << 2);
  memory.fill(p + ((<usize>n) << 2), 0, (<usize>(nPad - n)) << 2);
  return p;
}

// Set by the host after probing the engine (wasm/src/kernels.ts): whether the fused
// i32x4.relaxed_dot_i8x16_i7x16_add_s computes right here (V8 11.3's baseline compiler, Node 20, loses
// the accumulator on CPUs with AVX-VNNI; later V8 compiles it to one vpdpbusd, right in both tiers), and
// whether it takes x bytes ≥ 128 as unsigned without saturating (vpdpbusd does; the pmaddubsw fallback
// saturates, and signed-by-signed hardware reads them as negative), which lets x carry 16 bits in 2 parts.
let fusedDot = false;
let partBits = 7;

export function set_relaxed_dot(fused: i32, bits: i32): void {
  fusedDot = fused != 0;
  partBits = fusedDot && bits == 8 ? 8 : 7;
}

/** acc + Σ of each 4 adjacent i8×u7 products, unfused: dot to i16 pairs, then pairwise add to i32. */
function dot7(acc: v128, w: v128, x: v128): v128 {
  return i32x4.add(acc, i32x4.extadd_pairwise_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(w, x)));
}

/** Per tile, sums of q·hi into sh and q·lo into sl (hi, lo: 7-bit bytes), with the fused instruction. */
function relaxedSumsFused(
  w: usize,
  hi: usize,
  lo: usize,
  rowsPad: i32,
  colsPad: i32,
  sh: usize,
  sl: usize,
): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const blockBytes = (<usize>colsPad) << 2;
    for (let r = 0; r < rowsPad; r += 4) {
      let h0 = i32x4.splat(0);
      let h1 = i32x4.splat(0);
      let h2 = i32x4.splat(0);
      let h3 = i32x4.splat(0);
      let l0 = i32x4.splat(0);
      let l1 = i32x4.splat(0);
      let l2 = i32x4.splat(0);
      let l3 = i32x4.splat(0);
      let k: usize = 0;
      const end = w + blockBytes;
      // Two 16-column chunks per pass (fewer loop branches), then the odd one.
      const pairsEnd = w + (blockBytes & ~(<usize>127));
      while (w < pairsEnd) {
        let a = v128.load(hi + k);
        let b = v128.load(lo + k);
        let v = v128.load(w);
        h0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, a, h0);
        l0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, b, l0);
        v = v128.load(w, 16);
        h1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, a, h1);
        l1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, b, l1);
        v = v128.load(w, 32);
        h2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, a, h2);
        l2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, b, l2);
        v = v128.load(w, 48);
        h3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, a, h3);
        l3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, b, l3);
        a = v128.load(hi + k, 16);
        b = v128.load(lo + k, 16);
        v = v128.load(w, 64);
        h0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, a, h0);
        l0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, b, l0);
        v = v128.load(w, 80);
        h1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, a, h1);
        l1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, b, l1);
        v = v128.load(w, 96);
        h2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, a, h2);
        l2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, b, l2);
        v = v128.load(w, 112);
        h3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, a, h3);
        l3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, b, l3);
        w += 128;
        k += 32;
      }
      if (w < end) {
        const a = v128.load(hi + k);
        const b = v128.load(lo + k);
        let v = v128.load(w);
        h0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, a, h0);
        l0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, b, l0);
        v = v128.load(w, 16);
        h1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, a, h1);
        l1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, b, l1);
        v = v128.load(w, 32);
        h2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, a, h2);
        l2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, b, l2);
        v = v128.load(w, 48);
        h3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, a, h3);
        l3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, b, l3);
        w += 64;
      }
      const o = (<usize>r) << 2;
      v128.store(sh + o, hsum4(h0, h1, h2, h3));
      v128.store(sl + o, hsum4(l0, l1, l2, l3));
    }
  }
}

/** The same with the unfused form, for engines that miscompile the fused one. */
function relaxedSumsSplit(
  w: usize,
  hi: usize,
  lo: usize,
  rowsPad: i32,
  colsPad: i32,
  sh: usize,
  sl: usize,
): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const blockBytes = (<usize>colsPad) << 2;
    for (let r = 0; r < rowsPad; r += 4) {
      let h0 = i32x4.splat(0);
      let h1 = i32x4.splat(0);
      let h2 = i32x4.splat(0);
      let h3 = i32x4.splat(0);
      let l0 = i32x4.splat(0);
      let l1 = i32x4.splat(0);
      let l2 = i32x4.splat(0);
      let l3 = i32x4.splat(0);
      let k: usize = 0;
      const end = w + blockBytes;
      while (w < end) {
        const a = v128.load(hi + k);
        const b = v128.load(lo + k);
        let v = v128.load(w);
        h0 = dot7(h0, v, a);
        l0 = dot7(l0, v, b);
        v = v128.load(w, 16);
        h1 = dot7(h1, v, a);
        l1 = dot7(l1, v, b);
        v = v128.load(w, 32);
        h2 = dot7(h2, v, a);
        l2 = dot7(l2, v, b);
        v = v128.load(w, 48);
        h3 = dot7(h3, v, a);
        l3 = dot7(l3, v, b);
        w += 64;
        k += 16;
      }
      const o = (<usize>r) << 2;
      v128.store(sh + o, hsum4(h0, h1, h2, h3));
      v128.store(sl + o, hsum4(l0, l1, l2, l3));
    }
  }
}

// Relaxed: Σ q·x = 2^b·Σ q·hi + Σ q·lo − 2^(2b−1)·Σ q (b = 7 or 8 bits per part), two i8×u(b) dots per
// 16 columns and no widening.
/**
 * y[r] = f32((2^bits·sh[r] + sl[r] − 2^(2·bits−1)·rowSum[r])·xStep·scale[r] + b[r]), two rows per f64x2 step:
 * the same float64 operations in the same order as finishRow, so the same bits, in about half the time (one
 * row at a time this loop was ~8% of a 2048-row mat-vec).
 */
function finishRelaxed(
  desc: usize,
  y: usize,
  rows: i32,
  bits: i32,
  sh: usize,
  sl: usize,
  rowSum: usize,
): void {
  const scale = load<usize>(desc + D_SCALE);
  const bias = load<usize>(desc + D_BIAS);
  const hiW = f64x2.splat(<f64>(1 << bits));
  const zero = f64x2.splat(<f64>(1 << (2 * bits - 1)));
  const step = f64x2.splat(xStep);
  let r = 0;
  for (; r + 2 <= rows; r += 2) {
    const o = (<usize>r) << 2;
    const dot = f64x2.sub(
      f64x2.add(
        f64x2.mul(hiW, f64x2.convert_low_i32x4_s(v128.load64_zero(sh + o))),
        f64x2.convert_low_i32x4_s(v128.load64_zero(sl + o)),
      ),
      f64x2.mul(zero, f64x2.convert_low_i32x4_s(v128.load64_zero(rowSum + o))),
    );
    let v = f64x2.mul(f64x2.mul(dot, step), f64x2.promote_low_f32x4(v128.load64_zero(scale + o)));
    if (bias != 0) v = f64x2.add(v, f64x2.promote_low_f32x4(v128.load64_zero(bias + o)));
    v128.store_lane<i64>(y + o, f32x4.demote_f64x2_zero(v), 0);
  }
  for (; r < rows; r++) {
    const o = (<usize>r) << 2;
    const dot =
      <f64>(1 << bits) * <f64>load<i32>(sh + o) +
      <f64>load<i32>(sl + o) -
      <f64>(1 << (2 * bits - 1)) * <f64>load<i32>(rowSum + o);
    finishRow(desc, y, r, dot);
  }
}

function int8RelaxedDot(desc: usize, x: usize, y: usize): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const rows = load<i32>(desc + D_ROWS);
    const cols = load<i32>(desc + D_COLS);
    const rowsPad = load<i32>(desc + D_ROWS_PAD);
    const colsPad = load<i32>(desc + D_COLS_PAD);
    const rowSum = load<usize>(desc + D_ROW_SUM);
    const m = mark();
    const hi = scratch(<usize>colsPad);
    const lo = scratch(<usize>colsPad);
    const sh = scratch((<usize>rowsPad) << 2);
    const sl = scratch((<usize>rowsPad) << 2);
    const bits = partBits;
    quantizeXParts(x, cols, colsPad, bits, hi, lo);
    const w = load<usize>(desc + D_W);
    if (fusedDot) relaxedSumsFused(w, hi, lo, rowsPad, colsPad, sh, sl);
    else relaxedSumsSplit(w, hi, lo, rowsPad, colsPad, sh, sl);
    finishRelaxed(desc, y, rows, bits, sh, sl, rowSum);
    release(m);
  } else {
    int8Fast(desc, x, y);
  }
}

// ---------------------------------------------------------------- 2:4 int8

function swizzle(t: v128, s: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i8x16.relaxed_swizzle(t, s);
  return i8x16.swizzle(t, s);
}

// Blocks of 8 rows. Per group of 4 columns, a 48-byte record: the 16 kept weights (row-major, first then
// second position), then for rows 0-3 and 4-7 the swizzle indices that pick each row's two x values out of
// the 16-byte (8-column, int16) x chunk of its group pair. Lanes are rows, so pmaddwd sums each row's pair
// and no horizontal sum is needed.
function int8Sparse(desc: usize, x: usize, y: usize): void {
  const rows = load<i32>(desc + D_ROWS);
  const cols = load<i32>(desc + D_COLS);
  const rowsPad = load<i32>(desc + D_ROWS_PAD);
  const colsPad = load<i32>(desc + D_COLS_PAD);
  const m = mark();
  const xq = scratch((<usize>colsPad) << 1);
  quantizeX16(x, cols, colsPad, quant_range(colsPad), xq);
  let w = load<usize>(desc + D_W);
  const blockBytes = <usize>colsPad * 12; // colsPad/4 groups × 48 bytes
  for (let r = 0; r < rowsPad; r += 8) {
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let b0 = i32x4.splat(0);
    let b1 = i32x4.splat(0);
    let xp = xq;
    const end = w + blockBytes;
    while (w < end) {
      const t = v128.load(xp);
      a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load8x8_s(w, 0), swizzle(t, v128.load(w, 16))));
      a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load8x8_s(w, 8), swizzle(t, v128.load(w, 32))));
      b0 = i32x4.add(b0, i32x4.dot_i16x8_s(v128.load8x8_s(w, 48), swizzle(t, v128.load(w, 64))));
      b1 = i32x4.add(b1, i32x4.dot_i16x8_s(v128.load8x8_s(w, 56), swizzle(t, v128.load(w, 80))));
      w += 96;
      xp += 16;
    }
    finish4(desc, y, r, rows, i32x4.add(a0, b0));
    finish4(desc, y, r + 4, rows, i32x4.add(a1, b1));
  }
  release(m);
}

// ---------------------------------------------------------------- float32

// Row-major, rows padded to 4 and columns to 8: four row streams, two accumulators each.
function f32MatVec(desc: usize, x: usize, y: usize): void {
  const rows = load<i32>(desc + D_ROWS);
  const cols = load<i32>(desc + D_COLS);
  const rowsPad = load<i32>(desc + D_ROWS_PAD);
  const colsPad = load<i32>(desc + D_COLS_PAD);
  const bias = load<usize>(desc + D_BIAS);
  const m = mark();
  const xp = padX(x, cols, colsPad);
  const w = load<usize>(desc + D_W);
  const stride = (<usize>colsPad) << 2;
  for (let r = 0; r < rowsPad; r += 4) {
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0);
    let b1 = f32x4.splat(0);
    let b2 = f32x4.splat(0);
    let b3 = f32x4.splat(0);
    const p0 = w + <usize>r * stride;
    const p1 = p0 + stride;
    const p2 = p1 + stride;
    const p3 = p2 + stride;
    for (let k: usize = 0; k < stride; k += 32) {
      const x0 = v128.load(xp + k);
      const x1 = v128.load(xp + k, 16);
      a0 = f32x4.add(a0, f32x4.mul(v128.load(p0 + k), x0));
      b0 = f32x4.add(b0, f32x4.mul(v128.load(p0 + k, 16), x1));
      a1 = f32x4.add(a1, f32x4.mul(v128.load(p1 + k), x0));
      b1 = f32x4.add(b1, f32x4.mul(v128.load(p1 + k, 16), x1));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(p2 + k), x0));
      b2 = f32x4.add(b2, f32x4.mul(v128.load(p2 + k, 16), x1));
      a3 = f32x4.add(a3, f32x4.mul(v128.load(p3 + k), x0));
      b3 = f32x4.add(b3, f32x4.mul(v128.load(p3 + k, 16), x1));
    }
    let s = hsum4f(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3));
    for (let i = 0; i < 4; i++) {
      if (r + i >= rows) break;
      let v = <f64>f32x4.extract_lane(s, 0);
      if (bias != 0) v += <f64>load<f32>(bias + ((<usize>(r + i)) << 2));
      store<f32>(y + ((<usize>(r + i)) << 2), <f32>v);
      s = i32x4.shuffle(s, s, 1, 2, 3, 0);
    }
  }
  release(m);
}

// ---------------------------------------------------------------- dispatch

/** y[rows] = W x[cols] + b for any descriptor. x and y must not overlap. */
export function matvec(desc: usize, x: usize, y: usize): void {
  const kind = load<i32>(desc + D_KIND);
  if (kind == KIND_INT8) {
    const mode = load<i32>(desc + D_MODE);
    if (mode == MODE_EXACT) int8Exact(desc, x, y);
    else if (mode == MODE_RELAXED_DOT) int8RelaxedDot(desc, x, y);
    else if (mode == MODE_PRECISE) int8Precise(desc, x, y);
    else int8Fast(desc, x, y);
  } else if (kind == KIND_INT8_24) int8Sparse(desc, x, y);
  else if (kind == KIND_F32) f32MatVec(desc, x, y);
  else unreachable();
}
