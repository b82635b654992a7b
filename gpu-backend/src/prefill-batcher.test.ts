import { describe, expect, it } from 'vitest';
import { ManualRunner } from '../test/manual-runner.ts';
import type { PrefillJob } from './jobs.ts';
import { PrefillBatcher } from './prefill-batcher.ts';

/** Its jobs answer, per prompt, k = the tokens and v = the tokens + 100. */
const prefillRunner = () =>
  new ManualRunner<PrefillJob>((job) => ({
    kind: 'prefill',
    caches: job.prompts.map((t) => ({
      length: t.length,
      k: Float32Array.from(t),
      v: Float32Array.from(t, (x) => x + 100),
    })),
  }));

const prompt = (length: number, first = 1) => Int32Array.from({ length }, (_, i) => first + i);
const sizes = (jobs: PrefillJob[]) => jobs.map((j) => [j.expert, j.prompts.map((t) => t.length)]);

describe('PrefillBatcher', () => {
  it('runs a lone prompt at once, and the prompts that arrive meanwhile as one batch', async () => {
    const runner = prefillRunner();
    const b = new PrefillBatcher(runner, { maxTokens: 100 });
    const first = b.submit(2, prompt(5));
    expect(runner.free()!.prompts).toHaveLength(1); // no waiting window
    const later = [3, 7, 4].map((n, i) => b.submit(2, prompt(n, 10 * i)));
    expect(b.queued).toBe(3);
    runner.finish();
    expect((await first).batchSize).toBe(1);
    expect(runner.free()!.prompts.map((t) => t.length)).toEqual([3, 7, 4]);
    expect(b.queued).toBe(0);
    runner.finish();
    const rows = await Promise.all(later);
    // Each caller gets its own prompt's cache back, in order.
    rows.forEach((r, i) => {
      expect(Array.from(r.cache.k)).toEqual(Array.from(prompt([3, 7, 4][i], 10 * i)));
      expect(r.cache.v[0]).toBe(10 * i + 100);
      expect([r.batchSize, r.computeUs]).toEqual([3, 42]);
    });
  });

  it('keeps experts apart and bounds a batch by prompts × the longest prompt', async () => {
    const runner = prefillRunner();
    const b = new PrefillBatcher(runner, { maxTokens: 20 });
    const ps = [
      b.submit(0, prompt(4)),
      b.submit(1, prompt(4)),
      b.submit(0, prompt(6)),
      b.submit(0, prompt(6)),
      b.submit(0, prompt(30)), // longer than the bound: alone
      b.submit(0, prompt(2)),
    ];
    while (runner.free()) runner.finish();
    await Promise.all(ps);
    expect(sizes(runner.jobs)).toEqual([
      [0, [4, 6, 6]], // a fourth prompt would make 4 × 30 padded tokens
      [1, [4]],
      [0, [30]],
      [0, [2]],
    ]);
  });

  it('fails every prompt of a failed batch, and runs the next batch', async () => {
    const runner = prefillRunner();
    const b = new PrefillBatcher(runner, { maxTokens: 100 });
    const blocker = b.submit(0, prompt(1));
    runner.free();
    const failed = [b.submit(0, prompt(2)), b.submit(0, prompt(3))];
    runner.finish();
    await blocker;
    runner.free();
    runner.finish(new Error('worker died'));
    for (const p of failed) await expect(p).rejects.toThrow('worker died');
    const next = b.submit(0, prompt(4));
    runner.free();
    runner.finish();
    expect((await next).cache.length).toBe(4);
  });

  it('refuses an empty prompt and a bound below one token', () => {
    expect(() => new PrefillBatcher(prefillRunner(), { maxTokens: 0 })).toThrow(
      'prefill batch: expected maxTokens ≥ 1, found 0',
    );
    const b = new PrefillBatcher(prefillRunner(), { maxTokens: 8 });
    expect(() => b.submit(0, new Int32Array(0))).toThrow(
      'prefill: expected a prompt of at least one token, found none',
    );
  });
});
