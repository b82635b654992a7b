// IEEE 754 binary16 ("half") conversion. Node 20 has no Float16Array, and the wire protocol may carry h and the
// expert outputs as f16, so both directions live here: round-to-nearest-even, subnormals, ±Inf and NaN.
//
// Layout of a binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
//   exponent 0      → subnormal: (-1)^s × m × 2^-24 (m = 0 gives ±0)
//   exponent 1..30  → normal:    (-1)^s × (1024 + m) × 2^(e-25)
//   exponent 31     → m = 0: ±Inf, m ≠ 0: NaN

export const F16_MAX = 65504;
export const F16_MIN_NORMAL = 2 ** -14;
export const F16_MIN_SUBNORMAL = 2 ** -24;
/** The smallest magnitude that rounds to Inf: halfway between 65504 and 2^16, a tie that goes to the even Inf. */
export const F16_OVERFLOW_THRESHOLD = 65520;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/**
 * Rounds a float32, given as its 32 raw bits, to the nearest binary16 (ties to even) and returns the 16 bits.
 * Working on f32 bits keeps the rounding single: every value that reaches the wire already sits in a Float32Array.
 */
export function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) {
    // Keep the top payload bits and force the quiet bit, so a NaN never turns into Inf.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 127;
  if (e > 15) return sign | 0x7c00;
  if (e >= -14) {
    // Normal: drop 13 mantissa bits. A carry out of the mantissa bumps the exponent, which is exactly right,
    // up to and including the step from 65504 to Inf.
    let h = ((e + 15) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0)) h++;
    return sign | h;
  }
  // Below 2^-25 everything rounds to zero (2^-25 itself is a tie and goes to the even zero).
  if (e < -25) return sign;
  // Subnormal: the value is M × 2^(e+1) units of 2^-24, with M the 24-bit significand.
  const m = mant | 0x800000;
  const shift = -e - 1; // 14..24
  let h = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1) !== 0)) h++;
  return sign | h;
}

/** Rounds x to float32 (as storing it in a Float32Array would), then to the nearest binary16; returns the bits. */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  return f32BitsToF16Bits(scratchU32[0]);
}

/** The exact value of a binary16 bit pattern (every binary16 value is exactly representable in float32). */
export function f16BitsToF32(bits: number): number {
  const negative = (bits & 0x8000) !== 0;
  const e = (bits >>> 10) & 0x1f;
  const m = bits & 0x3ff;
  let v: number;
  if (e === 0) v = m * F16_MIN_SUBNORMAL;
  else if (e === 31) v = m === 0 ? Infinity : NaN;
  else v = (1024 + m) * 2 ** (e - 25);
  return negative ? -v : v;
}

/** x rounded to binary16 precision and range, as a number: what a receiver sees after an f16 hop. */
export function roundToF16(x: number): number {
  return f16BitsToF32(f32ToF16Bits(x));
}

let decodeTable: Float32Array | undefined;

/** All 65536 decoded values, built on first use: decoding a 512-wide h then costs one lookup per element. */
export function f16DecodeTable(): Float32Array {
  if (decodeTable === undefined) {
    decodeTable = new Float32Array(65536);
    for (let b = 0; b < 65536; b++) decodeTable[b] = f16BitsToF32(b);
  }
  return decodeTable;
}

export function f32ArrayToF16Bits(
  src: Float32Array,
  dst: Uint16Array = new Uint16Array(src.length),
): Uint16Array {
  if (dst.length < src.length)
    throw new RangeError(`f32ArrayToF16Bits: expected dst to hold ${src.length} values, found ${dst.length}`);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) dst[i] = f32BitsToF16Bits(bits[i]);
  return dst;
}

export function f16BitsToF32Array(
  src: Uint16Array,
  dst: Float32Array = new Float32Array(src.length),
): Float32Array {
  if (dst.length < src.length)
    throw new RangeError(`f16BitsToF32Array: expected dst to hold ${src.length} values, found ${dst.length}`);
  const table = f16DecodeTable();
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]];
  return dst;
}
