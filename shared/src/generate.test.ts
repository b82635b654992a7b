import { describe, expect, it } from 'vitest';
import { preset, type ModelConfig } from './config.ts';
import { promptDigest } from './digest.ts';
import {
  DEFAULT_GENERATE_OPTIONS,
  generate,
  generationStep,
  startGeneration,
  type GenerateOptions,
  type StepContext,
} from './generate.ts';
import { initRandom } from './init.ts';
import type { EdgeComputeBackend, ExpertBackend, LtmEntry, LtmStore, SparseCode } from './interfaces.ts';
import { ReferenceEdge, ReferenceExperts, ReferenceModel } from './reference.ts';
import { Rng } from './random.ts';
import { argmax, sampleToken } from './sampling.ts';
import { encodeText, END_THINK, EOS } from './tokenizer.ts';

const tiny = preset('tiny');
const model = new ReferenceModel(tiny, initRandom(tiny, 21));

/**
 * The loop's control logic under test, with the numerics taken from the reference except the head,
 * whose logits put all mass on a scripted token sequence.
 */
class ScriptedEdge implements EdgeComputeBackend {
  readonly name = 'scripted';
  private i = 0;
  private readonly inner = new ReferenceEdge(model);
  constructor(private readonly script: number[]) {}
  controller = this.inner.controller.bind(this.inner);
  ltmCode = this.inner.ltmCode.bind(this.inner);
  async head(h: Float32Array, m: Float32Array) {
    const out = await this.inner.head(h, m);
    const logits = new Float32Array(tiny.vocab).fill(-10);
    logits[this.script[Math.min(this.i++, this.script.length - 1)]] = 10;
    return { ...out, logits };
  }
}

async function ctxFor(
  edge: EdgeComputeBackend,
  options: Partial<GenerateOptions> = {},
  extra: Partial<StepContext> = {},
  config: ModelConfig = tiny,
): Promise<StepContext> {
  const tokens = [256, ...encodeText('user: hi\n')];
  return {
    config,
    edge,
    experts: new ReferenceExperts(model),
    prompt: { tokens, digest: await promptDigest(tokens) },
    sessionId: 's1',
    requestId: 'r1',
    options: { ...DEFAULT_GENERATE_OPTIONS, ...options },
    ...extra,
  };
}

const bytes = (s: string) => encodeText(s);

