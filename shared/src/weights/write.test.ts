// The writer's output checked against the public safetensors spec by a parser written here from the
// spec alone (it imports nothing from the weights module), plus Switchyard's own layout rules.
import { describe, expect, it } from 'vitest';
import { preset, type ModelConfig } from '../config.ts';
import { initRandom } from '../init.ts';
import { numel, paramSpecs, type ParamMap, type ParamSpec } from '../params.ts';
import { dequantize, quantizeAs, type QuantScheme } from '../quant.ts';
import { defaultScheme, WeightsError } from './format.ts';
import { readWeights } from './read.ts';
import { splitWeights } from './split.ts';
import { writeStored, writeWeights } from './write.ts';

/** CRC-32 straight from its definition (bit at a time, no tables), independent of the module under test. */
function referenceCrc32(bytes: Iterable<number>): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------- an independent safetensors parser

/** Element sizes of every dtype the safetensors spec defines. */
const ST_DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

interface StEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

interface StFile {
  headerLength: number;
  metadata: Record<string, string>;
  /** In data order. */
  entries: StEntry[];
  data: Buffer;
}

function parseSafetensors(file: Uint8Array): StFile {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  expect(buf.length).toBeGreaterThanOrEqual(8);
  const n = Number(buf.readBigUInt64LE(0));
  expect(8 + n).toBeLessThanOrEqual(buf.length);
  const text = buf.toString('utf8', 8, 8 + n);
  expect(text[0]).toBe('{');
  expect(text).toMatch(/^[^]*}\x20*$/); // only spaces may pad the JSON
  const header = JSON.parse(text) as Record<string, unknown>;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  for (const v of Object.values(metadata)) expect(typeof v).toBe('string');
  const data = buf.subarray(8 + n);
  const entries: StEntry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets } = raw as { dtype: string; shape: number[]; data_offsets: number[] };
    expect(ST_DTYPE_BYTES, `dtype of ${name}`).toHaveProperty(dtype);
    for (const d of shape) expect(Number.isInteger(d) && d >= 0, `shape of ${name}`).toBe(true);
    expect(data_offsets).toHaveLength(2);
    const [begin, end] = data_offsets;
    expect(end - begin, `size of ${name}`).toBe(shape.reduce((a, b) => a * b, 1) * ST_DTYPE_BYTES[dtype]);
    entries.push({ name, dtype, shape, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin);
  let at = 0;
  for (const e of entries) {
    expect(e.begin, `${e.name} starts where the previous entry ends`).toBe(at);
    at = e.end;
  }
  expect(at, 'the entries cover the whole data buffer').toBe(data.length);
  return { headerLength: n, metadata, entries, data };
}

/** Element-wise equality that reports the first difference (much faster than toEqual on big arrays). */
function expectSame(a: ArrayLike<number>, b: ArrayLike<number>, label: string): void {
  expect(a.length, `${label}: length`).toBe(b.length);
  let first = -1;
  for (let i = 0; i < a.length && first < 0; i++) if (a[i] !== b[i]) first = i;
  expect(first, `${label}: first differing element${first >= 0 ? ` (${a[first]} vs ${b[first]})` : ''}`).toBe(
    -1,
  );
}

// ---------------------------------------------------------------- the format's rules, restated from the brief

/** Stored entries of one logical tensor, in the order the format lists them. */
function expectedEntries(
  s: ParamSpec,
  scheme: QuantScheme,
): { name: string; dtype: string; shape: number[] }[] {
  if (scheme === 'f32') return [{ name: s.name, dtype: 'F32', shape: s.shape }];
  const [rows, cols] = s.shape;
  if (scheme === 'int8')
    return [
      { name: s.name, dtype: 'I8', shape: [rows, cols] },
      { name: `${s.name}.scale`, dtype: 'F32', shape: [rows] },
    ];
  return [
    { name: s.name, dtype: 'I8', shape: [rows, cols / 2] },
    { name: `${s.name}.idx`, dtype: 'U8', shape: [rows, Math.ceil(cols / 8)] },
    { name: `${s.name}.scale`, dtype: 'F32', shape: [rows] },
  ];
}

