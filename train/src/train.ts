// Training: a supervised stage (teacher-forced cross-entropy on the think and answer tokens plus a
// load-balancing loss on the gate), then PPO on answer correctness. Checkpoints carry everything a run
// needs to continue exactly where it stopped; the data of step i depends only on (seed, i).
import { initRandom, parseConfig, Rng, type ModelConfig, type ParamMap } from '@switchyard/shared';
import type { TrainOptions } from './options.ts';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.ts';
import {
  DEFAULT_GEN_OPTIONS,
  EVAL_SET_NAMES,
  trainingBatch,
  type Example,
  type GenOptions,
  type RelposTrace,
  type Stage,
  type TaskMix,
} from './curriculum.ts';
import { balanceLoss, crossEntropy } from './losses.ts';
import { TfModel, type HostTensor } from './model-tf.ts';
import { Adam } from './optim.ts';
import { evalExamples, score, TfEngine } from './eval.ts';
import { ppoIteration } from './ppo.ts';
import { flatTargets, toSequence } from './sequences.ts';
import { tf } from './tf.ts';

export interface StepStats {
  loss: number;
  ce: number;
  balance: number;
  /** Teacher-forced: share of target tokens predicted right, and of sequences with every token right. */
  tokenAcc: number;
  seqAcc: number;
  /** Routed slots per expert in this batch (real steps only). */
  routed: number[];
  gradNorm: number;
}

// ---------------------------------------------------------------- data order

const POOL = 4;

/**
 * Batch i of a run. Examples are drawn in pools of POOL batches and each pool is cut into batches of
 * similar prompt length: prompt attention costs L² per example, and a batch pads to its longest prompt.
 */
