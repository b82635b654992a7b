// Byte-level reading and writing for the frame codec: little-endian integers and floats, length-prefixed UTF-8,
// and f16/f32 vectors. The reader checks every length before touching the DataView, so truncation is reported
// by field name instead of leaking a RangeError.
import { ProtocolError } from './errors.ts';
import { F16_OVERFLOW_THRESHOLD, f16DecodeTable, f32ArrayToF16Bits } from './f16.ts';

export type WireDtype = 'f16' | 'f32';

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a leading U+FEFF is part of the id, not a marker.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// With the u flag a surrogate pair is one code point, so this only matches unpaired surrogates, the one thing
// TextEncoder would silently replace with U+FFFD (and so break the round trip).
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

export function isWellFormedString(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

export function utf8Encode(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

export function hex(bytes: Uint8Array, max = 16): string {
  const shown = Array.from(bytes.subarray(0, max), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return bytes.length > max ? `${shown} … (${bytes.length} bytes)` : shown;
}

export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v === undefined || v === null) return String(v);
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (ArrayBuffer.isView(v))
    return `${v.constructor.name}(${(v as unknown as ArrayLike<unknown>).length ?? v.byteLength})`;
  return typeof v;
}

export class Reader {
  private readonly dv: DataView;
  private off: number;

  constructor(
    private readonly bytes: Uint8Array,
    /** Names the frame in messages, e.g. 'STEP_REQUEST'. */
    public context: string,
    start = 0,
    private readonly end = bytes.length,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.off = start;
  }

  get offset(): number {
    return this.off;
  }

  remaining(): number {
    return this.end - this.off;
  }

  need(n: number, field: string): void {
    const available = this.end - this.off;
    if (n > available)
      throw new ProtocolError(
        'truncated',
        `${this.context}: truncated at ${field}: needed ${n} bytes, ${available} available (offset ${this.off})`,
        field,
      );
  }

  fail(field: string, expected: string, found: string): never {
    throw new ProtocolError(
      'bad-field',
      `${this.context} ${field}: expected ${expected}, found ${found}`,
      field,
    );
  }

  u8(field: string): number {
    this.need(1, field);
    return this.dv.getUint8(this.off++);
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.dv.getUint16(this.off, true);
    this.off += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.dv.getUint32(this.off, true);
    this.off += 4;
    return v;
  }

  skip(n: number, field: string): void {
    this.need(n, field);
    this.off += n;
  }

  /** A copy, so the decoded frame does not pin (or alias) the caller's receive buffer. */
  bytesCopy(n: number, field: string): Uint8Array {
    this.need(n, field);
    const out = this.bytes.slice(this.off, this.off + n);
    this.off += n;
    return out;
  }

  /** A string prefixed by its UTF-8 byte length (u8 or u16), which must lie in [min, max]. */
  string(field: string, prefix: 'u8' | 'u16', min: number, max: number): string {
    const n = prefix === 'u8' ? this.u8(`${field} length`) : this.u16(`${field} length`);
    if (n < min || n > max) this.fail(`${field} length`, `${min}..${max} bytes`, `${n}`);
    this.need(n, `${field} (${n} bytes of UTF-8)`);
    const raw = this.bytes.subarray(this.off, this.off + n);
    let s: string;
    try {
      s = utf8Decoder.decode(raw);
    } catch {
      this.fail(field, 'valid UTF-8', `invalid bytes ${hex(raw)}`);
    }
    this.off += n;
    return s;
  }

  /** count u16 values, each checked by `check` (which throws on a bad one). */
  u16Array(count: number, field: string, check: (v: number, i: number) => void): number[] {
    this.need(count * 2, `${field} (${count} × u16)`);
    const out = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      const v = this.dv.getUint16(this.off + i * 2, true);
      check(v, i);
      out[i] = v;
    }
    this.off += count * 2;
    return out;
  }

  /** count f32 values as numbers, each checked by `check`. */
  f32List(count: number, field: string, check: (v: number, i: number) => void): number[] {
    this.need(count * 4, `${field} (${count} × f32)`);
    const out = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      const v = this.dv.getFloat32(this.off + i * 4, true);
      check(v, i);
      out[i] = v;
    }
    this.off += count * 4;
    return out;
  }

  /** count finite values stored as f16 or f32, widened to a fresh Float32Array. */
  finiteVector(count: number, dtype: WireDtype, field: string): Float32Array {
    const size = dtype === 'f16' ? 2 : 4;
    this.need(count * size, `${field} (${count} × ${dtype})`);
    const out = new Float32Array(count);
    const dv = this.dv;
    const base = this.off;
    if (dtype === 'f16') {
      const table = f16DecodeTable();
      for (let i = 0; i < count; i++) {
        const b = dv.getUint16(base + i * 2, true);
        if ((b & 0x7c00) === 0x7c00)
          this.fail(
            `${field}[${i}]`,
            'a finite value',
            `${b & 0x3ff ? 'NaN' : 'Infinity'} (f16 bits 0x${hex4(b)})`,
          );
        out[i] = table[b];
      }
    } else {
      for (let i = 0; i < count; i++) {
        const v = dv.getFloat32(base + i * 4, true);
        if (!Number.isFinite(v)) this.fail(`${field}[${i}]`, 'a finite value', `${v}`);
        out[i] = v;
      }
    }
    this.off += count * size;
    return out;
  }
}

function hex4(b: number): string {
  return b.toString(16).padStart(4, '0');
}

/** Writes into a buffer sized up front; the encoder computes the exact frame size before writing. */
export class Writer {
  readonly dv: DataView;
  offset = 0;

  constructor(readonly bytes: Uint8Array) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u8(v: number): void {
    this.dv.setUint8(this.offset, v);
    this.offset += 1;
  }

  u16(v: number): void {
    this.dv.setUint16(this.offset, v, true);
    this.offset += 2;
  }

  u32(v: number): void {
    this.dv.setUint32(this.offset, v, true);
    this.offset += 4;
  }

  f32(v: number): void {
    this.dv.setFloat32(this.offset, v, true);
    this.offset += 4;
  }

  raw(b: Uint8Array): void {
    this.bytes.set(b, this.offset);
    this.offset += b.length;
  }

  vector(values: Float32Array, dtype: WireDtype): void {
    const dv = this.dv;
    let o = this.offset;
    if (dtype === 'f16') {
      const half = f32ArrayToF16Bits(values);
      const out = this.bytes;
      for (let i = 0; i < half.length; i++, o += 2) {
        out[o] = half[i] & 0xff;
        out[o + 1] = half[i] >>> 8;
      }
    } else {
      for (let i = 0; i < values.length; i++, o += 4) dv.setFloat32(o, values[i], true);
    }
    this.offset = o;
  }
}

/** Checks a vector before encoding: finite, and inside the f16 range when it will travel as f16. */
export function checkVector(
  values: unknown,
  dtype: WireDtype,
  fail: (field: string, expected: string, found: string) => never,
  field: string,
): asserts values is Float32Array {
  if (!(values instanceof Float32Array)) fail(field, 'a Float32Array', describeValue(values));
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) fail(`${field}[${i}]`, 'a finite value', `${v}`);
    if (dtype === 'f16' && Math.abs(v) >= F16_OVERFLOW_THRESHOLD)
      fail(
        `${field}[${i}]`,
        `a value that fits f16 (|x| < ${F16_OVERFLOW_THRESHOLD}, which rounds to at most 65504; send f32 for larger)`,
        `${v}`,
      );
  }
}
