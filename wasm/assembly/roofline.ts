// Roofline microbenchmarks for bench/edge-compute.ts, separate from the kernels (not exported by index.ts):
// how fast this engine streams memory, and how many multiply-adds per second its SIMD units retire with the
// instructions the mat-vec kernels use. The benchmark compiles this file itself (simd + relaxed-simd).
//
// Every loop keeps several independent accumulators, so that instruction throughput, not latency, bounds it,
// and returns a value derived from all of them, so that nothing is optimized away.

let heapTop: usize = 0;

/** A 64-byte aligned buffer of `bytes`, filled with a byte pattern; 0 when memory cannot grow. */
export function buffer(bytes: i32): usize {
  if (heapTop == 0) heapTop = (__heap_base + 63) & ~(<usize>63);
  const p = heapTop;
  const end = p + <usize>bytes;
  const pages = <i32>((end + 0xffff) >>> 16);
  if (pages > memory.size() && memory.grow(pages - memory.size()) < 0) return 0;
  for (let i: usize = 0; i < <usize>bytes; i++) store<u8>(p + i, <u8>((i * 131 + 7) & 0x7f));
  heapTop = (end + 63) & ~(<usize>63);
  return p;
}

function sum4(a: v128, b: v128, c: v128, d: v128): i32 {
  const s = i32x4.add(i32x4.add(a, b), i32x4.add(c, d));
  return (
    i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3)
  );
}

/** Reads [p, p + bytes) `reps` times with 16-byte loads (bytes a multiple of 64). */
export function read_bytes(p: usize, bytes: i32, reps: i32): i32 {
  let a0 = i32x4.splat(0);
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  const end = p + <usize>bytes;
  for (let r = 0; r < reps; r++) {
    for (let q = p; q < end; q += 64) {
      a0 = i8x16.add(a0, v128.load(q));
      a1 = i8x16.add(a1, v128.load(q, 16));
      a2 = i8x16.add(a2, v128.load(q, 32));
      a3 = i8x16.add(a3, v128.load(q, 48));
    }
  }
  return sum4(a0, a1, a2, a3);
}

/** `iters` × 12 i32x4.dot_i16x8_s (8 multiply-adds each) on registers: the int16 path's compute peak. */
export function dot_i16(iters: i32, seed: i32): i32 {
  const w = i16x8.splat(<i16>(seed | 1));
  let a0 = i32x4.splat(seed);
  let a1 = i32x4.splat(seed + 1);
  let a2 = i32x4.splat(seed + 2);
  let a3 = i32x4.splat(seed + 3);
  let a4 = i32x4.splat(seed + 4);
  let a5 = i32x4.splat(seed + 5);
  let a6 = i32x4.splat(seed + 6);
  let a7 = i32x4.splat(seed + 7);
  let a8 = i32x4.splat(seed + 8);
  let a9 = i32x4.splat(seed + 9);
  let a10 = i32x4.splat(seed + 10);
  let a11 = i32x4.splat(seed + 11);
  for (let i = 0; i < iters; i++) {
    a0 = i32x4.dot_i16x8_s(a0, w);
    a1 = i32x4.dot_i16x8_s(a1, w);
    a2 = i32x4.dot_i16x8_s(a2, w);
    a3 = i32x4.dot_i16x8_s(a3, w);
    a4 = i32x4.dot_i16x8_s(a4, w);
    a5 = i32x4.dot_i16x8_s(a5, w);
    a6 = i32x4.dot_i16x8_s(a6, w);
    a7 = i32x4.dot_i16x8_s(a7, w);
    a8 = i32x4.dot_i16x8_s(a8, w);
    a9 = i32x4.dot_i16x8_s(a9, w);
    a10 = i32x4.dot_i16x8_s(a10, w);
    a11 = i32x4.dot_i16x8_s(a11, w);
  }
  return sum4(a0, a1, a2, a3) + sum4(a4, a5, a6, a7) + sum4(a8, a9, a10, a11);
}