/** Decodes a stored logical tensor from raw bytes following FORMAT.md, without the quant module. */
function decodeLogical(f: StFile, s: ParamSpec, scheme: QuantScheme): Float32Array {
  const get = (name: string) => f.entries.find((e) => e.name === name)!;
  const e = get(s.name);
  const out = new Float32Array(numel(s.shape));
  if (scheme === 'f32') {
    for (let i = 0; i < out.length; i++) out[i] = f.data.readFloatLE(e.begin + 4 * i);
    return out;
  }
  const [rows, cols] = s.shape;
  const sc = get(`${s.name}.scale`);
  const scale = (r: number) => f.data.readFloatLE(sc.begin + 4 * r);
  if (scheme === 'int8') {
    for (let i = 0; i < out.length; i++) out[i] = f.data.readInt8(e.begin + i) * scale(Math.floor(i / cols));
    return out;
  }
  const idx = get(`${s.name}.idx`);
  const perRow = Math.ceil(cols / 8);
  for (let r = 0; r < rows; r++)
    for (let g = 0; g < cols / 4; g++) {
      const byte = f.data.readUInt8(idx.begin + r * perRow + Math.floor(g / 2));
      const nib = g % 2 === 0 ? byte & 0xf : byte >> 4;
      const [p0, p1] = [nib & 3, nib >> 2];
      expect(p0).toBeLessThan(p1);
      out[r * cols + 4 * g + p0] = f.data.readInt8(e.begin + r * (cols / 2) + 2 * g) * scale(r);
      out[r * cols + 4 * g + p1] = f.data.readInt8(e.begin + r * (cols / 2) + 2 * g + 1) * scale(r);
    }
  return out;
}

interface Expectation {
  config: ModelConfig;
  params: ParamMap;
  specs: ParamSpec[];
  scheme: (s: ParamSpec) => QuantScheme;
  shard: { kind: string; experts: number[] };
}

/** Checks a file against the safetensors spec and every Switchyard convention; returns the parse. */
function checkFile(bytes: Uint8Array, x: Expectation): StFile {
  const f = parseSafetensors(bytes);
  // Data section 8-aligned; every entry aligned to its element size; larger elements first.
  expect((8 + f.headerLength) % 8).toBe(0);
  for (const e of f.entries) expect((8 + f.headerLength + e.begin) % ST_DTYPE_BYTES[e.dtype], e.name).toBe(0);
  const sizes = f.entries.map((e) => ST_DTYPE_BYTES[e.dtype]);
  expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
  // Entries: exactly the expected ones, each size group in canonical order.
  const want = x.specs.flatMap((s) => expectedEntries(s, x.scheme(s)));
  const byName = new Map(f.entries.map((e) => [e.name, e]));
  expect(new Set(byName.keys())).toEqual(new Set(want.map((w) => w.name)));
  for (const w of want) {
    expect(byName.get(w.name)!.dtype, w.name).toBe(w.dtype);
    expect(byName.get(w.name)!.shape, w.name).toEqual(w.shape);
  }
  for (const size of [4, 1])
    expect(f.entries.filter((e) => ST_DTYPE_BYTES[e.dtype] === size).map((e) => e.name)).toEqual(
      want.filter((w) => ST_DTYPE_BYTES[w.dtype] === size).map((w) => w.name),
    );
  // Metadata.
  expect(f.metadata.format).toBe('switchyard.rru-moe');
  expect(f.metadata.format_version).toBe('1');
  expect(JSON.parse(f.metadata.config)).toEqual(x.config);
  expect(JSON.parse(f.metadata.shard)).toEqual(x.shard);
  expect(JSON.parse(f.metadata.quantization)).toEqual(
    Object.fromEntries(x.specs.map((s) => [s.name, x.scheme(s)])),
  );
  const checksums = JSON.parse(f.metadata.checksums) as Record<string, string>;
  expect(new Set(Object.keys(checksums))).toEqual(new Set(want.map((w) => w.name)));
  for (const e of f.entries)
    expect(checksums[e.name], e.name).toBe(
      referenceCrc32(f.data.subarray(e.begin, e.end)).toString(16).padStart(8, '0'),
    );
  // Values: what quant.ts makes of each tensor, decoded from the raw bytes.
  for (const s of x.specs) {
    const want = dequantize(quantizeAs(x.params.get(s.name)!, x.scheme(s))).data;
    expectSame(decodeLogical(f, s, x.scheme(s)), want, s.name);
  }
  return f;
}

