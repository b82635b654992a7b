import { describe, expect, it } from 'vitest';
import { preset } from '../config.ts';
import { initRandom } from '../init.ts';
import { paramSpecs, type ParamSpec } from '../params.ts';
import { dequantize, quantizeAs, type QuantScheme } from '../quant.ts';
import { defaultScheme, WeightsError } from './format.ts';
import { readWeights, type WeightsFile } from './read.ts';
import { writeWeights } from './write.ts';

/** CRC-32 straight from its definition (bit at a time, no tables), independent of the module under test. */
function referenceCrc32(bytes: Iterable<number>): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

const config = preset('tiny');
const params = initRandom(config, 7);
const specs = paramSpecs(config);
const files = {
  f32: writeWeights(config, params, { scheme: 'f32' }),
  int8: writeWeights(config, params, { scheme: 'int8' }),
  'int8-2:4': writeWeights(config, params, { scheme: 'int8-2:4' }),
};

function expectSame(a: ArrayLike<number>, b: ArrayLike<number>, label: string): void {
  expect(a.length, `${label}: length`).toBe(b.length);
  let first = -1;
  for (let i = 0; i < a.length && first < 0; i++) if (a[i] !== b[i]) first = i;
  expect(first, `${label}: first differing element`).toBe(-1);
}

/** The typed arrays of a stored tensor. */
function arrays(f: WeightsFile, name: string): (Float32Array | Int8Array | Uint8Array)[] {
  const t = f.stored(name);
  return t.scheme === 'f32' ? [t.data] : t.scheme === 'int8' ? [t.q, t.scale] : [t.q, t.idx, t.scale];
}

describe('readWeights: round trips', () => {
  it.each(['f32', 'int8', 'int8-2:4'] as const)(
    'scheme %s: dequantized equals dequantize(quantizeAs(...))',
    (kind) => {
      const f = readWeights(files[kind]);
      const choose = defaultScheme(kind);
      expect(f.config).toEqual(config);
      expect(f.formatVersion).toBe(1);
      expect(f.shard).toEqual({ kind: 'full', experts: [0, 1, 2, 3] });
      expect(f.experts()).toEqual([0, 1, 2, 3]);
      expect(f.names()).toEqual(specs.map((s) => s.name));
      const all = f.params();
      expect([...all.keys()]).toEqual(specs.map((s) => s.name));
      for (const s of specs) {
        expect(f.schemes.get(s.name), s.name).toBe(choose(s));
        const want = quantizeAs(params.get(s.name)!, choose(s));
        const got = f.stored(s.name);
        expect(got.scheme).toBe(want.scheme);
        expect(got.shape).toEqual(s.shape);
        if (got.scheme !== 'f32' && want.scheme !== 'f32') {
          expectSame(got.q, want.q, `${s.name} q`);
          expectSame(got.scale, want.scale, `${s.name} scale`);
        }
        if (got.scheme === 'int8-2:4' && want.scheme === 'int8-2:4')
          expectSame(got.idx, want.idx, `${s.name} idx`);
        const t = f.tensor(s.name);
        expect(t.shape).toEqual(s.shape);
        expectSame(t.data, dequantize(want).data, s.name);
        expectSame(all.get(s.name)!.data, t.data, s.name);
      }
    },
  );

  it('f32 is lossless', () => {
    const f = readWeights(files.f32);
    for (const s of specs) expectSame(f.tensor(s.name).data, params.get(s.name)!.data, s.name);
  });

  it('int8 and 2:4 stay close to the float weights', () => {
    // Per row, int8 error is at most half a step (scale/2); 2:4 also drops the two smallest of each group.
    const f = readWeights(files.int8);
    const w = params.get('head.w')!;
    const q = f.tensor('head.w');
    const cols = w.shape[1];
    for (let r = 0; r < w.shape[0]; r++) {
      let max = 0;
      for (let k = 0; k < cols; k++) max = Math.max(max, Math.abs(w.data[r * cols + k]));
      for (let k = 0; k < cols; k++)
        expect(Math.abs(q.data[r * cols + k] - w.data[r * cols + k])).toBeLessThanOrEqual(
          (max / 127) * 0.5 + 1e-7,
        );
    }
    const sparse = readWeights(files['int8-2:4']).tensor('head.w').data;
    for (let g = 0; g < sparse.length / 4; g++)
      expect(Array.from(sparse.subarray(4 * g, 4 * g + 4)).filter((v) => v !== 0).length).toBeLessThanOrEqual(
        2,
      );
  });

  it('accepts an ArrayBuffer', () => {
    const bytes = files.int8;
    const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    expectSame(readWeights(copy).tensor('gate.w').data, readWeights(bytes).tensor('gate.w').data, 'gate.w');
  });

  it('lists the stored entries in file order with their offsets', () => {
    const f = readWeights(files['int8-2:4']);
    const e = f.entries;
    for (let i = 1; i < e.length; i++) expect(e[i].begin).toBe(e[i - 1].end);
    expect(e.find((x) => x.name === 'lstm.w_hh.idx')).toMatchObject({
      tensor: 'lstm.w_hh',
      role: 'idx',
      dtype: 'U8',
    });
    expect(e.length).toBe(Object.keys(JSON.parse(f.metadata.checksums)).length);
  });

  it('refuses a tensor the file does not hold, naming it', () => {
    const f = readWeights(files.f32);
    expect(() => f.stored('lstm.w_xh')).toThrow(/"lstm\.w_xh".*found no such tensor/);
    expect(f.has('lstm.w_ih')).toBe(true);
    expect(f.has('lstm.w_xh')).toBe(false);
  });
});

