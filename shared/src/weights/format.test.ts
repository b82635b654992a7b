import { describe, expect, it } from 'vitest';
import { preset, type ModelConfig } from '../config.ts';
import { paramSpecs, type ParamSpec } from '../params.ts';
import { quantize24 } from '../quant.ts';
import {
  check24Index,
  checkTensorScheme,
  defaultScheme,
  storedEntrySpecs,
  normalizeShard,
  shardSpecs,
  WeightsError,
} from './format.ts';

const tiny = preset('tiny');
const spec = (c: ModelConfig, name: string) => paramSpecs(c).find((s) => s.name === name)!;

function catchError(f: () => unknown): WeightsError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WeightsError);
    return e as WeightsError;
  }
  throw new Error('expected a WeightsError, none was thrown');
}

describe('storedEntrySpecs', () => {
  const w = spec(tiny, 'lstm.w_ih'); // [256, 112]
  it('stores f32 as one F32 entry of the logical shape', () => {
    expect(storedEntrySpecs(w, 'f32')).toEqual([
      { name: 'lstm.w_ih', tensor: 'lstm.w_ih', role: 'f32', dtype: 'F32', shape: [256, 112] },
    ]);
  });
  it('stores int8 as I8 values plus one F32 scale per row', () => {
    expect(storedEntrySpecs(w, 'int8').map((e) => [e.name, e.dtype, e.shape])).toEqual([
      ['lstm.w_ih', 'I8', [256, 112]],
      ['lstm.w_ih.scale', 'F32', [256]],
    ]);
  });
  it('stores 2:4 as half the values, a nibble per group, and the scales', () => {
    expect(storedEntrySpecs(w, 'int8-2:4').map((e) => [e.name, e.dtype, e.shape])).toEqual([
      ['lstm.w_ih', 'I8', [256, 56]],
      ['lstm.w_ih.idx', 'U8', [256, 14]],
      ['lstm.w_ih.scale', 'F32', [256]],
    ]);
    // 12 columns = 3 groups: the position bytes round up to 2 per row.
    const odd: ParamSpec = { ...w, shape: [5, 12] };
    expect(storedEntrySpecs(odd, 'int8-2:4')[1].shape).toEqual([5, 2]);
  });
});

describe('defaultScheme', () => {
  // Dc = 30 makes tok_embed and lstm.w_ih (30+16+64 = 110 columns) unfit for 2:4.
  const odd: ModelConfig = { ...tiny, controller: { embed: 30, hidden: 64 } };
  const choices = (kind: 'f32' | 'int8' | 'int8-2:4', c: ModelConfig) =>
    Object.fromEntries(paramSpecs(c).map((s) => [s.name, defaultScheme(kind)(s)]));

  it('f32 stores everything as float32', () => {
    expect(new Set(Object.values(choices('f32', tiny)))).toEqual(new Set(['f32']));
  });

  it('int8 quantizes every matrix and keeps every vector float32', () => {
    const c = choices('int8', tiny);
    for (const s of paramSpecs(tiny)) expect(c[s.name], s.name).toBe(s.kind === 'matrix' ? 'int8' : 'f32');
  });

  it('int8-2:4 prunes matrices with cols % 4 == 0 except the lookup tables', () => {
    const c = choices('int8-2:4', odd);
    expect(c['tok_embed']).toBe('int8');
    expect(c['experts.embed']).toBe('int8');
    expect(c['experts.pos']).toBe('int8');
    expect(c['lstm.w_ih']).toBe('int8'); // 110 columns
    expect(c['lstm.w_hh']).toBe('int8-2:4');
    expect(c['head.w']).toBe('int8-2:4');
    expect(c['experts.3.layers.1.ffn.w2']).toBe('int8-2:4');
    expect(c['lstm.b']).toBe('f32');
    expect(c['experts.0.layers.0.ln1.g']).toBe('f32');
  });

  it('rejects an unknown scheme name, listing the valid ones', () => {
    const e = catchError(() => defaultScheme('int4' as 'int8'));
    expect(e.message).toContain('"int4"');
    expect(e.message).toContain('f32, int8, int8-2:4');
  });
});

