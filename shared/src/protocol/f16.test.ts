import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  F16_MAX,
  f16BitsToF32,
  f16BitsToF32Array,
  f16DecodeTable,
  f32ArrayToF16Bits,
  f32ToF16Bits,
  roundToF16,
} from './f16.ts';

// The value of a binary16 pattern straight from IEEE 754-2008 §3.4: sign s, biased exponent E (5 bits, bias 15),
// trailing significand T (10 bits).
function ieeeValue(bits: number): number {
  const s = bits >> 15;
  const E = (bits >> 10) & 31;
  const T = bits & 1023;
  const sign = s === 1 ? -1 : 1;
  if (E === 31) return T === 0 ? sign * Infinity : NaN;
  if (E === 0) return sign * 2 ** (1 - 15) * (0 + T / 2 ** 10);
  return sign * 2 ** (E - 15) * (1 + T / 2 ** 10);
}

const isNaNBits = (b: number): boolean => (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0;

describe('f32ToF16Bits: known bit patterns', () => {
  const cases: [string, number, number][] = [
    ['+0', 0, 0x0000],
    ['-0', -0, 0x8000],
    ['1', 1, 0x3c00],
    ['-2', -2, 0xc000],
    ['0.5', 0.5, 0x3800],
    ['largest normal 65504', 65504, 0x7bff],
    ['-65504', -65504, 0xfbff],
    ['smallest normal 2^-14', 2 ** -14, 0x0400],
    ['largest subnormal 1023 × 2^-24', 1023 * 2 ** -24, 0x03ff],
    ['smallest subnormal 2^-24', 2 ** -24, 0x0001],
    ['-2^-24', -(2 ** -24), 0x8001],
    ['+Inf', Infinity, 0x7c00],
    ['-Inf', -Infinity, 0xfc00],
    // 1/3 = 1.0101010101|0101… × 2^-2: the dropped part is below half, so it truncates.
    ['1/3', 1 / 3, 0x3555],
    // ties: 1 + 2^-11 lies halfway between 0x3c00 (even) and 0x3c01, 1 + 3·2^-11 between 0x3c01 and 0x3c02 (even)
    ['tie 1 + 2^-11 → even 1', 1 + 2 ** -11, 0x3c00],
    ['tie 1 + 3·2^-11 → even 1 + 2^-9', 1 + 3 * 2 ** -11, 0x3c02],
    ['tie 2049 → 2048', 2049, 0x6800],
    ['tie 2051 → 2052', 2051, 0x6802],
    ['just above a tie rounds up', 1 + 2 ** -11 + 2 ** -20, 0x3c01],
    // subnormal ties: 2^-25 is halfway between 0 and 2^-24; 3·2^-25 halfway between 2^-24 and 2^-23
    ['tie 2^-25 → +0', 2 ** -25, 0x0000],
    ['tie 3·2^-25 → 2·2^-24', 3 * 2 ** -25, 0x0002],
    ['just above 2^-25 → 2^-24', 2 ** -25 * (1 + 2 ** -20), 0x0001],
    ['far below the subnormals → 0', 2 ** -30, 0x0000],
    ['-(far below) → -0', -(2 ** -30), 0x8000],
    // rounding the largest subnormal up carries into the smallest normal
    ['1023.75 × 2^-24 → 2^-14', 1023.75 * 2 ** -24, 0x0400],
    // overflow: 65520 is halfway between 65504 (odd mantissa) and 2^16 (Inf, even), so it goes to Inf
    ['65519 → 65504', 65519, 0x7bff],
    ['tie 65520 → Inf', 65520, 0x7c00],
    ['1e6 → Inf', 1e6, 0x7c00],
    ['-1e6 → -Inf', -1e6, 0xfc00],
  ];
  for (const [name, x, bits] of cases)
    it(name, () => expect(f32ToF16Bits(x).toString(16)).toBe(bits.toString(16)));

  it('NaN stays NaN (never Inf), with either sign', () => {
    expect(isNaNBits(f32ToF16Bits(NaN))).toBe(true);
    const f = new Float32Array([NaN, -NaN]);
    const u = new Uint32Array(f.buffer);
    u[0] = 0x7f800001; // signalling NaN with only the lowest payload bit set
    u[1] = 0xffc00000;
    const out = f32ArrayToF16Bits(f);
    expect(isNaNBits(out[0])).toBe(true);
    expect(isNaNBits(out[1])).toBe(true);
    expect(out[1] & 0x8000).toBe(0x8000);
  });

  it('rounds through f32 first: values between f32 neighbours behave as their f32 rounding', () => {
    // 1 + 2^-11 + 2^-40 rounds to the f32 tie 1 + 2^-11, which then goes to the even 1.
    expect(f32ToF16Bits(1 + 2 ** -11 + 2 ** -40)).toBe(0x3c00);
  });
});

describe('f16BitsToF32', () => {
  it('decodes all 65536 patterns as IEEE 754 says', () => {
    for (let b = 0; b < 65536; b++) {
      const want = ieeeValue(b);
      const got = f16BitsToF32(b);
      if (Number.isNaN(want)) expect(Number.isNaN(got), `0x${b.toString(16)}`).toBe(true);
      else if (!Object.is(got, want)) expect(got, `0x${b.toString(16)}`).toBe(want);
    }
  });

  it('the lookup table agrees with the function', () => {
    const table = f16DecodeTable();
    for (let b = 0; b < 65536; b++) {
      const v = f16BitsToF32(b);
      if (Number.isNaN(v)) expect(Number.isNaN(table[b])).toBe(true);
      else if (!Object.is(table[b], v)) expect(table[b], `0x${b.toString(16)}`).toBe(v);
    }
  });

  it('f16BitsToF32Array widens each element', () => {
    const out = f16BitsToF32Array(new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7bff]));
    expect(Array.from(out)).toEqual([1, -2, 2 ** -24, 65504]);
  });
});

