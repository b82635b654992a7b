import { describe, expect, it } from 'vitest';
import { preset } from './config.ts';
import { initRandom } from './init.ts';
import { erf, gelu, softmax, topK } from './math.ts';
import { ReferenceModel, routeFromProbs } from './reference.ts';
import { renderChat } from './chat.ts';
import { BOS, decodeTokens, encodeText, showTokens, THINK } from './tokenizer.ts';

const tiny = preset('tiny');
const model = new ReferenceModel(tiny, initRandom(tiny, 11));

const rms = (x: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s / x.length);
};

describe('numerics', () => {
  it('erf and exact GELU match published values', () => {
    // Abramowitz & Stegun table 7.1 values.
    expect(erf(0)).toBe(0);
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 14);
    expect(erf(1)).toBeCloseTo(0.8427007929497149, 14);
    expect(erf(2)).toBeCloseTo(0.9953222650189527, 14);
    expect(erf(3)).toBeCloseTo(0.9999779095030014, 14);
    expect(erf(-1.5)).toBeCloseTo(-0.9661051464753108, 14);
    expect(gelu(1)).toBeCloseTo(0.8413447460685429, 12);
    expect(gelu(-3)).toBeCloseTo(-3 * 0.0013498980316301, 12); // 3·Φ(-3)
  });

  it('softmax is stable for large inputs and top-k breaks ties to the lower index', () => {
    const p = softmax([1000, 1000, 999]);
    expect(p[0]).toBeCloseTo(p[1], 7);
    expect(p[0] + p[1] + p[2]).toBeCloseTo(1, 6);
    expect(topK([0.2, 0.5, 0.5, 0.1, 0.5], 3)).toEqual([1, 2, 4]);
  });

  it('gates are renormalized over the chosen experts', () => {
    const r = routeFromProbs(new Float32Array([0.1, 0.4, 0.3, 0.2]), 2);
    expect(r.experts).toEqual([1, 2]);
    expect(r.gates[0]).toBeCloseTo(4 / 7, 6);
    expect(r.gates[1]).toBeCloseTo(3 / 7, 6);
  });
});

describe('tokenizer and chat template', () => {
  it('round-trips UTF-8 and keeps specials out of the text', () => {
    const text = 'héllo, 世界 🚀';
    expect(decodeTokens(encodeText(text))).toBe(text);
    expect(decodeTokens([THINK, ...encodeText('a'), BOS])).toBe('a');
    expect(showTokens([THINK, 104, 105])).toBe('<think>hi');
  });

  it('renders <bos> then "role: content\\n" per message', () => {
    const r = renderChat(
      [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' },
      ],
      128,
    );
    expect(r.tokens[0]).toBe(BOS);
    expect(decodeTokens(r.tokens)).toBe('system: be brief\nuser: hi\n');
    expect(r.droppedMessages).toBe(0);
  });

  it('cuts from the front at a message boundary, then inside the newest message', () => {
    const msgs = [
      { role: 'user', content: 'a'.repeat(50) },
      { role: 'assistant', content: 'b'.repeat(50) },
      { role: 'user', content: 'c'.repeat(20) },
    ];
    const r = renderChat(msgs, 90);
    expect(r.droppedMessages).toBe(1);
    expect(r.truncatedBytes).toBe(0);
    expect(decodeTokens(r.tokens)).toBe(`assistant: ${'b'.repeat(50)}\nuser: ${'c'.repeat(20)}\n`);
    const s = renderChat([{ role: 'user', content: 'x'.repeat(200) }], 32);
    expect(s.tokens).toHaveLength(32);
    expect(s.tokens[0]).toBe(BOS);
    expect(decodeTokens(s.tokens)).toBe('x'.repeat(30) + '\n');
  });
});

