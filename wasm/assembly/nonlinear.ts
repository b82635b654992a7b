// exp, sigmoid and tanh on f32x4 lanes, for the LSTM cell. Polynomials fitted (minimax, relative error)
// for this file; the tests hold them to a few ulps of Math.exp / Math.tanh.

// exp(x) = 2^k · e^r, r = x − k·ln2 in [−ln2/2, ln2/2]; ln2 split so that k·LN2_HI is exact in f32.
const LOG2E: f32 = 1.44269504;
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.1219444e-4;
// Above this 2^k would need k = 128; the tests cover [EXP_MIN, EXP_MAX] and saturation beyond it.
const EXP_MAX: f32 = 88.37;
const EXP_MIN: f32 = -87.33;
// e^r ≈ 1 + r + r²·(E0 + r·(E1 + r·(E2 + r·(E3 + r·E4))))
const E0: f32 = 0.49999994;
const E1: f32 = 0.16666521;
const E2: f32 = 0.04166839;
const E3: f32 = 0.00836871;
const E4: f32 = 0.0013814613;
// tanh(x) ≈ x + x·z·(T0 + z·(T1 + z·(T2 + z·(T3 + z·T4)))), z = x², for |x| < TANH_SMALL, where the
// 1 − 2/(e^{2x}+1) form would cancel.
const TANH_SMALL: f32 = 0.625;
const T0: f32 = -0.3333328;
const T1: f32 = 0.13331442;
const T2: f32 = -0.053739715;
const T3: f32 = 0.020639086;
const T4: f32 = -0.0057049864;

function madd(a: v128, b: v128, c: v128): v128 {
  return f32x4.add(f32x4.mul(a, b), c);
}

export function exp4(x: v128): v128 {
  x = f32x4.min(f32x4.max(x, f32x4.splat(EXP_MIN)), f32x4.splat(EXP_MAX));
  const k = f32x4.nearest(f32x4.mul(x, f32x4.splat(LOG2E)));
  let r = f32x4.sub(x, f32x4.mul(k, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(k, f32x4.splat(LN2_LO)));
  let q = madd(r, f32x4.splat(E4), f32x4.splat(E3));
  q = madd(r, q, f32x4.splat(E2));
  q = madd(r, q, f32x4.splat(E1));
  q = madd(r, q, f32x4.splat(E0));
  const p = f32x4.add(f32x4.splat(1), f32x4.add(r, f32x4.mul(f32x4.mul(r, r), q)));
  const bits = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(k), i32x4.splat(127)), 23);
  return f32x4.mul(p, bits);
}

export function sigmoid4(x: v128): v128 {
  return f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), exp4(f32x4.neg(x))));
}

export function tanh4(x: v128): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.mul(x, x);
  let q = madd(z, f32x4.splat(T4), f32x4.splat(T3));
  q = madd(z, q, f32x4.splat(T2));
  q = madd(z, q, f32x4.splat(T1));
  q = madd(z, q, f32x4.splat(T0));
  const small = f32x4.add(x, f32x4.mul(f32x4.mul(x, z), q));
  const e = exp4(f32x4.add(ax, ax));
  const t = f32x4.sub(f32x4.splat(1), f32x4.div(f32x4.splat(2), f32x4.add(e, f32x4.splat(1))));
  const large = v128.or(t, v128.and(x, i32x4.splat(0x80000000)));
  return v128.bitselect(small, large, f32x4.lt(ax, f32x4.splat(TANH_SMALL)));
}

// Scalar forms go through lane 0 so that a tail element gets exactly what its vector neighbours would.
export function sigmoid1(x: f32): f32 {
  return f32x4.extract_lane(sigmoid4(f32x4.splat(x)), 0);
}

export function tanh1(x: f32): f32 {
  return f32x4.extract_lane(tanh4(f32x4.splat(x)), 0);
}

export function exp1(x: f32): f32 {
  return f32x4.extract_lane(exp4(f32x4.splat(x)), 0);
}

// Array forms, exported for tests and for callers that want the same approximations.
export function vexp(x: usize, n: i32, out: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(out + ((<usize>i) << 2), exp4(v128.load(x + ((<usize>i) << 2))));
  for (; i < n; i++) store<f32>(out + ((<usize>i) << 2), exp1(load<f32>(x + ((<usize>i) << 2))));
}

export function vsigmoid(x: usize, n: i32, out: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(out + ((<usize>i) << 2), sigmoid4(v128.load(x + ((<usize>i) << 2))));
  for (; i < n; i++) store<f32>(out + ((<usize>i) << 2), sigmoid1(load<f32>(x + ((<usize>i) << 2))));
}

export function vtanh(x: usize, n: i32, out: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(out + ((<usize>i) << 2), tanh4(v128.load(x + ((<usize>i) << 2))));
  for (; i < n; i++) store<f32>(out + ((<usize>i) << 2), tanh1(load<f32>(x + ((<usize>i) << 2))));
}