/**
 * `iters` × 4 × (v128.load + extend_low/high_i8x16_s + 2 × i32x4.dot_i16x8_s + 2 × i32x4.add) over an
 * L1-resident block at p (512 bytes): the 'fast' kernel's inner mix (16 weights per load, widened in
 * registers) without its memory traffic. 16 multiply-adds per load.
 */
export function load_ext_dot(p: usize, iters: i32, seed: i32): i32 {
  const x0 = i16x8.splat(<i16>(seed | 1));
  const x1 = i16x8.splat(<i16>(seed | 3));
  let a0 = i32x4.splat(0);
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  let q = p;
  const end = p + 512;
  for (let i = 0; i < iters; i++) {
    let v = v128.load(q);
    a0 = i32x4.add(
      a0,
      i32x4.add(
        i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(v), x0),
        i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(v), x1),
      ),
    );
    v = v128.load(q, 16);
    a1 = i32x4.add(
      a1,
      i32x4.add(
        i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(v), x0),
        i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(v), x1),
      ),
    );
    v = v128.load(q, 32);
    a2 = i32x4.add(
      a2,
      i32x4.add(
        i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(v), x0),
        i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(v), x1),
      ),
    );
    v = v128.load(q, 48);
    a3 = i32x4.add(
      a3,
      i32x4.add(
        i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(v), x0),
        i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(v), x1),
      ),
    );
    q += 64;
    if (q == end) q = p;
  }
  return sum4(a0, a1, a2, a3);
}

/**
 * The same with the weights already int16 in memory (v128.load + dot + add, 512 bytes at p): what a layout
 * that stores int8 weights widened would run at, at twice the bytes per multiply-add.
 */
export function load16_dot(p: usize, iters: i32, seed: i32): i32 {
  const x = i16x8.splat(<i16>(seed | 1));
  let a0 = i32x4.splat(0);
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  let q = p;
  const end = p + 512;
  for (let i = 0; i < iters; i++) {
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load(q), x));
    a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load(q, 16), x));
    a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load(q, 32), x));
    a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.load(q, 48), x));
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load(q, 64), x));
    a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load(q, 80), x));
    a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load(q, 96), x));
    a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.load(q, 112), x));
    q += 128;
    if (q == end) q = p;
  }
  return sum4(a0, a1, a2, a3);
}

/** `iters` × 12 relaxed i8×i7 dots with accumulate (16 multiply-adds each); 0 in a build without relaxed SIMD. */
export function dot_i8_relaxed(iters: i32, seed: i32): i32 {
  if (!ASC_FEATURE_RELAXED_SIMD) return 0;
  const w = i8x16.splat(<i8>((seed & 0x3f) | 1));
  let a0 = i32x4.splat(seed);
  let a1 = i32x4.splat(seed + 1);
  let a2 = i32x4.splat(seed + 2);
  let a3 = i32x4.splat(seed + 3);
  let a4 = i32x4.splat(seed + 4);
  let a5 = i32x4.splat(seed + 5);
  let a6 = i32x4.splat(seed + 6);
  let a7 = i32x4.splat(seed + 7);
  let a8 = i32x4.splat(seed + 8);
  let a9 = i32x4.splat(seed + 9);
  let a10 = i32x4.splat(seed + 10);
  let a11 = i32x4.splat(seed + 11);
  for (let i = 0; i < iters; i++) {
    // The operand that must be 7-bit is the constant w; the accumulators are reused as the i8 operand.
    a0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a0, w, a0);
    a1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a1, w, a1);
    a2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a2, w, a2);
    a3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a3, w, a3);
    a4 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a4, w, a4);
    a5 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a5, w, a5);
    a6 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a6, w, a6);
    a7 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a7, w, a7);
    a8 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a8, w, a8);
    a9 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a9, w, a9);
    a10 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a10, w, a10);
    a11 = i32x4.relaxed_dot_i8x16_i7x16_add_s(a11, w, a11);
  }
  return sum4(a0, a1, a2, a3) + sum4(a4, a5, a6, a7) + sum4(a8, a9, a10, a11);
}

