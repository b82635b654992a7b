import { describe, expect, it } from 'vitest';
import { preset } from './config.ts';
import { checkParams, countParams, paramSpecs, ParamError } from './params.ts';
import { initRandom } from './init.ts';

describe('tensor specs', () => {
  it('r1-seed has about 110 M parameters with about 28% active per step (DESIGN.md §1)', () => {
    const n = countParams(preset('r1-seed'));
    expect(n.total).toBeGreaterThan(105e6);
    expect(n.total).toBeLessThan(115e6);
    expect(n.edge).toBeGreaterThan(4.3e6);
    expect(n.edge).toBeLessThan(4.7e6);
    expect(n.perExpert).toBeGreaterThan(6.3e6);
    expect(n.perExpert).toBeLessThan(6.8e6);
    expect(n.activeFraction).toBeGreaterThan(0.26);
    expect(n.activeFraction).toBeLessThan(0.3);
  });

  it('names are unique and every matrix is 2-D', () => {
    const specs = paramSpecs(preset('tiny'));
    expect(new Set(specs.map((s) => s.name)).size).toBe(specs.length);
    for (const s of specs) expect(s.shape.length).toBe(s.kind === 'matrix' ? 2 : 1);
  });

  it('the LSTM input is [x; r; m] and the head reads [h; m]', () => {
    const c = preset('r1-seed');
    const byName = new Map(paramSpecs(c).map((s) => [s.name, s.shape]));
    expect(byName.get('lstm.w_ih')).toEqual([2048, 256 + 128 + 512]);
    expect(byName.get('head.w')).toEqual([260, 1024]);
    expect(byName.get('experts.pos')).toEqual([1025, 256]);
    expect(byName.get('experts.15.layers.7.attn.wqkv')).toEqual([768, 256]);
  });

  it('checkParams names a missing tensor and a wrong shape', () => {
    const c = preset('tiny');
    const p = initRandom(c, 1);
    p.delete('gate.b');
    expect(() => checkParams(c, p)).toThrow(ParamError);
    expect(() => checkParams(c, p)).toThrow(/tensor "gate\.b": expected shape \[4\], found no such tensor/);
    const q = initRandom(c, 1);
    q.set('head.w', { shape: [260, 64], data: new Float32Array(260 * 64) });
    expect(() => checkParams(c, q)).toThrow(/tensor "head\.w": expected shape \[260,128\], found \[260,64\]/);
  });
});

describe('seeded initialisation', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const c = preset('tiny');
    const a = initRandom(c, 3);
    const b = initRandom(c, 3);
    const d = initRandom(c, 4);
    for (const [name, t] of a) expect(b.get(name)!.data).toEqual(t.data);
    expect(d.get('lstm.w_ih')!.data).not.toEqual(a.get('lstm.w_ih')!.data);
  });

  it('one tensor does not depend on which others were initialised', () => {
    const c = preset('tiny');
    const all = initRandom(c, 9);
    const one = initRandom(c, 9, (s) => s.expert === 2);
    expect(one.get('experts.2.w_in')!.data).toEqual(all.get('experts.2.w_in')!.data);
    expect(one.has('tok_embed')).toBe(false);
  });

  it('draws with the scale each rule asks for', () => {
    const p = initRandom(preset('r1-seed'), 1, (s) => s.name === 'experts.0.layers.0.ffn.w1');
    const w = p.get('experts.0.layers.0.ffn.w1')!.data; // std 1/√256
    let s2 = 0;
    for (const x of w) s2 += x * x;
    expect(Math.sqrt(s2 / w.length)).toBeCloseTo(1 / 16, 3);
  });
});