// ---------------------------------------------------------------- tests

const config = preset('tiny');
const params = initRandom(config, 42);
const specs = paramSpecs(config);
const all = [0, 1, 2, 3];

describe('writeWeights: a valid safetensors file with the Switchyard conventions', () => {
  it.each(['f32', 'int8', 'int8-2:4'] as const)('full file, scheme %s', (kind) => {
    const bytes = writeWeights(config, params, { scheme: kind });
    const f = checkFile(bytes, {
      config,
      params,
      specs,
      scheme: defaultScheme(kind),
      shard: { kind: 'full', experts: all },
    });
    if (kind !== 'f32') expect(f.entries.some((e) => e.dtype === 'I8')).toBe(true);
    if (kind === 'int8-2:4') expect(f.entries.some((e) => e.dtype === 'U8')).toBe(true);
  });

  it('defaults to int8 for matrices and f32 for vectors', () => {
    checkFile(writeWeights(config, params), {
      config,
      params,
      specs,
      scheme: (s) => (s.kind === 'matrix' ? 'int8' : 'f32'),
      shard: { kind: 'full', experts: all },
    });
  });

  it('takes a per-tensor chooser', () => {
    const scheme = (s: ParamSpec): QuantScheme =>
      s.kind === 'vector' ? 'f32' : s.name.includes('ffn') ? 'int8-2:4' : s.tier === 'edge' ? 'f32' : 'int8';
    checkFile(writeWeights(config, params, { scheme }), {
      config,
      params,
      specs,
      scheme,
      shard: { kind: 'full', experts: all },
    });
  });

  it('handles odd sizes: 2:4 with an odd number of groups, int8 where cols % 4 != 0', () => {
    // Dc = 30: lstm.w_ih has 110 columns; D = 36, ffn = 76: 2:4 rows of 9 and 19 groups.
    const odd: ModelConfig = {
      ...config,
      controller: { embed: 30, hidden: 64 },
      experts: { ...config.experts, width: 36, ffn: 76, heads: 3, count: 2, top_k: 1 },
    };
    const p = initRandom(odd, 5);
    const f = checkFile(writeWeights(odd, p, { scheme: 'int8-2:4' }), {
      config: odd,
      params: p,
      specs: paramSpecs(odd),
      scheme: defaultScheme('int8-2:4'),
      shard: { kind: 'full', experts: [0, 1] },
    });
    expect(f.entries.find((e) => e.name === 'experts.1.layers.0.ffn.w2.idx')!.shape).toEqual([36, 10]);
    expect(f.entries.find((e) => e.name === 'lstm.w_ih')!.dtype).toBe('I8');
  });

  it('writes edge files and expert shards from a full parameter map', () => {
    const scheme = defaultScheme('int8-2:4');
    const edge = writeWeights(config, params, { scheme: 'int8-2:4', shard: { kind: 'edge' } });
    checkFile(edge, {
      config,
      params,
      specs: specs.filter((s) => s.tier === 'edge'),
      scheme,
      shard: { kind: 'edge', experts: [] },
    });
    const shard = writeWeights(config, params, {
      scheme: 'int8-2:4',
      shard: { kind: 'experts', experts: [2, 0] },
    });
    checkFile(shard, {
      config,
      params,
      specs: specs.filter((s) => s.tier === 'expert-shared' || s.expert === 0 || s.expert === 2),
      scheme,
      shard: { kind: 'experts', experts: [0, 2] },
    });
  });

  it('splitWeights output passes the same checks', () => {
    const scheme = defaultScheme('int8');
    const split = splitWeights(readWeights(writeWeights(config, params)), 3);
    checkFile(split.edge, {
      config,
      params,
      specs: specs.filter((s) => s.tier === 'edge'),
      scheme,
      shard: { kind: 'edge', experts: [] },
    });
    for (const s of split.shards)
      checkFile(s.bytes, {
        config,
        params,
        specs: specs.filter((p) => p.tier === 'expert-shared' || s.experts.includes(p.expert!)),
        scheme,
        shard: { kind: 'experts', experts: s.experts },
      });
  });

  it('is deterministic, and re-saving the stored tensors gives the same bytes', () => {
    const a = writeWeights(config, params, { scheme: 'int8-2:4' });
    expectSame(writeWeights(config, params, { scheme: 'int8-2:4' }), a, 'second write');
    const f = readWeights(a);
    const again = writeStored(f.config, new Map(f.names().map((n) => [n, f.stored(n)])), f.shard);
    expectSame(again, a, 're-saved file');
  });
});

