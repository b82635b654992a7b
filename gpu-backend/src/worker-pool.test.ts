import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { readWeights, ReferenceModel, toHeadsLayout } from '@switchyard/shared';
import { StepBatcher } from './batcher.ts';
import type { ComputeMode } from './config.ts';
import { InternalError } from './errors.ts';
import type { PrefillResult, PromptKv, StatelessResult, StepResult } from './jobs.ts';
import { planStepGroups, stepGroupCost } from './step-batch.ts';
import { WorkerPool } from './worker-pool.ts';

const bytes = readFileSync(new URL('../../shared/golden/tiny-int8.safetensors', import.meta.url));
const shared = new Uint8Array(new SharedArrayBuffer(bytes.length));
shared.set(bytes);
const file = readWeights(shared);
const model = new ReferenceModel(file.config, file.params());
const H = file.config.controller.hidden;
// See gpu-backend/test/helpers.ts: float32 graphs against the float64-accumulating reference.
const TOL = 1e-4;

const pools: WorkerPool[] = [];
afterAll(async () => {
  for (const p of pools) await p.close();
});

async function pool(compute: ComputeMode): Promise<WorkerPool> {
  const p = await WorkerPool.start({
    size: 1,
    weights: shared,
    experts: [1, 3],
    provider: 'auto',
    threads: 1,
    compute,
  });
  pools.push(p);
  return p;
}

/** Prefills of `expert` for the prompts, in one batched job. */
async function prefill(p: WorkerPool, expert: number, ...prompts: number[][]): Promise<PromptKv[]> {
  const { result } = await p.run({
    kind: 'prefill',
    expert,
    prompts: prompts.map((t) => Int32Array.from(t)),
  });
  return (result as PrefillResult).caches;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length; i++)
    m = Math.max(m, Math.abs(a[i] - b[i]) || (Number.isNaN(a[i]) ? Infinity : 0));
  return m;
};

