import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Rng } from '../random.ts';
import { crc32, crc32Hex } from './crc32.ts';

/** The textbook bit-at-a-time definition, with no tables. */
function bitwiseCrc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

// zlib.crc32 exists from Node 20.15 (this repo runs 20.20) but @types/node 20.9 does not declare it.
const zlibCrc32 = (zlib as unknown as { crc32: (data: Uint8Array, value?: number) => number }).crc32;

function randomBytes(n: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  return Uint8Array.from({ length: n }, () => rng.nextU32() & 0xff);
}

describe('crc32', () => {
  it('gives the published check value of CRC-32/ISO-HDLC for "123456789"', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it('matches the bitwise definition and zlib for every length around the 8-byte stride', () => {
    for (let n = 0; n <= 40; n++) {
      const b = randomBytes(n, n + 1);
      expect(crc32(b), `length ${n}`).toBe(bitwiseCrc32(b));
      expect(crc32(b), `length ${n}`).toBe(zlibCrc32(b));
    }
  });

  it('matches zlib on a large buffer and on views at odd offsets', () => {
    const b = randomBytes(100_003, 7);
    expect(crc32(b)).toBe(zlibCrc32(b));
    for (const [from, to] of [
      [1, 99_999],
      [3, 17],
      [5, 100_003],
    ])
      expect(crc32(b.subarray(from, to))).toBe(zlibCrc32(b.subarray(from, to)));
  });

  it('continues a checksum across pieces', () => {
    const b = randomBytes(1000, 3);
    for (const cut of [0, 1, 7, 8, 500, 999, 1000])
      expect(crc32(b.subarray(cut), crc32(b.subarray(0, cut)))).toBe(crc32(b));
  });

  it('detects a single flipped bit', () => {
    const b = randomBytes(4096, 9);
    const before = crc32(b);
    b[1234] ^= 0x10;
    expect(crc32(b)).not.toBe(before);
  });

  it('formats as 8 lowercase hex digits, zero-padded', () => {
    // Find inputs whose checksum has leading zero nibbles, and compare with an independent formatting.
    let found = 0;
    for (let i = 0; found < 3 && i < 100_000; i++) {
      const b = new Uint8Array(new Uint32Array([i]).buffer);
      const c = zlibCrc32(b);
      if (c >= 0x10000000) continue;
      found++;
      const hex = crc32Hex(b);
      expect(hex).toMatch(/^0[0-9a-f]{7}$/);
      expect(parseInt(hex, 16)).toBe(c);
    }
    expect(found).toBe(3);
    expect(crc32Hex(new TextEncoder().encode('123456789'))).toBe('cbf43926');
  });
});
