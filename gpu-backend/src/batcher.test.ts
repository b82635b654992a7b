import { describe, expect, it } from 'vitest';
import { StepBatcher } from './batcher.ts';
import type { StepJob } from './jobs.ts';
import { ManualRunner } from '../test/manual-runner.ts';

const H = 3;

/** Its jobs answer y[b] = h[b] · 10 + expert. */
const stepRunner = () =>
  new ManualRunner<StepJob>((job) => ({
    kind: 'step',
    y: job.h.map((x) => x * 10 + job.expert),
    runs: 1,
    packUs: 0,
  }));

const row = (x: number) => Float32Array.from({ length: H }, (_, i) => x + i);
const cache = (length: number) => ({ k: new Float32Array(length), v: new Float32Array(length), length });
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('StepBatcher', () => {
  it('runs rows for one expert from many callers as one batch, each getting its own row back', async () => {
    const runner = stepRunner();
    const dispatched: number[] = [];
    const b = new StepBatcher(runner, {
      maxBatch: 8,
      maxWaitMs: 5,
      hidden: H,
      onDispatch: (_e, n) => dispatched.push(n),
    });
    const ps = [1, 2, 3].map((x) => b.submit(2, row(x), cache(x)));
    expect(b.queued).toBe(3);
    expect(runner.free()).toBeUndefined(); // still inside the batching window
    await tick(20);
    const job = runner.free()!;
    expect(job.rows.map((r) => r.length)).toEqual([1, 2, 3]);
    expect(Array.from(job.h)).toEqual([1, 2, 3, 2, 3, 4, 3, 4, 5]);
    runner.finish();
    const out = await Promise.all(ps);
    out.forEach((r, i) => {
      expect(Array.from(r.y)).toEqual(Array.from(row(i + 1), (x) => x * 10 + 2));
      expect(r).toMatchObject({ batchSize: 3, computeUs: 42 });
    });
    expect(dispatched).toEqual([3]);
    expect(b.queued).toBe(0);
  });

  it('keeps experts apart and cuts batches at maxBatch', async () => {
    const runner = stepRunner();
    const b = new StepBatcher(runner, { maxBatch: 2, maxWaitMs: 1000, hidden: H });
    const ps = [
      b.submit(0, row(1), cache(1)),
      b.submit(1, row(2), cache(1)),
      b.submit(0, row(3), cache(1)),
      b.submit(0, row(4), cache(1)),
    ];
    // Expert 0 reached maxBatch: ready at once, without waiting out the window.
    const first = runner.free()!;
    expect([first.expert, first.rows.length]).toEqual([0, 2]);
    runner.finish();
    // The third expert-0 row has not waited its window yet; nothing else is ready.
    expect(runner.free()).toBeUndefined();
    expect(b.queued).toBe(2);
    await Promise.all(ps.slice(0, 1));
    const y = await ps[2];
    expect(y.y[0]).toBe(30);
  });

  it('lets rows that arrive while the worker is busy join the next batch', async () => {
    const runner = stepRunner();
    const b = new StepBatcher(runner, { maxBatch: 64, maxWaitMs: 0, hidden: H });
    const first = b.submit(5, row(0), cache(1));
    expect(runner.free()!.rows).toHaveLength(1);
    const later = [1, 2, 3, 4].map((x) => b.submit(5, row(x), cache(1)));
    const second = runner.jobs.length;
    runner.finish();
    expect(runner.free()!.rows).toHaveLength(4);
    runner.finish();
    expect(second).toBe(1);
    await first;
    expect((await Promise.all(later)).map((r) => r.batchSize)).toEqual([4, 4, 4, 4]);
  });

  it('fails every row of a failed batch with its error', async () => {
    const runner = stepRunner();
    const b = new StepBatcher(runner, { maxBatch: 2, maxWaitMs: 0, hidden: H });
    const ps = [b.submit(0, row(1), cache(1)), b.submit(0, row(2), cache(1))].map((p) =>
      p.catch((e: Error) => e.message),
    );
    runner.free();
    runner.finish(new Error('ORT exploded'));
    expect(await Promise.all(ps)).toEqual(['ORT exploded', 'ORT exploded']);
    expect(() => b.submit(0, new Float32Array(H + 1), cache(1))).toThrow(
      'step row: expected h of length 3, found 4',
    );
  });
});