const prompts = [[256, 10, 20], [256, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [256]];
const hs = prompts.map((_, i) => Float32Array.from({ length: H }, (_, j) => Math.sin(i * 31 + j)));

describe.each<ComputeMode>(['f32', 'int8'])('WorkerPool with %s weights', (compute) => {
  it('prefills prompts of different lengths in one batch, then steps them in one batch, like the reference', async () => {
    const p = await pool(compute);
    if (p.provider === 'cpu') expect(p.fallback ?? 'cpu chosen').toBeTruthy();
    const caches = await prefill(p, 3, ...prompts);
    expect(caches).toHaveLength(prompts.length);
    caches.forEach((c, i) => {
      const ref = model.expertPrefill(3, prompts[i]);
      expect(c.length).toBe(prompts[i].length);
      expect(c.k.buffer).toBeInstanceOf(SharedArrayBuffer);
      // [layers, heads, L, dh]: the step graph's cache layout, stored as the prefill returns it.
      const heads = (xs: Float32Array[]) =>
        Float32Array.from(
          xs.flatMap((x) => Array.from(toHeadsLayout(x, c.length, file.config.experts.heads))),
        );
      expect(maxDiff(c.k, heads(ref.k))).toBeLessThan(TOL);
      expect(maxDiff(c.v, heads(ref.v))).toBeLessThan(TOL);
    });
    const h = new Float32Array(prompts.length * H);
    hs.forEach((x, b) => h.set(x, b * H));
    const { result } = await p.run({ kind: 'step', expert: 3, h, rows: caches });
    expect((result as StepResult).runs).toBe(1);
    const y = (result as StepResult).y;
    prompts.forEach((t, b) => {
      const want = model.expertStep(3, hs[b], model.expertPrefill(3, t));
      expect(maxDiff(y.subarray(b * H, (b + 1) * H), want)).toBeLessThan(TOL);
    });
  });

  it('runs the stateless graph on padded prompts', async () => {
    const p = await pool(compute);
    const P = 11;
    const tokens = BigInt64Array.from(
      prompts.flatMap((t) => [...t, ...Array(P - t.length).fill(7)]),
      BigInt,
    );
    const promptLen = BigInt64Array.from(prompts, (t) => BigInt(t.length));
    const h = new Float32Array(prompts.length * H);
    hs.forEach((x, b) => h.set(x, b * H));
    const { result } = await p.run({
      kind: 'stateless',
      expert: 1,
      tokens,
      promptLen,
      h,
      batch: 3,
      width: P,
    });
    prompts.forEach((t, b) => {
      const want = model.expertStep(1, hs[b], model.expertPrefill(1, t));
      expect(maxDiff((result as StatelessResult).y.subarray(b * H, (b + 1) * H), want)).toBeLessThan(TOL);
    });
  });
});

describe('WorkerPool under a batcher', () => {
  it('runs every row when more rows are queued than one batch takes', async () => {
    // Each take() leaves rows behind and schedules again from inside the pool's dispatch loop.
    const p = await pool('f32');
    const [cache] = await prefill(p, 1, prompts[1]);
    const batcher = new StepBatcher(p, { maxBatch: 2, maxWaitMs: 0, hidden: H });
    const rows = await Promise.all(hs.concat(hs, hs).map((h) => batcher.submit(1, h, cache)));
    expect(rows).toHaveLength(9);
    expect(rows.every((r) => r.batchSize >= 1 && r.batchSize <= 2)).toBe(true);
    rows.forEach((r, i) => {
      const want = model.expertStep(1, hs[i % 3], model.expertPrefill(1, prompts[1]));
      expect(maxDiff(r.y, want)).toBeLessThan(TOL);
    });
  });
});

describe('WorkerPool step batches of very different prompt lengths', () => {
  it('runs them as several groups and still gives every row its own result, in order', async () => {
    const p = await pool('f32');
    // Three one-token prompts and one of 120 tokens: padding the short ones to 120 would cost more than a
    // second run (planStepGroups), so the worker splits the batch.
    const long = [256, ...Array.from({ length: 119 }, (_, i) => (i * 37) % 256)];
    const batch = [[256], long, [256], [256]];
    const plan = planStepGroups(
      batch.map((t) => t.length),
      stepGroupCost(file.config.experts),
    );
    expect(plan).toEqual([[0, 2, 3], [1]]);
    const caches = await Promise.all(batch.map(async (t) => (await prefill(p, 3, t))[0]));
    const xs = batch.map((_, i) => Float32Array.from({ length: H }, (_, j) => Math.cos(i * 7 + j)));
    const h = new Float32Array(batch.length * H);
    xs.forEach((x, b) => h.set(x, b * H));
    const { result } = await p.run({ kind: 'step', expert: 3, h, rows: caches });
    expect((result as StepResult).runs).toBe(2);
    const y = (result as StepResult).y;
    batch.forEach((t, b) => {
      const want = model.expertStep(3, xs[b], model.expertPrefill(3, t));
      expect(maxDiff(y.subarray(b * H, (b + 1) * H), want), `row ${b}`).toBeLessThan(TOL);
    });
  });
});

describe('WorkerPool failures', () => {
  it('fails a job the worker cannot run with InternalError, and keeps serving', async () => {
    const p = await pool('f32');
    const err = await prefill(p, 0, [1]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InternalError);
    expect((err as Error).message).toMatch(/expert 0: not loaded in this worker; it holds \[1,3\]/);
    const empty = await prefill(p, 1, [256], []).catch((e: unknown) => e);
    expect((empty as Error).message).toMatch(
      /prefill: expected one or more prompts of at least one token, found an empty prompt at 1/,
    );
    const [ok] = await prefill(p, 1, [256]);
    expect(ok.length).toBe(1);
  });

  it('refuses weights outside shared memory', async () => {
    await expect(
      WorkerPool.start({
        size: 1,
        weights: new Uint8Array(bytes),
        experts: [1],
        provider: 'cpu',
        threads: 1,
        compute: 'f32',
      }),
    ).rejects.toThrow(/expected the weights in a SharedArrayBuffer/);
  });
});