describe('readWeights: zero copy', () => {
  it.each(['f32', 'int8', 'int8-2:4'] as const)(
    'scheme %s: every typed array views the input buffer',
    (kind) => {
      const bytes = files[kind];
      const f = readWeights(bytes);
      for (const e of f.entries) expect(e.offset % (e.dtype === 'F32' ? 4 : 1), e.name).toBe(0);
      for (const s of specs)
        for (const a of arrays(f, s.name)) {
          expect(a.buffer, s.name).toBe(bytes.buffer);
          expect(a.byteOffset).toBeGreaterThanOrEqual(bytes.byteOffset);
        }
      // An f32 tensor is handed out without even a dequantization copy.
      if (kind === 'f32') expect(f.tensor('head.w').data.buffer).toBe(bytes.buffer);
      expect(f.tensor('lstm.b').data.buffer).toBe(bytes.buffer);
    },
  );

  it('views in place when the caller’s array sits at an aligned offset inside a larger buffer', () => {
    const big = new Uint8Array(files.int8.length + 16);
    big.set(files.int8, 8);
    const f = readWeights(big.subarray(8, 8 + files.int8.length));
    for (const s of specs) for (const a of arrays(f, s.name)) expect(a.buffer).toBe(big.buffer);
  });

  it('copies only the float32 entries when the caller’s array is unaligned', () => {
    const big = new Uint8Array(files.int8.length + 1);
    big.set(files.int8, 1);
    const f = readWeights(big.subarray(1));
    const ref = readWeights(files.int8);
    let copies = 0;
    for (const s of specs) {
      const got = arrays(f, s.name);
      arrays(ref, s.name).forEach((want, i) => {
        expectSame(got[i], want, s.name);
        if (got[i] instanceof Float32Array) {
          expect(got[i].buffer).not.toBe(big.buffer);
          copies++;
        } else expect(got[i].buffer).toBe(big.buffer);
      });
    }
    expect(copies).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------- corrupt and foreign files

interface Parsed {
  header: Record<string, any>;
  meta: Record<string, string>;
  data: Uint8Array;
  dataStart: number;
}

function parse(bytes: Uint8Array): Parsed {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  return { header, meta: header.__metadata__, data: bytes.subarray(8 + n), dataStart: 8 + n };
}

/** Re-encodes a file with an edited header and the same data section. */
function rewrite(bytes: Uint8Array, edit: (p: Parsed) => void): Uint8Array {
  const p = parse(bytes);
  edit(p);
  return assemble(new TextEncoder().encode(JSON.stringify(p.header)), p.data);
}

function assemble(json: Uint8Array, data: Uint8Array): Uint8Array {
  const pad = (8 - ((8 + json.length) % 8)) % 8;
  const out = new Uint8Array(8 + json.length + pad + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length + pad), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + json.length + pad);
  out.set(data, 8 + json.length + pad);
  return out;
}

const editMeta = (key: string, edit: (v: any) => any) => (p: Parsed) => {
  p.meta[key] = JSON.stringify(edit(JSON.parse(p.meta[key])));
};

function failure(bytes: Uint8Array | ArrayBuffer, opts?: { verify?: boolean }): WeightsError {
  try {
    readWeights(bytes, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(WeightsError);
    return e as WeightsError;
  }
  throw new Error('expected readWeights to throw a WeightsError');
}

/** An error about one tensor: it names the tensor and says what was expected and what was found. */
function tensorFailure(bytes: Uint8Array, tensor: string, opts?: { verify?: boolean }): string {
  const e = failure(bytes, opts);
  expect(e.tensor).toBe(tensor);
  expect(e.message).toContain(`"${tensor}"`);
  expect(e.message).toContain('expected');
  expect(e.message).toContain('found');
  return e.message;
}

describe('readWeights: other valid safetensors layouts', () => {
  it('reads a file with an unpadded header and the entries in reverse order, copying where unaligned', () => {
    const { header, data } = parse(files['int8-2:4']);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    names.sort((a, b) => header[b].data_offsets[0] - header[a].data_offsets[0]);
    const pieces: Uint8Array[] = [];
    const out: Record<string, unknown> = { __metadata__: header.__metadata__ };
    let at = 0;
    for (const n of names) {
      const [b, e] = header[n].data_offsets;
      pieces.push(data.subarray(b, e));
      out[n] = { ...header[n], data_offsets: [at, at + e - b] };
      at += e - b;
    }
    let json = new TextEncoder().encode(JSON.stringify(out));
    if ((8 + json.length) % 4 === 0) json = new TextEncoder().encode(JSON.stringify(out) + ' ');
    const file = new Uint8Array(8 + json.length + at);
    new DataView(file.buffer).setBigUint64(0, BigInt(json.length), true);
    file.set(json, 8);
    let w = 8 + json.length;
    for (const p of pieces) {
      file.set(p, w);
      w += p.length;
    }
    const f = readWeights(file);
    const ref = readWeights(files['int8-2:4']);
    expect(f.entries.map((e) => e.name)).toEqual(names);
    expect(f.entries.some((e) => e.dtype === 'F32' && e.offset % 4 !== 0)).toBe(true);
    for (const s of specs) expectSame(f.tensor(s.name).data, ref.tensor(s.name).data, s.name);
  });
});

describe('readWeights: errors', () => {
  const file = files.int8;
  const { header, dataStart } = parse(file);
  const entry = (name: string) => header[name] as { dtype: string; shape: number[]; data_offsets: number[] };
  const headerLen = dataStart - 8;

  it.each([0, 3, 7])('a file of %i bytes', (n) => {
    const m = failure(file.subarray(0, n)).message;
    expect(m).toContain('expected at least 8 bytes');
    expect(m).toContain(`found ${n}`);
  });

  it.each([8, 20, dataStart - 1])('a file cut at byte %i, inside the header', (cut) => {
    const m = failure(file.subarray(0, cut)).message;
    expect(m).toContain(`expected ${headerLen} bytes of JSON`);
    expect(m).toContain(`found ${cut - 8} bytes`);
  });

  it('a header length beyond the safetensors limit', () => {
    const bad = file.slice();
    new DataView(bad.buffer).setBigUint64(0, 1n << 40n, true);
    const m = failure(bad).message;
    expect(m).toContain('expected at most 100000000 bytes');
    expect(m).toContain(`found ${1n << 40n}`);
  });

  it('a file cut inside the data section names the tensor cut off', () => {
    const byBegin = Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .map(([k, v]) => ({ name: k, begin: v.data_offsets[0], end: v.data_offsets[1] }))
      .sort((a, b) => a.begin - b.begin);
    const firstI8 = byBegin.find((e) => header[e.name].dtype === 'I8')!;
    const mid = byBegin[Math.floor(byBegin.length / 3)];
    const last = byBegin[byBegin.length - 1];
    for (const [cut, victim] of [
      [dataStart + 1, byBegin[0]],
      [dataStart + mid.begin + 2, mid],
      [dataStart + firstI8.begin + 5, firstI8],
      [file.length - 1, last],
    ] as const) {
      const m = tensorFailure(file.subarray(0, cut), victim.name);
      expect(m).toContain(`found ${cut - dataStart}`);
      expect(m).toContain(`${victim.end}`);
    }
  });

  it('a file whose data section starts exactly where it was cut', () => {
    const first = Object.entries(header).find(([, v]) => v.data_offsets?.[0] === 0)![0];
    tensorFailure(file.subarray(0, dataStart), first);
  });

  it('trailing bytes after the last tensor', () => {
    const longer = new Uint8Array(file.length + 8);
    longer.set(file);
    const m = failure(longer).message;
    expect(m).toContain(`expected ${file.length - dataStart} bytes`);
    expect(m).toContain(`found ${file.length - dataStart + 8}`);
  });

  it('a header that is not JSON, or not UTF-8', () => {
    const data = parse(file).data;
    const m = failure(assemble(new TextEncoder().encode('{"__metadata__": {"format": '), data)).message;
    expect(m).toContain('expected UTF-8 JSON');
    expect(m).toContain('found "{\\"__metadata__\\"');
    expect(failure(assemble(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), data)).message).toContain(
      'expected UTF-8 JSON',
    );
    expect(failure(assemble(new TextEncoder().encode('[1, 2]'), data)).message).toContain(
      'expected a JSON object, found [1,2]',
    );
  });

  it('a plain safetensors file without Switchyard metadata', () => {
    const m = failure(rewrite(file, (p) => delete p.header.__metadata__)).message;
    expect(m).toContain('expected an object of strings with format "switchyard.rru-moe", found nothing');
    const m2 = failure(rewrite(file, (p) => delete p.meta.format)).message;
    expect(m2).toContain('metadata.format: expected "switchyard.rru-moe", found nothing');
    const m3 = failure(rewrite(file, (p) => (p.meta.format = 'gguf'))).message;
    expect(m3).toContain('found "gguf"');
  });

  it('metadata values that are not strings', () => {
    const m = failure(rewrite(file, (p) => ((p.meta as any).format_version = 1))).message;
    expect(m).toContain('metadata.format_version: expected a string');
    expect(m).toContain('found 1');
  });

  it.each(['2', '0', 'v1', ''])('format_version %j', (v) => {
    const m = failure(rewrite(file, (p) => (p.meta.format_version = v))).message;
    expect(m).toContain('expected one of "1"');
    expect(m).toContain(`found ${JSON.stringify(v)}`);
  });

  it('an invalid config, through parseConfig', () => {
    const m = failure(
      rewrite(
        file,
        editMeta('config', (c) => ({ ...c, experts: { ...c.experts, heads: 5 } })),
      ),
    ).message;
    expect(m).toContain('metadata.config.experts.heads');
    expect(m).toContain('found 5');
    expect(failure(rewrite(file, (p) => (p.meta.config = '{oops'))).message).toMatch(
      /metadata\.config: expected JSON, found "\{oops"/,
    );
  });

  it('a shard description that does not fit the config', () => {
    const m = failure(
      rewrite(
        file,
        editMeta('shard', () => ({ kind: 'experts', experts: [9] })),
      ),
    ).message;
    expect(m).toContain('metadata.shard.experts[0]: expected an expert id in [0, 4), found 9');
  });

  it('a dtype the entry does not allow', () => {
    const m = tensorFailure(
      rewrite(file, (p) => (p.header['lstm.b'].dtype = 'F16')),
      'lstm.b',
    );
    expect(m).toMatch(/expected F32.*found "F16"/);
    const m2 = tensorFailure(
      rewrite(file, (p) => (p.header['gate.w'].dtype = 'U8')),
      'gate.w',
    );
    expect(m2).toMatch(/expected I8.*found "U8"/);
  });

  it('a wrong shape', () => {
    const m = tensorFailure(
      rewrite(file, (p) => (p.header['gate.w'].shape = [64, 4])),
      'gate.w',
    );
    expect(m).toContain('expected [4, 64], found [64, 4]');
    const m2 = tensorFailure(
      rewrite(file, (p) => (p.header['gate.w.scale'].shape = [2, 2])),
      'gate.w.scale',
    );
    expect(m2).toContain('expected [4], found [2, 2]');
  });

  it('data_offsets that do not match shape × dtype size', () => {
    const [b, e] = entry('gate.b').data_offsets;
    const m = tensorFailure(
      rewrite(file, (p) => (p.header['gate.b'].data_offsets = [b, e - 4])),
      'gate.b',
    );
    expect(m).toContain('expected 16 bytes');
    expect(m).toContain('found 12');
    const m2 = tensorFailure(
      rewrite(file, (p) => (p.header['gate.b'].data_offsets = [e, b])),
      'gate.b',
    );
    expect(m2).toContain(`found [${e},${b}]`);
  });

  it('data_offsets past the end of the data section', () => {
    const [b, e] = entry('gate.b').data_offsets;
    const far = parse(file).data.length + 100;
    const m = tensorFailure(
      rewrite(file, (p) => (p.header['gate.b'].data_offsets = [far, far + e - b])),
      'gate.b',
    );
    expect(m).toContain(`found ${far - 100}`);
  });

  it('overlapping entries', () => {
    const a = entry('experts.0.b_in').data_offsets;
    const m = failure(rewrite(file, (p) => (p.header['experts.1.b_in'].data_offsets = a))).message;
    expect(m).toMatch(/expected to begin at \d+.*found \d+ \((an overlap|a hole)/);
  });

  it('a missing tensor, with the shape the shard expected', () => {
    const m = tensorFailure(
      rewrite(file, (p) => {
        delete p.header['memory.w_code'];
        delete p.header['memory.w_code.scale'];
        p.meta.quantization = JSON.stringify({
          ...JSON.parse(p.meta.quantization),
          'memory.w_code': undefined,
        });
      }),
      'memory.w_code',
    );
    expect(m).toContain('expected it with shape [256, 64]');
    expect(m).toContain('found no such tensor');
    // Removed from the header only: the scheme in the metadata still says what the entry should be.
    const m2 = tensorFailure(
      rewrite(file, (p) => delete p.header['memory.w_code.scale']),
      'memory.w_code.scale',
    );
    expect(m2).toContain('shape [256]');
    expect(m2).toContain('found no such entry');
  });

  it('unknown extra tensors, listed', () => {
    const m = failure(
      rewrite(file, (p) => {
        p.header['bogus.w'] = { dtype: 'F32', shape: [1], data_offsets: [0, 4] };
        p.header['lstm.w_hh.idx'] = { dtype: 'U8', shape: [1], data_offsets: [0, 1] };
      }),
    ).message;
    expect(m).toContain('"bogus.w"');
    expect(m).toContain('"lstm.w_hh.idx"');
    expect(m).toContain('expected only the entries of a "full" file');
  });

  it('a quantization map that is wrong for a tensor', () => {
    const m = tensorFailure(
      rewrite(
        file,
        editMeta('quantization', (q) => ({ ...q, 'lstm.b': 'int8' })),
      ),
      'lstm.b',
    );
    expect(m).toMatch(/expected f32.*found int8/);
    const m2 = tensorFailure(
      rewrite(
        file,
        editMeta('quantization', (q) => ({ ...q, 'gate.w': 'int4' })),
      ),
      'gate.w',
    );
    expect(m2).toContain('expected one of f32, int8, int8-2:4, found "int4"');
    // The map says f32, the header holds int8 entries: the extra .scale entry is unknown.
    const m3 = failure(
      rewrite(
        file,
        editMeta('quantization', (q) => ({ ...q, 'gate.w': 'f32' })),
      ),
    ).message;
    expect(m3).toContain('"gate.w.scale"');
  });

  it('a checksum table with a missing or malformed entry', () => {
    const m = tensorFailure(
      rewrite(
        file,
        editMeta('checksums', (c) => ({ ...c, 'gate.w.scale': undefined })),
      ),
      'gate.w.scale',
    );
    expect(m).toContain('found nothing');
    const m2 = tensorFailure(
      rewrite(
        file,
        editMeta('checksums', (c) => ({ ...c, 'gate.w': 'ABCDEF01' })),
      ),
      'gate.w',
    );
    expect(m2).toContain('8 lowercase hex digits, found "ABCDEF01"');
  });

  it('a flipped byte inside a tensor: a checksum error naming it, expected and found CRC', () => {
    for (const name of ['head.w', 'lstm.b', 'experts.3.layers.1.ffn.w2.scale']) {
      const [b, e] = entry(name).data_offsets;
      const bad = file.slice();
      const at = dataStart + Math.floor((b + e) / 2);
      bad[at] ^= 0x40;
      const m = tensorFailure(bad, name);
      const stored = JSON.parse(parse(file).meta.checksums)[name];
      const actual = referenceCrc32(bad.subarray(dataStart + b, dataStart + e))
        .toString(16)
        .padStart(8, '0');
      expect(m).toContain(`expected CRC-32 ${stored}`);
      expect(m).toContain(`found ${actual}`);
    }
  });

  it('verify: false skips the checksums (and then the corrupt value comes through)', () => {
    const [b] = entry('head.w').data_offsets;
    const bad = file.slice();
    bad[dataStart + b] ^= 0x40;
    const f = readWeights(bad, { verify: false });
    const good = readWeights(file).tensor('head.w').data;
    const got = f.tensor('head.w').data;
    expect(got[0]).not.toBe(good[0]);
    expectSame(got.subarray(1), good.subarray(1), 'head.w after the first element');
  });

  it('verify: false still checks the structure and the 2:4 positions', () => {
    const f24 = files['int8-2:4'];
    const p = parse(f24);
    const [b] = (p.header['lstm.w_hh.idx'] as { data_offsets: number[] }).data_offsets;
    const bad = f24.slice();
    bad[p.dataStart + b] = 0x00; // group 0 and 1 keep position 0 twice
    const m = tensorFailure(bad, 'lstm.w_hh.idx', { verify: false });
    expect(m).toContain('row 0, group 0');
    tensorFailure(bad, 'lstm.w_hh.idx'); // with verification, the checksum catches it first
    expect(failure(bad).message).toContain('checksum mismatch');
    expect(failure(file.subarray(0, 7), { verify: false }).message).toContain('at least 8 bytes');
  });
});

describe('readWeights: shards validate only what they should hold', () => {
  const edge = writeWeights(config, params, { shard: { kind: 'edge' } });
  const shard = writeWeights(config, params, {
    scheme: 'int8-2:4',
    shard: { kind: 'experts', experts: [1, 3] },
  });

  it('an edge file holds the edge tensors and no expert', () => {
    const f = readWeights(edge);
    expect(f.names()).toEqual(specs.filter((s) => s.tier === 'edge').map((s) => s.name));
    expect(f.experts()).toEqual([]);
    expect(() => f.stored('experts.embed')).toThrow(WeightsError);
  });

  it('an expert shard holds the shared tensors and its experts', () => {
    const f = readWeights(shard);
    expect(f.experts()).toEqual([1, 3]);
    const want = specs.filter(
      (s: ParamSpec) => s.tier === 'expert-shared' || s.expert === 1 || s.expert === 3,
    );
    expect(f.names()).toEqual(want.map((s) => s.name));
    const choose = defaultScheme('int8-2:4');
    for (const s of want)
      expectSame(
        f.tensor(s.name).data,
        dequantize(quantizeAs(params.get(s.name)!, choose(s) as QuantScheme)).data,
        s.name,
      );
  });

  it('a shard whose metadata claims more than it holds', () => {
    const m = tensorFailure(
      rewrite(
        shard,
        editMeta('shard', () => ({ kind: 'experts', experts: [1, 2, 3] })),
      ),
      'experts.2.w_in',
    );
    expect(m).toContain('expected it with shape [32, 64]');
    const m2 = failure(
      rewrite(
        edge,
        editMeta('shard', () => ({ kind: 'full', experts: [0, 1, 2, 3] })),
      ),
    ).message;
    expect(m2).toContain('"experts.embed"');
    expect(m2).toContain('shape [260, 32]');
  });

  it('a shard whose metadata claims less than it holds', () => {
    const m = failure(
      rewrite(
        shard,
        editMeta('shard', () => ({ kind: 'experts', experts: [1] })),
      ),
    ).message;
    expect(m).toContain('"experts.3.');
    expect(m).toContain('found unknown');
  });
});