describe('checkTensorScheme', () => {
  it('refuses to quantize a vector', () => {
    const e = catchError(() => checkTensorScheme(spec(tiny, 'gate.b'), 'int8'));
    expect(e.tensor).toBe('gate.b');
    expect(e.message).toMatch(/expected f32.*found int8/);
  });
  it('refuses 2:4 when the input dimension is not a multiple of 4', () => {
    const s: ParamSpec = { ...spec(tiny, 'gate.w'), shape: [4, 66] };
    const e = catchError(() => checkTensorScheme(s, 'int8-2:4'));
    expect(e.message).toContain('divisible by 4');
    expect(e.message).toContain('[4, 66]');
  });
  it('refuses unknown schemes', () => {
    const e = catchError(() => checkTensorScheme(spec(tiny, 'gate.w'), 'fp8'));
    expect(e.message).toContain('"fp8"');
    expect(e.message).toContain('f32, int8, int8-2:4');
  });
  it('accepts every scheme the format allows', () => {
    for (const s of ['f32', 'int8', 'int8-2:4'])
      expect(() => checkTensorScheme(spec(tiny, 'gate.w'), s)).not.toThrow();
    expect(() => checkTensorScheme(spec(tiny, 'gate.b'), 'f32')).not.toThrow();
  });
});

describe('shards', () => {
  it('fills in the experts of full and edge shards and sorts explicit ids', () => {
    expect(normalizeShard(tiny, { kind: 'full' })).toEqual({ kind: 'full', experts: [0, 1, 2, 3] });
    expect(normalizeShard(tiny, { kind: 'edge' })).toEqual({ kind: 'edge', experts: [] });
    expect(normalizeShard(tiny, { kind: 'experts', experts: [3, 1] })).toEqual({
      kind: 'experts',
      experts: [1, 3],
    });
  });

  it.each([
    [{ kind: 'half' }, 'expected one of full, edge, experts, found "half"'],
    [{ kind: 'experts', experts: [4] }, 'expected an expert id in [0, 4), found 4'],
    [{ kind: 'experts', experts: [1, 1] }, 'found 1 more than once'],
    [{ kind: 'experts', experts: [] }, 'expected at least one expert id, found []'],
    [{ kind: 'full', experts: [0, 1] }, 'expected every expert [0..3], found [0, 1]'],
    [{ kind: 'edge', experts: [2] }, 'expected no experts [], found [2]'],
    [{ kind: 'edge', experts: [], extra: 1 }, 'found extra'],
    ['edge', 'expected an object'],
  ])('rejects %j', (input, message) => {
    expect(catchError(() => normalizeShard(tiny, input)).message).toContain(message);
  });

  it('requires the experts list when reading a file', () => {
    expect(
      catchError(() => normalizeShard(tiny, { kind: 'full' }, 'metadata.shard', true)).message,
    ).toContain('metadata.shard.experts: expected an array');
  });

  it('selects edge, shared and per-expert tensors', () => {
    const all = paramSpecs(tiny);
    const edge = shardSpecs(tiny, normalizeShard(tiny, { kind: 'edge' }));
    expect(edge.map((s) => s.name)).toEqual(all.filter((s) => s.tier === 'edge').map((s) => s.name));
    const shard = shardSpecs(tiny, normalizeShard(tiny, { kind: 'experts', experts: [2] }));
    expect(shard.map((s) => s.name)).toEqual(
      all.filter((s) => s.tier === 'expert-shared' || s.expert === 2).map((s) => s.name),
    );
    expect(shard[0].name).toBe('experts.embed');
    expect(shard.some((s) => s.name.startsWith('experts.1.'))).toBe(false);
    expect(shardSpecs(tiny, normalizeShard(tiny, { kind: 'full' }))).toEqual(all);
  });
});

describe('check24Index', () => {
  it('accepts what quantize24 writes, including the zero pad nibble of an odd group count', () => {
    const data = Float32Array.from({ length: 3 * 12 }, (_, i) => Math.sin(i * 1.7));
    const t = quantize24({ shape: [3, 12], data });
    expect(t.idx.length).toBe(6);
    expect(() => check24Index('w.idx', t.idx, 3, 12)).not.toThrow();
  });

  it('rejects repeated or decreasing positions, naming row and group', () => {
    const idx = new Uint8Array([0x94, 0x4c]); // row 0: groups (0,1), (1,2); row 1: (0,3), (0,1)
    expect(() => check24Index('w.idx', idx, 2, 8)).not.toThrow();
    idx[1] = 0x43; // row 1, group 0: positions 3 then 0
    const e = catchError(() => check24Index('w.idx', idx, 2, 8));
    expect(e.tensor).toBe('w.idx');
    expect(e.message).toContain('row 1, group 0');
    expect(e.message).toContain('found 3 then 0');
  });

  it('rejects a non-zero pad nibble', () => {
    const idx = new Uint8Array([0x54]); // one group (0,1), pad nibble 5
    const e = catchError(() => check24Index('w.idx', idx, 1, 4));
    expect(e.message).toContain('expected a zero pad nibble');
    expect(e.message).toContain('found 5');
  });
});