describe('short-term memory', () => {
  it('reads zero while empty and exactly the value with one slot', () => {
    const st = model.initialState();
    const h = new Float32Array(model.H).map((_, i) => Math.sin(i));
    expect(Array.from(model.stmRead(st.stm, h))).toEqual(new Array(model.S).fill(0));
    const v = new Float32Array(model.S).map((_, i) => i / 10);
    ReferenceModel.stmWrite(st.stm, new Float32Array(model.S).fill(1), v);
    const r = model.stmRead(st.stm, h);
    for (let i = 0; i < model.S; i++) expect(r[i]).toBeCloseTo(v[i], 6);
  });

  it('is a ring: past capacity the oldest slot is overwritten', () => {
    const st = model.initialState();
    const slots = tiny.memory.stm_slots;
    for (let j = 0; j < slots + 3; j++)
      ReferenceModel.stmWrite(st.stm, new Float32Array(model.S).fill(j), new Float32Array(model.S).fill(-j));
    expect(st.stm.count).toBe(slots);
    expect(st.stm.next).toBe(3);
    expect(st.stm.keys[0]).toBe(slots); // slot 0 now holds write #slots
    expect(st.stm.keys[3 * model.S]).toBe(3); // slot 3 still holds write #3
  });

  it('attends: a key aligned with the query dominates the read', () => {
    const st = model.initialState();
    const h = new Float32Array(model.H).map((_, i) => Math.cos(i));
    const wrq = model.params.get('memory.w_rq')!.data;
    const q = new Float32Array(model.S).map((_, s) => {
      let a = 0;
      for (let k = 0; k < model.H; k++) a += wrq[s * model.H + k] * h[k];
      return a;
    });
    ReferenceModel.stmWrite(
      st.stm,
      q.map((x) => x * 20),
      new Float32Array(model.S).fill(1),
    );
    ReferenceModel.stmWrite(
      st.stm,
      q.map((x) => -x * 20),
      new Float32Array(model.S).fill(-1),
    );
    expect(model.stmRead(st.stm, h)[0]).toBeGreaterThan(0.99);
  });
});

describe('controller, gate and memory code', () => {
  it('LSTM state stays bounded and moves with the token', () => {
    const st = model.initialState();
    const a = model.controller(st, 65);
    const b = model.controller(st, 66);
    expect(a.h).not.toEqual(b.h);
    for (const x of a.h) expect(Math.abs(x)).toBeLessThan(1);
  });

  it('rejects a token outside the vocabulary', () => {
    expect(() => model.controller(model.initialState(), 260)).toThrow(
      /token: expected an integer in \[0, 260\), found 260/,
    );
  });

  it('the sparse code keeps at most ltm_active positive atoms, largest first', () => {
    const h = new Float32Array(model.H).map((_, i) => Math.sin(3 * i));
    const code = model.ltmCode(h);
    expect(code.atoms.length).toBeLessThanOrEqual(tiny.memory.ltm_active);
    expect(code.atoms.length).toBeGreaterThan(0);
    for (let i = 1; i < code.weights.length; i++)
      expect(code.weights[i]).toBeLessThanOrEqual(code.weights[i - 1]);
    for (const w of code.weights) expect(w).toBeGreaterThan(0);
  });
});

