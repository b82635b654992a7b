import { beforeAll, describe, expect, it } from 'vitest';
import {
  initRandom,
  parseConfig,
  preset,
  ReferenceModel,
  Rng,
  THINK,
  type ModelConfig,
  type ParamMap,
} from '@switchyard/shared';
import { evalExamples, ReferenceEngine, TfEngine } from './eval.ts';
import { fromTrainingLayout, TfModel, toTrainingLayout } from './model-tf.ts';
import { promptTokens } from './sequences.ts';
import { initTf, tf } from './tf.ts';

beforeAll(() => initTf(), 60_000);

// The tiny preset (4 experts, top 2: the dense path) and a 6-expert variant (the routed path), with a
// short think budget so that generations stay short.
const TINY: ModelConfig = { ...preset('tiny'), max_think_steps: 6 };
const SIX: ModelConfig = parseConfig({ ...TINY, experts: { ...TINY.experts, count: 6 } });

/** The reference's step, one example at a time: logits and routed experts for given inputs. */
function referenceRun(ref: ReferenceModel, prompt: number[], inputs: number[]) {
  const st = ref.initialState();
  const caches = new Map<number, ReturnType<ReferenceModel['expertPrefill']>>();
  const out: { logits: Float32Array; experts: number[] }[] = [];
  for (const y of inputs) {
    const { h, c } = ref.controller(st, y);
    const r = ref.route(h);
    const m = new Float32Array(ref.H);
    r.experts.forEach((e, i) => {
      if (!caches.has(e)) caches.set(e, ref.expertPrefill(e, prompt));
      const ye = ref.expertStep(e, h, caches.get(e)!);
      for (let j = 0; j < ref.H; j++) m[j] += r.gates[i] * ye[j];
    });
    const head = ref.head(h, m);
    ReferenceModel.stmWrite(st.stm, head.stmKey, head.stmValue);
    [st.h, st.c, st.m] = [h, c, m];
    out.push({ logits: head.logits, experts: r.experts });
  }
  return out;
}

describe('TfModel', () => {
  const prompts = ['12+34', 'all A are B, all B are C; all A are C?', 'at 2,3: up 2'].map((p) =>
    promptTokens(p, 128),
  );
  // More steps than the STM has slots (16), so the ring's overwrite is exercised too.
  const inputs = [
    [THINK, 50, 52, 54, 49, 51, 52, 259, 52, 54],
    [THINK, 65, 66, 67, 259, 121, 101, 115],
    Array.from({ length: 19 }, (_, i) => (i === 0 ? THINK : 48 + (i % 10))),
  ];

  it.each([
    ['dense experts (E ≤ 2K)', TINY, 'auto'],
    ['routed experts (E > 2K)', SIX, 'auto'],
    ['routed experts, forced', TINY, 'routed'],
  ] as const)('computes the reference forward: %s', (_, config, mode) => {
    const params = initRandom(config, 7);
    const ref = new ReferenceModel(config, params);
    const model = new TfModel(config, params, mode);
    expect(model.denseExperts).toBe(
      mode === 'auto' ? config.experts.count <= 2 * config.experts.top_k : false,
    );
    const f = tf.tidy(() => {
      const fw = model.forward(model.prepare(), prompts, inputs);
      return { logits: fw.logits.arraySync(), experts: fw.experts };
    });
    let worst = 0;
    inputs.forEach((seq, b) => {
      referenceRun(ref, prompts[b], seq).forEach((r, t) => {
        const row = f.logits[t * prompts.length + b];
        for (let i = 0; i < row.length; i++) worst = Math.max(worst, Math.abs(row[i] - r.logits[i]));
        expect(Array.from(f.experts[t].subarray(b * 2, b * 2 + 2))).toEqual(r.experts);
      });
    });
    // float32 sums in another order than the reference's float64 ones: agreement to ~1e-6 is typical.
    expect(worst).toBeLessThan(1e-4);
    model.dispose();
  });

  it('generates what the shared generation loop over the reference generates (greedy)', async () => {
    const params = initRandom(SIX, 3);
    const items = evalExamples(['add2', 'bool', 'relpos'], 2, 4);
    const a = await new ReferenceEngine(new ReferenceModel(SIX, params), 24).answer(items);
    const model = new TfModel(SIX, params);
    const b = await new TfEngine(model, 24, 4).answer(items);
    expect(b.map((x) => [x.reasoning, x.answer, x.experts])).toEqual(
      a.map((x) => [x.reasoning, x.answer, x.experts]),
    );
    model.dispose();
  });

  it('scores its own samples with the log-probabilities it sampled them at', () => {
    const params = initRandom(TINY, 5);
    const model = new TfModel(TINY, params);
    const g = model.generate(prompts, { maxTokens: 12, temperature: 1, rng: new Rng(2) });
    const inputsFed = g.tokens.map((t) => [THINK, ...t.slice(0, -1)]);
    const logp = tf.tidy(() =>
      tf.logSoftmax(model.forward(model.prepare(), prompts, inputsFed).logits).arraySync(),
    );
    g.tokens.forEach((toks, b) =>
      toks.forEach((tok, t) => expect(logp[t * prompts.length + b][tok]).toBeCloseTo(g.logProbs[b][t], 4)),
    );
    model.dispose();
  });

  it('converts to the training layout and back without changing a bit', () => {
    const params = initRandom(SIX, 9);
    const layout = toTrainingLayout(SIX, params);
    expect(layout.get('lstm.wrmh')!.shape).toEqual([SIX.memory.dim + 2 * 64, 4 * 64]);
    expect(layout.get('x.l1.wqkv')!.shape).toEqual([6, 32, 96]);
    const back: ParamMap = fromTrainingLayout(
      SIX,
      layout,
      new Map([['memory.w_code', params.get('memory.w_code')!]]),
    );
    expect([...back.keys()]).toEqual([...params.keys()]);
    for (const [n, t] of params) {
      expect(back.get(n)!.shape, n).toEqual(t.shape);
      expect(Buffer.from(back.get(n)!.data.buffer).equals(Buffer.from(t.data.buffer)), n).toBe(true);
    }
    const model = new TfModel(SIX, params);
    const again = model.toParamMap();
    for (const [n, t] of params) expect(Array.from(again.get(n)!.data), n).toEqual(Array.from(t.data));
    model.dispose();
  });
});
