import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from './errors.ts';
import { Reader, describeValue, hex, isWellFormedString } from './wire.ts';

describe('isWellFormedString', () => {
  it('accepts surrogate pairs and rejects unpaired halves', () => {
    expect(isWellFormedString('plain')).toBe(true);
    expect(isWellFormedString('🚀 \uD83D\uDE80')).toBe(true);
    expect(isWellFormedString('\uD83D')).toBe(false);
    expect(isWellFormedString('a\uDE80b')).toBe(false);
    expect(isWellFormedString('\uDE80\uD83D')).toBe(false); // reversed pair
  });

  it('agrees with a TextEncoder/TextDecoder round trip (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
        (s) => {
          // ignoreBOM: a leading U+FEFF is text here, not a byte-order mark to strip.
          const roundTrips =
            new TextDecoder('utf-8', { ignoreBOM: true }).decode(new TextEncoder().encode(s)) === s;
          expect(isWellFormedString(s)).toBe(roundTrips);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('Reader', () => {
  it('reports truncation with the field, the counts and the offset', () => {
    const r = new Reader(new Uint8Array([1, 2, 3]), 'TEST');
    expect(r.u16('first')).toBe(0x0201);
    const e = (() => {
      try {
        r.u32('second');
      } catch (err) {
        return err;
      }
    })() as ProtocolError;
    expect(e).toBeInstanceOf(ProtocolError);
    expect(e.code).toBe('truncated');
    expect(e.field).toBe('second');
    expect(e.message).toBe('TEST: truncated at second: needed 4 bytes, 1 available (offset 2)');
  });

  it('reads little-endian from a view at an offset', () => {
    const backing = new Uint8Array([0xff, 0x78, 0x56, 0x34, 0x12]);
    const r = new Reader(backing.subarray(1), 'TEST');
    expect(r.u32('x').toString(16)).toBe('12345678');
    expect(r.remaining()).toBe(0);
  });
});

describe('message helpers', () => {
  it('hex shows at most 16 bytes and says how many there were', () => {
    expect(hex(new Uint8Array([0, 15, 255]))).toBe('00 0f ff');
    expect(hex(new Uint8Array(20))).toMatch(/^(00 ){15}00 … \(20 bytes\)$/);
  });

  it('describeValue names the kind of value', () => {
    expect(describeValue('x')).toBe('"x"');
    expect(describeValue(undefined)).toBe('undefined');
    expect(describeValue([1, 2])).toBe('an array of length 2');
    expect(describeValue(new Float32Array(3))).toBe('Float32Array(3)');
    expect(describeValue({})).toBe('object');
  });
});