export function supervisedBatch(
  seed: number,
  index: number,
  size: number,
  stage: Stage,
  gen: GenOptions,
): Example[] {
  const pool = Math.floor(index / POOL);
  const all = trainingBatch(seed, pool, size * POOL, stage, gen);
  const order = all.map((e, i) => [new TextEncoder().encode(e.prompt).length, i] as const);
  order.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const parts = Array.from({ length: POOL }, (_, p) =>
    order.slice(p * size, (p + 1) * size).map(([, i]) => all[i]),
  );
  // The pool's batches in a seeded order, so that short and long batches alternate.
  const rng = new Rng(seed, 0x5eed + pool);
  const perm = Array.from({ length: POOL }, (_, i) => i);
  for (let i = POOL - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  return parts[perm[index % POOL]];
}

export function stageAt(index: number, opts: Pick<TrainOptions, 'steps' | 'stage1'>): Stage {
  return index < Math.round(opts.stage1 * opts.steps) ? 1 : 3;
}

/** Linear warmup, then cosine decay to a tenth. */
export function learningRate(index: number, opts: Pick<TrainOptions, 'lr' | 'warmup' | 'steps'>): number {
  if (index < opts.warmup) return (opts.lr * (index + 1)) / opts.warmup;
  const p = Math.min(1, (index - opts.warmup) / Math.max(1, opts.steps - opts.warmup));
  return opts.lr * (0.1 + 0.45 * (1 + Math.cos(Math.PI * p)));
}

// ---------------------------------------------------------------- one supervised step

export function supervisedStep(
  model: TfModel,
  adam: Adam,
  batch: readonly Example[],
  lr: number,
  balanceWeight: number,
): StepStats {
  const { max_prompt } = model.config.experts;
  const seqs = batch.map((e) => toSequence(e, max_prompt));
  const { targets, mask } = flatTargets(seqs);
  let stats: Omit<StepStats, 'gradNorm'> | undefined;
  const names = [...model.vars.keys()];
  const { value, grads } = tf.variableGrads(() => {
    const p = model.prepare();
    const f = model.forward(
      p,
      seqs.map((s) => s.prompt),
      seqs.map((s) => s.inputs),
    );
    const ce = crossEntropy(f.logits, targets, mask, f.B);
    const bal = balanceLoss(f, mask, model.config.experts.count, model.config.experts.top_k);
    const loss = tf.add(ce.loss, tf.mul(bal.loss, balanceWeight)) as tf.Scalar;
    stats = {
      loss: 0,
      ce: ce.loss.dataSync()[0],
      balance: bal.loss.dataSync()[0],
      tokenAcc: ce.tokenAcc,
      seqAcc: ce.seqAcc,
      routed: bal.routed,
    };
    return loss;
  }, [...model.vars.values()]);
  const byName = new Map<string, tf.Tensor>();
  for (const n of names) {
    const g = grads[model.vars.get(n)!.name];
    if (g) byName.set(n, g);
  }
  const gradNorm = adam.apply(model.vars, byName, lr);
  const loss = value.dataSync()[0];
  value.dispose();
  for (const g of Object.values(grads)) g.dispose();
  return { ...stats!, loss, gradNorm };
}

// ---------------------------------------------------------------- checkpoints

export interface CheckpointMeta {
  config: ModelConfig;
  options: TrainOptions;
  phase: 'supervised' | 'ppo' | 'done';
  /** Next supervised step / PPO iteration to run. */
  step: number;
  ppoStep: number;
  adamT: number;
  ppoAdamT: number;
  /** Wall seconds spent so far, over all runs. */
  seconds: number;
  history: HistoryEntry[];
}

export interface HistoryEntry {
  phase: 'supervised' | 'ppo' | 'eval';
  step: number;
  seconds: number;
  [metric: string]: number | string | number[] | Record<string, number>;
}

export interface TrainState {
  model: TfModel;
  adam: Adam;
  ppoAdam: Adam;
  /** The PPO value head (training only): [2H, 1] and [1]. */
  value: Map<string, tf.Variable>;
  meta: CheckpointMeta;
}

/** A new run: random weights for the seed, or `init` (a trained model's, to train it further). */
export function freshState(config: ModelConfig, options: TrainOptions, init?: ParamMap): TrainState {
  const model = new TfModel(config, init ?? initRandom(config, options.seed));
  return {
    model,
    adam: new Adam(),
    ppoAdam: new Adam(),
    value: newValueHead(config, options.seed),
    meta: {
      config,
      options,
      phase: 'supervised',
      step: 0,
      ppoStep: 0,
      adamT: 0,
      ppoAdamT: 0,
      seconds: 0,
      history: [],
    },
  };
}

let nextValueHead = 0;

export function newValueHead(config: ModelConfig, seed: number): Map<string, tf.Variable> {
  const H = config.controller.hidden;
  const rng = new Rng(seed, 0xa1);
  const w = Float32Array.from({ length: 2 * H }, () => rng.normal() * 0.01);
  const id = nextValueHead++;
  return new Map<string, tf.Variable>([
    ['value.w', tf.variable(tf.tensor2d(w, [2 * H, 1]), true, `value${id}/w`)],
    ['value.b', tf.variable(tf.tensor1d([0]), true, `value${id}/b`)],
  ]);
}

export function saveTrainState(path: string, st: TrainState): void {
  const tensors = new Map<string, HostTensor>();
  for (const [n, t] of st.model.hostVars()) tensors.set(`var/${n}`, t);
  const w = st.model.fixed.get('memory.w_code')!;
  tensors.set('fixed/memory.w_code', { shape: w.shape, data: w.data });
  for (const [n, v] of st.value)
    tensors.set(`var/${n}`, { shape: [...v.shape], data: v.dataSync() as Float32Array });
  for (const [n, t] of st.adam.state()) tensors.set(`adam/${n}`, t);
  for (const [n, t] of st.ppoAdam.state()) tensors.set(`ppo-adam/${n}`, t);
  saveCheckpoint(path, { meta: { ...st.meta, adamT: st.adam.t, ppoAdamT: st.ppoAdam.t }, tensors });
}

export function loadTrainState(path: string): TrainState {
  const ck = loadCheckpoint<CheckpointMeta>(path);
  const config = parseConfig(ck.meta.config, `${path}: config`);
  // Checkpoints that name no relpos trace were written while `walk` was the default, and trained on it.
  ck.meta.options.relposTrace ??= 'walk';
  const st = freshState(config, ck.meta.options);
  const vars = new Map<string, HostTensor>();
  for (const [k, t] of ck.tensors) if (k.startsWith('var/')) vars.set(k.slice(4), t);
  st.model.setHostVars(vars);
  const code = ck.tensors.get('fixed/memory.w_code');
  if (code) st.model.fixed.set('memory.w_code', { shape: code.shape, data: code.data });
  for (const [n, v] of st.value) {
    const t = vars.get(n);
    if (t) v.assign(tf.tensor(t.data, v.shape));
  }
  st.adam.load(ck.meta.adamT, ck.tensors, 'adam/');
  st.ppoAdam.load(ck.meta.ppoAdamT, ck.tensors, 'ppo-adam/');
  st.meta = ck.meta;
  return st;
}

export const genOptionsFor = (
  config: ModelConfig,
  noise: number,
  mix?: TaskMix,
  relposTrace?: RelposTrace,
): GenOptions => ({
  ...DEFAULT_GEN_OPTIONS,
  noise,
  mix,
  relposTrace,
  maxThinkSteps: config.max_think_steps,
  maxPromptBytes: config.experts.max_prompt - 8,
});

// ---------------------------------------------------------------- the run

export interface RunOptions {
  /** Checkpoint path; the supervised model is also kept at `<path>.supervised` for comparison. */
  checkpoint: string;
  /** Held-out examples per set for the periodic greedy check (0: none). */
  evalPerSet: number;
  evalEvery: number;
  /** Progress lines (stderr by default). */
  out?: NodeJS.WritableStream & { isTTY?: boolean };
}

const fmt = (x: number, d = 3) => x.toFixed(d);

/** A one-line progress display: redrawn on a terminal, a line every 30 s otherwise (logs). */
function progressLine(out: NodeJS.WritableStream & { isTTY?: boolean }) {
  let last = 0;
  return {
    update(line: string, force = false) {
      const now = Date.now();
      if (out.isTTY) out.write(`\r${line.slice(0, 200)}\x1b[K`);
      else if (force || now - last > 30_000) {
        last = now;
        out.write(`${line}\n`);
      }
    },
    end(line: string) {
      out.write(out.isTTY ? `\r${line}\x1b[K\n` : `${line}\n`);
    },
  };
}

/** Greedy answers of the tfjs model on a few held-out problems per set: accuracy per set. */
export async function quickEval(model: TfModel, perSet: number): Promise<Record<string, number>> {
  const items = evalExamples(EVAL_SET_NAMES, perSet, 1);
  const answered = await new TfEngine(model, 48, 72).answer(items);
  const acc: Record<string, number> = {};
  for (const m of score(model.config, answered)) acc[m.set] = Number(m.answerAccuracy.toFixed(3));
  return acc;
}

/** Runs (or continues) the supervised stage, then PPO, within the options' step and time budgets. */
export async function runTraining(st: TrainState, run: RunOptions): Promise<TrainState> {
  const o = st.meta.options;
  const out = run.out ?? process.stderr;
  const bar = progressLine(out);
  const gen = genOptionsFor(st.model.config, o.noise, o.mix, o.relposTrace);
  const started = Date.now();
  const base = st.meta.seconds;
  const elapsed = () => base + (Date.now() - started) / 1000;
  const supBudget = o.minutes > 0 ? (o.minutes - o.ppoMinutes) * 60 : Infinity;
  const budget = o.minutes > 0 ? o.minutes * 60 : Infinity;
  const save = () => {
    st.meta.seconds = elapsed();
    saveTrainState(run.checkpoint, st);
  };
  const recent: StepStats[] = [];
  const stepTimes: number[] = [];
  let lastAcc: Record<string, number> = {};
  const accText = () =>
    Object.keys(lastAcc).length
      ? ' | ' +
        Object.entries(lastAcc)
          .map(([k, v]) => `${k} ${Math.round(v * 100)}`)
          .join(' ')
      : '';

  /** The greedy held-out check every `every` steps of a stage, recorded in the history; whether it ran. */
  const evalIfDue = async (step: number, every: number): Promise<boolean> => {
    if (run.evalPerSet <= 0 || run.evalEvery <= 0 || step % every !== 0) return false;
    lastAcc = await quickEval(st.model, run.evalPerSet);
    st.meta.history.push({ phase: 'eval', step, seconds: Math.round(elapsed()), accuracy: lastAcc });
    return true;
  };

  while (st.meta.phase === 'supervised' && st.meta.step < o.steps && elapsed() < supBudget) {
    const i = st.meta.step;
    const batch = supervisedBatch(o.seed, i, o.batch, stageAt(i, o), gen);
    const t0 = Date.now();
    const s = supervisedStep(st.model, st.adam, batch, learningRate(i, o), o.balance);
    st.meta.step++;
    recent.push(s);
    if (recent.length > 20) recent.shift();
    const avg = (f: (x: StepStats) => number) => recent.reduce((a, x) => a + f(x), 0) / recent.length;
    if (st.meta.step % 10 === 0 || st.meta.step === o.steps) {
      const routed = recent.reduce(
        (acc, x) => acc.map((v, e) => v + x.routed[e]),
        new Array<number>(s.routed.length).fill(0),
      );
      const total = routed.reduce((a, b) => a + b, 0) || 1;
      st.meta.history.push({
        phase: 'supervised',
        step: st.meta.step,
        seconds: Math.round(elapsed()),
        loss: Number(
          fmt(
            avg((x) => x.ce),
            4,
          ),
        ),
        balance: Number(
          fmt(
            avg((x) => x.balance),
            4,
          ),
        ),
        tokenAcc: Number(fmt(avg((x) => x.tokenAcc))),
        seqAcc: Number(fmt(avg((x) => x.seqAcc))),
        expertShare: routed.map((n) => Number(fmt(n / total))),
      });
    }
    if (await evalIfDue(st.meta.step, run.evalEvery))
      bar.update(`supervised ${st.meta.step}/${o.steps} eval${accText()}`, true);
    bar.update(
      `supervised ${st.meta.step}/${o.steps} stage ${stageAt(i, o)} loss ${fmt(avg((x) => x.ce))} ` +
        `tok ${fmt(avg((x) => x.tokenAcc))} seq ${fmt(avg((x) => x.seqAcc))} ` +
        `${((Date.now() - t0) / 1000).toFixed(1)}s/step ${Math.round(elapsed())}s${accText()}`,
    );
    stepTimes.push((Date.now() - t0) / 1000);
    const { step } = st.meta;
    if (o.autoSteps && supBudget < Infinity && step % o.checkpointEvery === 0 && step < 0.8 * o.steps) {
      const recent = stepTimes.slice(-100);
      const perStep = recent.reduce((a, x) => a + x, 0) / recent.length;
      o.steps = Math.max(step + 1, step + Math.floor((supBudget - elapsed()) / perStep));
    }
    if (st.meta.step % o.checkpointEvery === 0) save();
  }
  if (st.meta.phase === 'supervised' && (st.meta.step >= o.steps || elapsed() >= supBudget)) {
    st.meta.phase = 'ppo';
    save();
    saveTrainState(`${run.checkpoint}.supervised`, st);
    bar.end(`supervised stage done at step ${st.meta.step} (${Math.round(elapsed())}s)`);
  }

  while (st.meta.phase === 'ppo' && st.meta.ppoStep < o.ppoSteps && elapsed() < budget) {
    const i = st.meta.ppoStep;
    // PPO draws from its own stream of the mixed stage, so it never replays the supervised batches.
    const batch = supervisedBatch(o.seed + 7919, i, o.ppoBatch, 3, gen);
    const t0 = Date.now();
    const s = ppoIteration(st.model, st.value, st.ppoAdam, batch, o.ppoLr, new Rng(o.seed, 0x990 + i));
    st.meta.ppoStep++;
    st.meta.history.push({
      phase: 'ppo',
      step: st.meta.ppoStep,
      seconds: Math.round(elapsed()),
      reward: s.reward,
      policyLoss: Number(fmt(s.policyLoss, 4)),
      valueLoss: Number(fmt(s.valueLoss, 4)),
      entropy: Number(fmt(s.entropy, 4)),
      clipFraction: Number(fmt(s.clipFraction)),
    });
    await evalIfDue(st.meta.ppoStep, Math.max(1, Math.round(run.evalEvery / 5)));
    bar.update(
      `ppo ${st.meta.ppoStep}/${o.ppoSteps} reward ${fmt(s.reward)} entropy ${fmt(s.entropy)} ` +
        `clip ${fmt(s.clipFraction)} ${((Date.now() - t0) / 1000).toFixed(1)}s/it ${Math.round(elapsed())}s${accText()}`,
    );
    if (st.meta.ppoStep % Math.max(1, Math.round(o.checkpointEvery / 5)) === 0) save();
  }
  if (st.meta.phase === 'ppo' && st.meta.ppoStep >= o.ppoSteps) st.meta.phase = 'done';
  save();
  bar.end(
    `training ${st.meta.phase === 'done' ? 'done' : 'paused'}: supervised ${st.meta.step}/${o.steps}, ppo ${st.meta.ppoStep}/${o.ppoSteps}, ${Math.round(elapsed())}s`,
  );
  return st;
}