describe('generation loop', () => {
  it('thinks, closes </think>, answers and stops at <eos>', async () => {
    const edge = new ScriptedEdge([...bytes('ab'), END_THINK, ...bytes('42'), EOS]);
    const r = await generate(await ctxFor(edge), model.initialState());
    expect(r.reasoningText).toBe('ab');
    expect(r.answerText).toBe('42');
    expect(r.finish).toBe('stop');
    expect(r.steps.map((s) => s.phase)).toEqual(['think', 'think', 'think', 'answer', 'answer', 'answer']);
    expect(r.steps.every((s) => !s.forced)).toBe(true);
  });

  it('forces </think> after max_think_steps reasoning tokens', async () => {
    const edge = new ScriptedEdge([...bytes('x'.repeat(30))]);
    const cfg = { ...tiny, max_think_steps: 4 };
    const r = await generate(await ctxFor(edge, { maxTokens: 8 }, {}, cfg), model.initialState());
    expect(r.reasoning).toHaveLength(4);
    expect(r.steps[4]).toMatchObject({ token: END_THINK, forced: true, phase: 'think' });
    expect(r.answerText).toBe('xxx');
    expect(r.finish).toBe('length');
    expect(r.steps).toHaveLength(8);
  });

  it('stops at a stop sequence and cuts the answer before it', async () => {
    const edge = new ScriptedEdge([END_THINK, ...bytes('one. two. three.')]);
    const r = await generate(await ctxFor(edge, { stop: ['two', 'zzz'] }), model.initialState());
    expect(r.answerText).toBe('one. ');
    expect(r.finish).toBe('stop');
  });

  it('a failing expert call leaves the previous state untouched', async () => {
    const failing: ExpertBackend = {
      name: 'down',
      runExperts: async () => {
        throw new Error('expert tier unavailable');
      },
    };
    const ctx = await ctxFor(new ReferenceEdge(model), {}, { experts: failing });
    const s0 = startGeneration(model.initialState(), 1);
    const snapshot = structuredClone(s0);
    await expect(generationStep(ctx, s0)).rejects.toThrow(/expert tier unavailable/);
    expect(s0).toEqual(snapshot);
  });

  it('steps do not mutate their input state, so a step can be retried', async () => {
    const ctx = await ctxFor(new ReferenceEdge(model));
    const s0 = startGeneration(model.initialState(), 1);
    const snapshot = structuredClone(s0);
    const a = await generationStep(ctx, s0);
    expect(s0).toEqual(snapshot);
    const b = await generationStep(ctx, s0);
    expect(b.record).toEqual(a.record);
    expect(b.state).toEqual(a.state);
  });

  it('resuming from a persisted (structured-cloned) state gives the same continuation', async () => {
    const opts = { temperature: 0.9, topP: 0.9, seed: 5, maxTokens: 12 };
    const full = await generate(await ctxFor(new ReferenceEdge(model), opts), model.initialState());
    const ctx = await ctxFor(new ReferenceEdge(model), opts);
    let s = startGeneration(model.initialState(), 5);
    for (let i = 0; i < 5; i++) s = (await generationStep(ctx, s)).state;
    s = structuredClone(s);
    const rest = [];
    while (s.phase !== 'done') {
      const r = await generationStep(ctx, s);
      rest.push(r.record);
      s = r.state;
    }
    expect(rest).toEqual(full.steps.slice(5));
  });

  it('the same seed samples the same tokens; another seed does not', async () => {
    const run = async (seed: number) =>
      (
        await generate(
          await ctxFor(new ReferenceEdge(model), { temperature: 1, seed, maxTokens: 16 }),
          model.initialState(),
        )
      ).steps.map((s) => s.token);
    expect(await run(3)).toEqual(await run(3));
    expect(await run(3)).not.toEqual(await run(4));
  });

  it('recalls long-term memory into the STM after step 1 only', async () => {
    const queries: SparseCode[] = [];
    const entry: LtmEntry = {
      key: new Float32Array(tiny.memory.dim).fill(0.5),
      value: new Float32Array(tiny.memory.dim).fill(2),
      snippet: 'x',
    };
    const ltm: LtmStore = {
      query: async (code, n) => {
        queries.push(code);
        return [entry, entry].slice(0, n);
      },
      write: async () => {},
    };
    const ctx = await ctxFor(new ReferenceEdge(model), { ltmTopN: 2, maxTokens: 3 }, { ltm });
    let s = startGeneration(model.initialState(), 0);
    s = (await generationStep(ctx, s)).state;
    expect(queries).toHaveLength(1);
    expect(s.ctrl.stm.count).toBe(3); // step 1's own write + 2 recalled
    expect(Array.from(s.ctrl.stm.values.subarray(tiny.memory.dim, 2 * tiny.memory.dim))).toEqual(
      new Array(tiny.memory.dim).fill(2),
    );
    s = (await generationStep(ctx, s)).state;
    expect(queries).toHaveLength(1);
    expect(s.ctrl.stm.count).toBe(4);
  });

  it('runs the reference end to end with prompt caching: one prefill per routed expert', async () => {
    const experts = new ReferenceExperts(model);
    const r = await generate(
      await ctxFor(new ReferenceEdge(model), { maxTokens: 20 }, { experts }),
      model.initialState(),
    );
    const used = new Set(r.steps.flatMap((s) => s.experts));
    expect(experts.prefills).toBe(used.size);
    for (const s of r.steps) {
      expect(s.experts).toHaveLength(tiny.experts.top_k);
      expect(s.gates.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    }
  });
});

describe('sampling', () => {
  const logits = new Float32Array([1, 3, 3, 0, -2]);

  it('greedy takes the argmax, ties to the lower id', () => {
    expect(argmax(logits)).toBe(1);
    expect(sampleToken(logits, { temperature: 0, topP: 1 }, new Rng(1))).toBe(1);
  });

  it('top-p keeps only the nucleus', () => {
    const rng = new Rng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) seen.add(sampleToken(logits, { temperature: 1, topP: 0.8 }, rng));
    expect([...seen].sort()).toEqual([1, 2]);
  });

  it('temperature sampling follows the softmax distribution', () => {
    const rng = new Rng(11);
    const counts = new Array(5).fill(0);
    const n = 20_000;
    for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature: 1, topP: 1 }, rng)]++;
    const z = [...logits].reduce((a, x) => a + Math.exp(x), 0);
    counts.forEach((c, i) => expect(c / n).toBeCloseTo(Math.exp(logits[i]) / z, 1));
  });
});
