import { describe, expect, it } from 'vitest';
import { preset } from '../config.ts';
import { initRandom } from '../init.ts';
import { paramSpecs } from '../params.ts';
import { ReferenceModel } from '../reference.ts';
import { WeightsError } from './format.ts';
import { readWeights, type WeightsFile } from './read.ts';
import { expertGroups, splitWeights } from './split.ts';
import { writeWeights } from './write.ts';

const config = preset('tiny');
const params = initRandom(config, 11);
const specs = paramSpecs(config);
const full = readWeights(writeWeights(config, params, { scheme: 'int8-2:4' }));

/** The raw bytes of every stored entry, by entry name. */
function entryBytes(f: WeightsFile): Map<string, Uint8Array> {
  return new Map(f.entries.map((e) => [e.name, f.bytes.subarray(e.offset, e.offset + (e.end - e.begin))]));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

describe('expertGroups', () => {
  it('makes contiguous groups whose sizes differ by at most one and cover every expert once', () => {
    for (let E = 1; E <= 20; E++)
      for (let N = 1; N <= E; N++) {
        const g = expertGroups(E, N);
        expect(g).toHaveLength(N);
        expect(g.flat()).toEqual(Array.from({ length: E }, (_, i) => i));
        const sizes = g.map((x) => x.length);
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
        expect(Math.min(...sizes)).toBeGreaterThan(0);
      }
    expect(expertGroups(4, 3)).toEqual([[0, 1], [2], [3]]);
    expect(expertGroups(16, 3).map((g) => g.length)).toEqual([6, 5, 5]);
  });

  it.each([0, 5, 1.5, -1])('refuses %j groups of 4 experts', (n) => {
    expect(() => expertGroups(4, n)).toThrow(
      `shard count: expected an integer in [1, 4] (the number of experts), found ${n}`,
    );
  });
});

describe('splitWeights', () => {
  const fullBytes = entryBytes(full);

  it.each([1, 2, 3, 4])(
    'into %i shards: the parts read back, cover every expert, and keep the bytes',
    (n) => {
      const split = splitWeights(full, n);
      const edge = readWeights(split.edge);
      expect(edge.shard).toEqual({ kind: 'edge', experts: [] });
      expect(edge.names()).toEqual(specs.filter((s) => s.tier === 'edge').map((s) => s.name));
      expect(split.shards).toHaveLength(n);
      const seen: number[] = [];
      for (const part of [edge, ...split.shards.map((s) => readWeights(s.bytes))]) {
        for (const [name, bytes] of entryBytes(part))
          expect(sameBytes(bytes, fullBytes.get(name)!), `${name}: stored bytes carried over`).toBe(true);
        for (const name of part.names()) expect(part.schemes.get(name)).toBe(full.schemes.get(name));
        if (part.shard.kind === 'experts') {
          seen.push(...part.experts());
          expect(part.has('experts.embed') && part.has('experts.pos')).toBe(true);
          expect(part.names().filter((x) => specs.find((s) => s.name === x)!.tier === 'edge')).toEqual([]);
        }
      }
      expect(split.shards.map((s) => s.experts)).toEqual(expertGroups(4, n));
      expect(seen.sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
    },
  );

  it('takes explicit groups, sorted within, and allows replicas across groups', () => {
    const split = splitWeights(full, [[3, 1], [0], [1, 2]]);
    expect(split.shards.map((s) => s.experts)).toEqual([[1, 3], [0], [1, 2]]);
    const a = readWeights(split.shards[0].bytes);
    const c = readWeights(split.shards[2].bytes);
    expect(a.experts()).toEqual([1, 3]);
    expect(a.names().some((n) => n.startsWith('experts.0.') || n.startsWith('experts.2.'))).toBe(false);
    expect(sameBytes(entryBytes(a).get('experts.1.w_out')!, entryBytes(c).get('experts.1.w_out')!)).toBe(
      true,
    );
  });

  it('is deterministic, and refuses to split a file that is already a shard', () => {
    const once = splitWeights(full, 2);
    const twice = splitWeights(readWeights(writeWeights(config, params, { scheme: 'int8-2:4' })), 2);
    expect(sameBytes(once.edge, twice.edge)).toBe(true);
    once.shards.forEach((s, i) => expect(sameBytes(s.bytes, twice.shards[i].bytes)).toBe(true));
    expect(() => splitWeights(readWeights(once.shards[0].bytes), 2)).toThrow(
      'splitWeights: expected a full file (it must hold the edge tensors and every expert), found a file of kind "experts"',
    );
  });

  it.each([
    [[[]], 'shards[0].experts: an expert shard expected at least one expert id, found []'],
    [[[0], [4]], 'shards[1].experts[0]: expected an expert id in [0, 4), found 4'],
    [[[2, 2]], 'shards[0].experts: expected distinct ids, found 2 more than once'],
    [0, 'shard count: expected an integer in [1, 4]'],
  ])('refuses %j', (shards, message) => {
    expect(() => splitWeights(full, shards as number | number[][])).toThrow(WeightsError);
    expect(() => splitWeights(full, shards as number | number[][])).toThrow(message);
  });

  it('the edge file and the shards compute what the full file computes', () => {
    const split = splitWeights(full, 2);
    const whole = new ReferenceModel(config, full.params());
    const edge = new ReferenceModel(config, readWeights(split.edge).params(), 'edge');
    const shard = new ReferenceModel(config, readWeights(split.shards[1].bytes).params(), 'experts');
    expect([0, 1, 2, 3].map((e) => shard.hasExpert(e))).toEqual([false, false, true, true]);

    const state = whole.initialState();
    const a = whole.controller(state, 258);
    const b = edge.controller(state, 258);
    expect(Array.from(b.h)).toEqual(Array.from(a.h));
    expect(Array.from(edge.route(b.h).probs)).toEqual(Array.from(whole.route(a.h).probs));

    const prompt = [256, 104, 105, 10];
    const out = whole.expertStep(3, a.h, whole.expertPrefill(3, prompt));
    expect(Array.from(shard.expertStep(3, a.h, shard.expertPrefill(3, prompt)))).toEqual(Array.from(out));
    expect(() => shard.expertPrefill(0, prompt)).toThrow(/not loaded/);
  });
});
