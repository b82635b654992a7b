import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type ModelConfig } from '@switchyard/shared';
import { CheckpointError, decodeCheckpoint, encodeCheckpoint } from './checkpoint.ts';
import { parseMix, trainingBatch, type RelposTrace } from './curriculum.ts';
import { balanceLoss } from './losses.ts';
import type { Forward } from './model-tf.ts';
import { DEFAULT_TRAIN_OPTIONS, type TrainOptions } from './options.ts';
import { initTf, tf } from './tf.ts';
import {
  freshState,
  genOptionsFor,
  learningRate,
  loadTrainState,
  saveTrainState,
  supervisedBatch,
  supervisedStep,
  type TrainState,
} from './train.ts';

beforeAll(() => initTf(), 60_000);

// Smaller than the tiny preset: these tests run whole training steps.
const TINY: ModelConfig = parseConfig({
  arch: 'rru-moe',
  version: 1,
  vocab: 260,
  controller: { embed: 16, hidden: 32 },
  memory: { dim: 8, stm_slots: 8, ltm_atoms: 32, ltm_active: 4 },
  experts: { count: 4, top_k: 2, width: 16, layers: 2, heads: 2, ffn: 32, max_prompt: 64 },
  max_think_steps: 15,
});
const OPTS: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, batch: 4, steps: 100, warmup: 1, lr: 1e-2 };
const gen = genOptionsFor(TINY, 0.2);

function step(st: TrainState, i: number) {
  const s = supervisedStep(
    st.model,
    st.adam,
    supervisedBatch(OPTS.seed, i, OPTS.batch, 1, gen),
    learningRate(i, OPTS),
    0.05,
  );
  st.meta.step = i + 1;
  return s;
}