/** `iters` × 12 f32x4 multiply + add pairs (4 multiply-adds each): the float32 path's compute peak. */
export function fma_f32(iters: i32, seed: f32): f32 {
  const w = f32x4.splat(0.999);
  let a0 = f32x4.splat(seed);
  let a1 = f32x4.splat(seed + 1);
  let a2 = f32x4.splat(seed + 2);
  let a3 = f32x4.splat(seed + 3);
  let a4 = f32x4.splat(seed + 4);
  let a5 = f32x4.splat(seed + 5);
  let a6 = f32x4.splat(seed + 6);
  let a7 = f32x4.splat(seed + 7);
  let a8 = f32x4.splat(seed + 8);
  let a9 = f32x4.splat(seed + 9);
  let a10 = f32x4.splat(seed + 10);
  let a11 = f32x4.splat(seed + 11);
  for (let i = 0; i < iters; i++) {
    a0 = f32x4.add(f32x4.mul(a0, w), w);
    a1 = f32x4.add(f32x4.mul(a1, w), w);
    a2 = f32x4.add(f32x4.mul(a2, w), w);
    a3 = f32x4.add(f32x4.mul(a3, w), w);
    a4 = f32x4.add(f32x4.mul(a4, w), w);
    a5 = f32x4.add(f32x4.mul(a5, w), w);
    a6 = f32x4.add(f32x4.mul(a6, w), w);
    a7 = f32x4.add(f32x4.mul(a7, w), w);
    a8 = f32x4.add(f32x4.mul(a8, w), w);
    a9 = f32x4.add(f32x4.mul(a9, w), w);
    a10 = f32x4.add(f32x4.mul(a10, w), w);
    a11 = f32x4.add(f32x4.mul(a11, w), w);
  }
  const s = f32x4.add(
    f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)),
    f32x4.add(
      f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)),
      f32x4.add(f32x4.add(a8, a9), f32x4.add(a10, a11)),
    ),
  );
  return (
    f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3)
  );
}

/**
 * `iters` × 8 × (v128.load + two i32x4.relaxed_dot_i8x16_i7x16_add_s against register x parts) over an
 * L1-resident block at p (512 bytes): the 'relaxed-dot' kernel's inner mix (each weight load feeds the hi and
 * lo parts of x) without its memory traffic. 32 multiply-adds per load; 0 in a build without relaxed SIMD.
 */
export function load_rdot(p: usize, iters: i32, seed: i32): i32 {
  if (!ASC_FEATURE_RELAXED_SIMD) return 0;
  const xh = i8x16.splat(<i8>((seed & 0x3f) | 1));
  const xl = i8x16.splat(<i8>((seed & 0x1f) | 3));
  let h0 = i32x4.splat(0);
  let h1 = i32x4.splat(0);
  let h2 = i32x4.splat(0);
  let h3 = i32x4.splat(0);
  let l0 = i32x4.splat(0);
  let l1 = i32x4.splat(0);
  let l2 = i32x4.splat(0);
  let l3 = i32x4.splat(0);
  let q = p;
  const end = p + 512;
  for (let i = 0; i < iters; i++) {
    let v = v128.load(q);
    h0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xh, h0);
    l0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xl, l0);
    v = v128.load(q, 16);
    h1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xh, h1);
    l1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xl, l1);
    v = v128.load(q, 32);
    h2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xh, h2);
    l2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xl, l2);
    v = v128.load(q, 48);
    h3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xh, h3);
    l3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xl, l3);
    v = v128.load(q, 64);
    h0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xh, h0);
    l0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xl, l0);
    v = v128.load(q, 80);
    h1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xh, h1);
    l1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xl, l1);
    v = v128.load(q, 96);
    h2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xh, h2);
    l2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xl, l2);
    v = v128.load(q, 112);
    h3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xh, h3);
    l3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v, xl, l3);
    q += 128;
    if (q == end) q = p;
  }
  return sum4(h0, h1, h2, h3) + sum4(l0, l1, l2, l3);
}