describe('f32ToF16Bits: exhaustive against the spec', () => {
  it('every finite binary16 value encodes to its own pattern', () => {
    for (let b = 0; b < 65536; b++) {
      if ((b & 0x7c00) === 0x7c00) continue;
      const got = f32ToF16Bits(ieeeValue(b));
      if (got !== b) expect(got.toString(16), `value of 0x${b.toString(16)}`).toBe(b.toString(16));
    }
  });

  it('midpoints go to the even neighbour; anything off the midpoint goes to the nearer one', () => {
    const f = new Float32Array(1);
    // every adjacent pair of non-negative patterns, up to (65504, Inf)
    for (let b = 0; b < 0x7c00; b++) {
      const lo = ieeeValue(b);
      const hi = ieeeValue(b + 1 === 0x7c00 ? 0x7c00 : b + 1);
      const mid = b + 1 === 0x7c00 ? 65520 : (lo + hi) / 2; // exact: f16 has 11 significant bits, f32 has 24
      const even = b % 2 === 0 ? b : b + 1;
      for (const sign of [1, -1]) {
        const s = sign < 0 ? 0x8000 : 0;
        const check = (x: number, want: number): void => {
          const got = f32ToF16Bits(sign * x);
          if (got !== (want | s)) expect(got.toString(16), `${sign * x}`).toBe((want | s).toString(16));
        };
        check(mid, even);
        f[0] = mid;
        const u = new Uint32Array(f.buffer);
        u[0] += 1; // next f32 above the midpoint
        check(f[0], b + 1);
        u[0] -= 2; // next f32 below it
        check(f[0], b);
      }
    }
  });
});

describe('f16 round trip accuracy', () => {
  it('relative error stays below 2^-11 over the normal range (property)', () => {
    fc.assert(
      fc.property(fc.float({ min: 2 ** -14, max: F16_MAX, noNaN: true }), fc.boolean(), (x, neg) => {
        const v = neg ? -x : x;
        expect(Math.abs(roundToF16(v) - v) / Math.abs(v)).toBeLessThan(2 ** -11);
      }),
      { numRuns: 20_000 },
    );
  });

  it('a dense sweep of the normal range: worst relative error below 2^-11, and reached near it', () => {
    let worst = 0;
    // 2^-14 .. 65504 in steps of 2^(1/4096) covers every binade at many offsets, ties included
    for (let x = 2 ** -14; x <= F16_MAX; x *= 1.000169) {
      const fx = Math.fround(x);
      worst = Math.max(worst, Math.abs(roundToF16(fx) - fx) / fx);
    }
    expect(worst).toBeLessThan(2 ** -11);
    expect(worst).toBeGreaterThan(2 ** -11 * 0.99); // the bound is tight: the sweep hits near-midpoints
  });

  it('subnormals are within half a unit (2^-25) absolutely', () => {
    fc.assert(
      fc.property(fc.float({ min: 0, max: 2 ** -14, noNaN: true }), (x) => {
        expect(Math.abs(roundToF16(x) - x)).toBeLessThanOrEqual(2 ** -25);
      }),
      { numRuns: 5_000 },
    );
  });

  it('array conversion agrees with the scalar one, including on a view at an offset', () => {
    fc.assert(
      fc.property(fc.float32Array({ maxLength: 64 }), (arr) => {
        const backing = new Float32Array(arr.length + 3);
        backing.set(arr, 3);
        const view = backing.subarray(3);
        const bits = f32ArrayToF16Bits(view);
        for (let i = 0; i < arr.length; i++) expect(bits[i]).toBe(f32ToF16Bits(arr[i]));
      }),
    );
  });

  it('rejects a destination that is too small', () => {
    expect(() => f32ArrayToF16Bits(new Float32Array(4), new Uint16Array(3))).toThrow(
      /hold 4 values, found 3/,
    );
    expect(() => f16BitsToF32Array(new Uint16Array(4), new Float32Array(2))).toThrow(
      /hold 4 values, found 2/,
    );
  });
});
