import { describe, expect, it, vi } from 'vitest';
import { preset, promptDigest, type StepRequest, type StepResponse } from '@switchyard/shared';
import { StepBatcher } from './batcher.ts';
import { InvalidRequestError, OverloadedError } from './errors.ts';
import type { Job, StepJob } from './jobs.ts';
import { serverMetrics } from './metrics.ts';
import { PrefillBatcher } from './prefill-batcher.ts';
import { PromptCache } from './prompt-cache.ts';
import { AdmissionQueue, ExpertService } from './service.ts';
import type { Dispatch, JobRunner } from './worker-pool.ts';

const config = preset('tiny');
const H = config.controller.hidden;

/**
 * Runs jobs at once: a prefill yields K/V of the prompt's length, a step yields y = h · (expert + 1).
 * `failPrefill` makes prefills fail.
 */
class FakeRunner implements JobRunner {
  jobs: Job[] = [];
  failPrefill = false;
  /** While set, the worker is busy: work queues up until resume(). */
  private held?: (() => Dispatch | undefined)[];

  pause(): void {
    this.held = [];
  }

  resume(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const take of held) this.schedule(take);
  }

  schedule(take: () => Dispatch | undefined): void {
    if (this.held) return void this.held.push(take);
    queueMicrotask(() => {
      const d = take();
      if (!d) return;
      this.jobs.push(d.job);
      const job = d.job;
      if (job.kind === 'prefill') {
        if (this.failPrefill) return d.settle({ ok: false, error: new Error('prefill blew up') });
        const caches = job.prompts.map((t) => ({
          length: t.length,
          k: new Float32Array(t.length * 4),
          v: new Float32Array(t.length * 4),
        }));
        return d.settle({ ok: true, computeUs: 7, result: { kind: 'prefill', caches } });
      }
      const s = job as StepJob;
      d.settle({
        ok: true,
        computeUs: 3,
        result: { kind: 'step', y: s.h.map((x) => x * (s.expert + 1)), runs: 1, packUs: 0 },
      });
    });
  }
}

function setup(queueLimit = 100) {
  const runner = new FakeRunner();
  const admission = new AdmissionQueue(queueLimit);
  const batcher = new StepBatcher(runner, {
    maxBatch: 8,
    maxWaitMs: 0,
    hidden: H,
    onDispatch: (_e, n) => admission.release(n),
  });
  const prefills = new PrefillBatcher(runner, { maxTokens: 64 });
  const service = new ExpertService({
    config,
    served: [0, 1, 3],
    cache: new PromptCache(1 << 20),
    batcher,
    prefills,
    runner,
    admission,
    metrics: serverMetrics(),
  });
  return { runner, admission, service, prefills };
}

const tokens = [256, 5, 6, 7];
async function request(o: Partial<StepRequest> = {}): Promise<StepRequest> {
  return {
    type: 'step-request',
    sessionId: 's',
    requestId: 'r',
    step: 1,
    digest: await promptDigest(tokens),
    hDtype: 'f32',
    responseDtype: 'f32',
    perExpert: false,
    experts: [0, 3],
    gates: [0.75, 0.25],
    h: Float32Array.from({ length: H }, (_, i) => i / H),
    ...o,
  };
}

describe('ExpertService', () => {
  it('answers NEED_PROMPT without a cache, then mixes the experts once the tokens come', async () => {
    const { service, admission, runner } = setup();
    const miss = await service.step(await request());
    expect(miss.type).toBe('need-prompt');
    expect(runner.jobs).toHaveLength(0);
    const r = (await service.step(await request({ tokens }))) as StepResponse;
    const h = (await request()).h;
    r.values.forEach((v, j) => expect(v).toBeCloseTo(0.75 * h[j] + 0.25 * 4 * h[j], 6));
    expect(r.computeUs).toBe(10); // prefill 7 + step 3
    expect(admission.size).toBe(0);
    const per = (await service.step(await request({ perExpert: true }))) as StepResponse;
    expect(Array.from(per.values.subarray(H))).toEqual(Array.from(h.map((x) => x * 4)));
    expect(runner.jobs.map((j) => j.kind)).toEqual(['prefill', 'prefill', 'step', 'step', 'step', 'step']);
  });

  it('prefills once when several requests miss the same prompt at the same time', async () => {
    const { service, runner } = setup();
    await Promise.all(
      [1, 2, 3].map(async (step) => service.step(await request({ step, tokens, experts: [1], gates: [1] }))),
    );
    expect(runner.jobs.filter((j) => j.kind === 'prefill')).toHaveLength(1);
  });

  it("batches different sessions' prefills of one expert into one run", async () => {
    const { service, runner, prefills } = setup();
    runner.pause();
    const pending = Promise.all(
      ['a', 'b', 'c'].map(async (sessionId) => service.step(await request({ sessionId, tokens }))),
    );
    await vi.waitFor(() => expect(prefills.queued).toBe(6));
    runner.resume();
    const rs = await pending;
    expect(rs.every((r) => r.type === 'step-response')).toBe(true);
    const runs = runner.jobs.filter((j) => j.kind === 'prefill');
    // Experts 0 and 3, each one run for the three sessions.
    expect(runs.map((j) => [j.expert, j.prompts.length])).toEqual([
      [0, 3],
      [3, 3],
    ]);
  });

  it('refuses unserved experts and wrong digests before doing any work', async () => {
    const { service, runner } = setup();
    await expect(service.step(await request({ experts: [2, 0] }))).rejects.toThrow(
      new InvalidRequestError('expert [2] not served here: this server hosts experts [0, 1, 3]'),
    );
    await expect(service.step(await request({ tokens: [256, 5, 6, 8] }))).rejects.toThrow(
      /prompt digest mismatch/,
    );
    expect(runner.jobs).toHaveLength(0);
  });

  it('keeps the admission count exact through overload and failed prefills', async () => {
    const { service, admission, runner } = setup(3);
    // Cached prompts: without tokens a step is admitted before its first await, so both land in one tick.
    await service.step(await request({ sessionId: 'a', tokens }));
    await service.step(await request({ sessionId: 'b', tokens }));
    const [ra, rb] = [await request({ sessionId: 'a' }), await request({ sessionId: 'b' })];
    const held = service.step(ra);
    const over = service.step(rb);
    expect(admission.size).toBe(2);
    await expect(over).rejects.toBeInstanceOf(OverloadedError);
    await held;
    expect(admission.size).toBe(0);
    runner.failPrefill = true;
    await expect(service.step(await request({ sessionId: 'c', tokens }))).rejects.toThrow('prefill blew up');
    expect(admission.size).toBe(0);
  });

  it('drops a session so that its next step needs the prompt again', async () => {
    const { service } = setup();
    await service.step(await request({ tokens }));
    expect(service.drop('s')).toBe(2);
    expect((await service.step(await request())).type).toBe('need-prompt');
  });
});