describe('supervised training', () => {
  it('lowers the loss on a fixed batch within a few steps', () => {
    const st = freshState(TINY, OPTS);
    const batch = supervisedBatch(1, 0, 4, 1, gen);
    const losses = Array.from({ length: 5 }, () => supervisedStep(st.model, st.adam, batch, 1e-2, 0.05).ce);
    expect(losses[4]).toBeLessThan(losses[0] * 0.8);
    st.model.dispose();
  });

  it('starts from given weights (--init) instead of random ones, and trains on from them', () => {
    const trained = freshState(TINY, OPTS);
    step(trained, 0);
    const params = trained.model.toParamMap();
    const st = freshState(TINY, { ...OPTS, seed: 99 }, params);
    const again = st.model.toParamMap();
    for (const [n, t] of params) expect(Array.from(again.get(n)!.data), n).toEqual(Array.from(t.data));
    const rnd = freshState(TINY, { ...OPTS, seed: 99 });
    const random = rnd.model.toParamMap();
    expect(Array.from(random.get('gate.w')!.data)).not.toEqual(Array.from(params.get('gate.w')!.data));
    const before = st.model.hostVars();
    step(st, 1);
    const moved = [...st.model.hostVars()].filter(
      ([n, t]) => !t.data.every((x, i) => x === before.get(n)!.data[i]),
    );
    expect(moved.length).toBeGreaterThan(0);
    for (const s of [trained, st, rnd]) s.model.dispose();
  });

  it('resumes from a checkpoint exactly where an uninterrupted run would be', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-train-'));
    const straight = freshState(TINY, OPTS);
    for (let i = 0; i < 2; i++) step(straight, i);

    const first = freshState(TINY, OPTS);
    step(first, 0);
    saveTrainState(join(dir, 'ck'), first);
    const resumed = loadTrainState(join(dir, 'ck'));
    expect(resumed.meta.step).toBe(1);
    expect(resumed.adam.t).toBe(1);
    step(resumed, 1);

    const a = straight.model.hostVars();
    const b = resumed.model.hostVars();
    for (const [n, t] of a) expect(Array.from(b.get(n)!.data), n).toEqual(Array.from(t.data));
    const [ma, mb] = [straight.adam.state(), resumed.adam.state()];
    for (const [n, t] of ma) expect(Array.from(mb.get(n)!.data), n).toEqual(Array.from(t.data));
    for (const st of [straight, first, resumed]) st.model.dispose();
  });

  it('balances the gate: 1 for uniform routing, E when one expert takes every slot', () => {
    const E = 4;
    const fake = (probs: number[][], experts: number[][]): Forward =>
      ({
        probs: tf.tensor2d(probs),
        experts: experts.map((e) => Int32Array.from(e)),
        B: 2,
      }) as unknown as Forward;
    const uniform = fake(
      [
        [0.25, 0.25, 0.25, 0.25],
        [0.25, 0.25, 0.25, 0.25],
      ],
      [[0, 1, 2, 3]],
    );
    const u = balanceLoss(uniform, [1, 1], E, 2);
    expect(u.loss.dataSync()[0]).toBeCloseTo(1, 5);
    expect(u.routed).toEqual([1, 1, 1, 1]);
    const collapsed = fake(
      [
        [1, 0, 0, 0],
        [1, 0, 0, 0],
      ],
      [[0, 0, 0, 0]],
    );
    expect(balanceLoss(collapsed, [1, 1], E, 2).loss.dataSync()[0]).toBeCloseTo(E, 5);
    // Padding steps count for nothing.
    expect(balanceLoss(collapsed, [1, 0], E, 2).routed).toEqual([2, 0, 0, 0]);
  });

  it('keeps the relpos trace format in the checkpoint, and its training data follows it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-train-'));
    const st = freshState(TINY, { ...OPTS, relposTrace: 'roles' });
    saveTrainState(join(dir, 'ck'), st);
    const back = loadTrainState(join(dir, 'ck'));
    const o = back.meta.options;
    expect(o.relposTrace).toBe('roles');
    const relposOnly = parseMix('add=0,sub=0,mul=0,bool=0,syllogism=0,compare=0,grid=0');
    const traces = (trace?: RelposTrace) =>
      trainingBatch(o.seed, 0, 16, 3, genOptionsFor(TINY, 0, relposOnly, trace)).map((e) => e.trace);
    for (const t of traces(o.relposTrace)) expect(t).toMatch(/^[A-Z]([<>][LRUD]{2}[A-Z])+$/);
    for (const t of traces('walk')) expect(t).toMatch(/^[A-Z]([LRUD][A-Z])+$/);
    expect(traces()).toEqual(traces('roles')); // the curriculum's default
    // A checkpoint that names no format predates `roles` as the default: it resumes on `walk`.
    const old = freshState(TINY, { ...OPTS, relposTrace: undefined });
    saveTrainState(join(dir, 'old'), old);
    const oldBack = loadTrainState(join(dir, 'old'));
    expect(oldBack.meta.options.relposTrace).toBe('walk');
    // A new run records the default explicitly.
    const fresh = freshState(TINY, OPTS);
    expect(fresh.meta.options.relposTrace).toBe('roles');
    for (const s of [st, back, old, oldBack, fresh]) s.model.dispose();
  });

  it('orders data by (seed, step) and buckets each pool of batches by prompt length', () => {
    expect(supervisedBatch(3, 5, 8, 3, gen)).toEqual(supervisedBatch(3, 5, 8, 3, gen));
    const pool = trainingBatch(3, 1, 32, 3, gen)
      .map((e) => e.key)
      .sort();
    const batches = [4, 5, 6, 7].map((i) => supervisedBatch(3, i, 8, 3, gen));
    expect(
      batches
        .flat()
        .map((e) => e.key)
        .sort(),
    ).toEqual(pool);
    const spans = batches
      .map((b) => b.map((e) => e.prompt.length))
      .map((l) => [Math.min(...l), Math.max(...l)]);
    spans.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][1]);
  });

  it('warms the learning rate up, then decays it to a tenth', () => {
    const o = { lr: 1, warmup: 10, steps: 110 };
    expect(learningRate(0, o)).toBeCloseTo(0.1);
    expect(learningRate(9, o)).toBeCloseTo(1);
    expect(learningRate(60, o)).toBeCloseTo(0.55);
    expect(learningRate(110, o)).toBeCloseTo(0.1);
  });
});

describe('checkpoint files', () => {
  it('round-trip tensors and metadata, and refuse truncated files', () => {
    const tensors = new Map([
      ['a', { shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) }],
      ['b', { shape: [3], data: Float32Array.from([-1, 0.5, 7]) }],
    ]);
    const bytes = encodeCheckpoint({ meta: { step: 12, name: 'x' }, tensors });
    const back = decodeCheckpoint<{ step: number }>(bytes);
    expect(back.meta.step).toBe(12);
    expect(back.tensors).toEqual(tensors);
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 4))).toThrow(CheckpointError);
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 4))).toThrow(
      /expected \d+ bytes for 2 tensors/,
    );
  });
});