describe('writeWeights: errors', () => {
  const message = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(WeightsError);
      return (e as WeightsError).message;
    }
    throw new Error('expected a WeightsError');
  };

  it('a missing tensor, with its expected shape', () => {
    const p = new Map(params);
    p.delete('memory.w_code');
    expect(message(() => writeWeights(config, p))).toMatch(
      /"memory\.w_code".*expected shape \[256, 64\].*found no such/,
    );
  });

  it('a wrong shape', () => {
    const p = new Map(params);
    p.set('gate.w', { shape: [64, 4], data: params.get('gate.w')!.data });
    expect(message(() => writeWeights(config, p))).toMatch(
      /"gate\.w".*expected shape \[4, 64\], found \[64, 4\]/,
    );
  });

  it('a data length that does not match the shape', () => {
    const p = new Map(params);
    p.set('gate.b', { shape: [4], data: new Float32Array(5) });
    expect(message(() => writeWeights(config, p))).toMatch(/"gate\.b".*expected 4 elements, found 5/);
  });

  it('unknown tensor names, listed', () => {
    const p = new Map(params);
    p.set('lstm.w_xx', { shape: [1], data: new Float32Array(1) });
    p.set('experts.9.w_in', { shape: [1], data: new Float32Array(1) });
    const m = message(() => writeWeights(config, p));
    expect(m).toContain('"lstm.w_xx"');
    expect(m).toContain('"experts.9.w_in"');
  });

  it('a chooser that quantizes a vector or prunes an unfit matrix', () => {
    expect(message(() => writeWeights(config, params, { scheme: () => 'int8' }))).toMatch(
      /"lstm\.b".*expected f32.*found int8/,
    );
    const odd: ModelConfig = { ...config, controller: { embed: 30, hidden: 64 } };
    const scheme = (s: ParamSpec): QuantScheme => (s.kind === 'matrix' ? 'int8-2:4' : 'f32');
    expect(message(() => writeWeights(odd, initRandom(odd, 1), { scheme }))).toMatch(
      /"tok_embed".*divisible by 4, found shape \[260, 30\]/,
    );
  });

  it('an invalid config or shard', () => {
    const bad = { ...config, experts: { ...config.experts, heads: 3 } };
    expect(message(() => writeWeights(bad, params))).toContain('config.experts.heads');
    expect(
      message(() => writeWeights(config, params, { shard: { kind: 'experts', experts: [7] } })),
    ).toContain('expected an expert id in [0, 4), found 7');
  });

  it('stored tensors with corrupt arrays', () => {
    const f = readWeights(writeWeights(config, params, { scheme: 'int8-2:4' }));
    const stored = new Map(f.names().map((n) => [n, f.stored(n)]));
    const w = stored.get('lstm.w_hh')!;
    if (w.scheme !== 'int8-2:4') throw new Error('lstm.w_hh: expected int8-2:4');
    const idx = w.idx.slice();
    idx[0] = 0x00; // group 0 keeps position 0 twice
    stored.set('lstm.w_hh', { ...w, idx });
    expect(message(() => writeStored(config, stored))).toMatch(
      /"lstm\.w_hh\.idx": row 0, group 0.*found 0 then 0/,
    );
    stored.set('lstm.w_hh', { ...w, scale: new Float32Array(3) });
    expect(message(() => writeStored(config, stored))).toMatch(
      /"lstm\.w_hh\.scale".*expected 256 F32 values.*found 3/,
    );
  });
});