describe('experts', () => {
  const prompt = renderChat([{ role: 'user', content: 'What is 12+7?' }], 128).tokens;
  const h = new Float32Array(model.H).map((_, i) => 0.3 * Math.sin(i + 1));

  it('prefill caches K and V of every layer for the prompt', () => {
    const c = model.expertPrefill(1, prompt);
    expect(c.length).toBe(prompt.length);
    expect(c.k).toHaveLength(tiny.experts.layers);
    expect(c.k[0]).toHaveLength(prompt.length * tiny.experts.width);
  });

  it('the prompt never attends to the query: the cache is independent of later prompt tokens', () => {
    // Bidirectional attention inside the prompt means a longer prompt changes earlier K/V ...
    const short = model.expertPrefill(0, prompt.slice(0, 5));
    const long = model.expertPrefill(0, prompt);
    expect(long.k[1].subarray(0, 5 * model.D)).not.toEqual(short.k[1]);
    // ... but the step never feeds back into the cache, so stepping twice gives the same answer.
    const y1 = model.expertStep(0, h, long);
    const y2 = model.expertStep(
      0,
      h.map((x) => -x),
      long,
    );
    expect(model.expertStep(0, h, long)).toEqual(y1);
    expect(y2).not.toEqual(y1);
  });

  it('the step output depends on the prompt', () => {
    const other = model.expertPrefill(
      0,
      renderChat([{ role: 'user', content: 'What is 12+8?' }], 128).tokens,
    );
    expect(model.expertStep(0, h, other)).not.toEqual(model.expertStep(0, h, model.expertPrefill(0, prompt)));
  });

  it('rejects prompts that are empty, too long or hold bad ids', () => {
    expect(() => model.expertPrefill(0, [])).toThrow(/prompt length: expected 1\.\.128, found 0/);
    expect(() => model.expertPrefill(0, new Array(129).fill(1))).toThrow(/found 129/);
    expect(() => model.expertPrefill(0, [BOS, 999])).toThrow(
      /prompt\[1\]: expected a token id in \[0, 260\), found 999/,
    );
  });

  it('a model holding only some experts says which it has', () => {
    const p = initRandom(tiny, 11, (s) => s.tier !== 'edge' && (s.expert === undefined || s.expert === 2));
    const shard = new ReferenceModel(tiny, p, 'experts');
    expect(shard.hasExpert(2)).toBe(true);
    expect(() => shard.expertPrefill(1, prompt)).toThrow(
      /expert 1: not loaded; this model holds experts \[2\]/,
    );
  });
});

describe('activation scale at r1-seed size', () => {
  it('neither vanishes nor explodes over 8 layers and 60 steps', () => {
    const c = preset('r1-seed');
    const m = new ReferenceModel(c, initRandom(c, 5));
    const prompt = renderChat([{ role: 'user', content: 'Is 17 prime?' }], c.experts.max_prompt).tokens;
    const caches = new Map<number, ReturnType<ReferenceModel['expertPrefill']>>();
    const layerRms: number[] = [];
    let st = m.initialState();
    let y = THINK;
    const hs: number[] = [];
    const ms: number[] = [];
    const logitStd: number[] = [];
    for (let t = 0; t < 60; t++) {
      const { h, c: cell } = m.controller(st, y);
      const r = m.route(h);
      const mix = new Float32Array(m.H);
      r.experts.forEach((e, i) => {
        if (!caches.has(e))
          caches.set(
            e,
            m.expertPrefill(e, prompt, (_, x) => layerRms.push(rms(x))),
          );
        const out = m.expertStep(e, h, caches.get(e)!, (_, z) => layerRms.push(rms(z)));
        for (let j = 0; j < m.H; j++) mix[j] += r.gates[i] * out[j];
      });
      const out = m.head(h, mix);
      ReferenceModel.stmWrite(st.stm, out.stmKey, out.stmValue);
      st = { h, c: cell, m: mix, stm: st.stm };
      hs.push(rms(h));
      ms.push(rms(mix));
      logitStd.push(rms(out.logits));
      y = out.logits.indexOf(Math.max(...out.logits));
    }
    const range = (xs: number[]) => [Math.min(...xs), Math.max(...xs)];
    const [hLo, hHi] = range(hs.slice(5));
    expect(hLo).toBeGreaterThan(0.02);
    expect(hHi).toBeLessThan(1);
    const [mLo, mHi] = range(ms);
    expect(mLo).toBeGreaterThan(0.1);
    expect(mHi).toBeLessThan(10);
    const [lLo, lHi] = range(layerRms);
    expect(lLo).toBeGreaterThan(0.1);
    expect(lHi).toBeLessThan(20);
    const [gLo, gHi] = range(logitStd);
    expect(gLo).toBeGreaterThan(0.1);
    expect(gHi).toBeLessThan(20);
  }, 120_000);
});
