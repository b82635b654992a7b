// `switchyard train` and `switchyard eval`: the CLI face of this package.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { countParams, parseConfig, ReferenceModel, type ModelConfig } from '@switchyard/shared';
import { loadWeights, UsageError, writeOut, type Command } from '../../shared/cli/command.ts';
import { progress } from '../../shared/cli/progress.ts';
import { LOCAL_API_KEY } from '../../scripts/stack.ts';
import {
  CurriculumError,
  DEFAULT_RELPOS_TRACE,
  EVAL_SET_NAMES,
  parseMix,
  parseRelposTrace,
  RELPOS_TRACES,
  TASK_TYPES,
  type RelposTrace,
} from './curriculum.ts';
import {
  differences,
  EndpointEngine,
  endpointModel,
  evalExamples,
  MemoryLtm,
  ReferenceEngine,
  score,
  TfEngine,
  type Answered,
  type Engine,
  type SetMetrics,
} from './eval.ts';
import { checkExport, exportWeights } from './export.ts';
import type { TfModel } from './model-tf.ts';
import { DEFAULT_TRAIN_OPTIONS, DEMO_CONFIG, type TrainOptions } from './options.ts';
import type { TrainState } from './train.ts';

/** tfjs and the training code load only when a command needs them. */
async function tfjs() {
  const [{ initTf }, model, training] = await Promise.all([
    import('./tf.ts'),
    import('./model-tf.ts'),
    import('./train.ts'),
  ]);
  await initTf();
  return { TfModel: model.TfModel, ...training };
}

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
export const MODELS_DIR = here('../models');
export const DEFAULT_CHECKPOINT = here('../checkpoints/reasoner.ckpt');
export const DEFAULT_MODEL = here('../models/reasoner.int8.safetensors');
export const DEFAULT_EVAL_JSON = here('../../bench/results/eval.json');

function numberOption(key: string, value: unknown, def: number, min: number, max = Infinity): number {
  if (value === undefined) return def;
  const n = Number(value);
  if (typeof value !== 'string' || value.trim() === '' || !Number.isFinite(n) || n < min || n > max)
    throw new UsageError(`--${key}: expected a number in [${min}, ${max}], found "${String(value)}"`);
  return n;
}

/** A curriculum parser's result, its CurriculumError turned into a usage error of the flag. */
function curriculumOption<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof CurriculumError) throw new UsageError(`--${flag}: ${e.message}`);
    throw e;
  }
}

/** `--relpos-trace`, when given: a UsageError names the valid formats. */
const relposTraceOption = (value: unknown): RelposTrace | undefined =>
  value === undefined ? undefined : curriculumOption('relpos-trace', () => parseRelposTrace(String(value)));

function intOpt(key: string, value: unknown, def: number, min = 0): number {
  const n = numberOption(key, value, def, min);
  if (!Number.isInteger(n))
    throw new UsageError(`--${key}: expected an integer ≥ ${min}, found "${String(value)}"`);
  return n;
}

function readConfig(path: string): ModelConfig {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`--config: cannot read JSON from "${path}": ${(e as Error).message}`);
  }
  return parseConfig(json, path);
}

// ---------------------------------------------------------------- train

export const train: Command = {
  name: 'train',
  summary: 'train the demo reasoner on the curriculum (supervised, then PPO) and export it',
  usage: `switchyard train [options]

  --checkpoint FILE   checkpoint to write (and with --resume, to continue from)
                      (default train/checkpoints/reasoner.ckpt)
  --resume            continue the run in --checkpoint where it stopped
  --out DIR           where the exported models go (default train/models)
  --export-only       export the model in --checkpoint without training
  --config FILE       a JSON model config (default: the demo config)
  --init FILE         start from a Switchyard weights file (a trained model, f32 or int8) instead of
                      random weights; its config is the model's
  --mix T=F,...       draw task T F times as often as the curriculum does, e.g. syllogism=3,relpos=3
                      (tasks: ${TASK_TYPES.join(' ')})
  --relpos-trace F    relpos trace format: ${RELPOS_TRACES.join(' or ')} (default ${DEFAULT_RELPOS_TRACE}; roles
                      also writes, per premise, which side of the relation the current object is on)
  --seed N            data and initialisation seed (default ${DEFAULT_TRAIN_OPTIONS.seed})
  --steps N|auto      supervised steps (default ${DEFAULT_TRAIN_OPTIONS.steps}); auto (needs --minutes):
                      as many as the time budget allows at the measured speed
  --batch N           examples per supervised step (default ${DEFAULT_TRAIN_OPTIONS.batch})
  --lr X              peak learning rate (default ${DEFAULT_TRAIN_OPTIONS.lr})
  --balance X         load-balancing loss weight (default ${DEFAULT_TRAIN_OPTIONS.balance})
  --noise X           prompt-noise rate of the curriculum, 0.1-0.3 (default ${DEFAULT_TRAIN_OPTIONS.noise})
  --stage1 X          share of supervised steps on basic problems only (default ${DEFAULT_TRAIN_OPTIONS.stage1})
  --ppo-steps N       PPO iterations after the supervised stage (default ${DEFAULT_TRAIN_OPTIONS.ppoSteps})
  --ppo-batch N       rollouts per PPO iteration (default ${DEFAULT_TRAIN_OPTIONS.ppoBatch})
  --ppo-lr X          PPO learning rate (default ${DEFAULT_TRAIN_OPTIONS.ppoLr})
  --minutes M         stop after M minutes of training over all runs (0: no limit; default 0)
  --ppo-minutes M     of --minutes, the part kept for PPO (default 0)
  --eval-every N      greedy held-out check every N steps (default 100; 0: off)
  --eval-per-set N    problems per held-out set in that check (default 12)`,
  options: {
    checkpoint: { type: 'string' },
    resume: { type: 'boolean' },
    out: { type: 'string', short: 'o' },
    'export-only': { type: 'boolean' },
    config: { type: 'string' },
    init: { type: 'string' },
    mix: { type: 'string' },
    'relpos-trace': { type: 'string' },
    seed: { type: 'string' },
    steps: { type: 'string' },
    batch: { type: 'string' },
    lr: { type: 'string' },
    balance: { type: 'string' },
    noise: { type: 'string' },
    stage1: { type: 'string' },
    'ppo-steps': { type: 'string' },
    'ppo-batch': { type: 'string' },
    'ppo-lr': { type: 'string' },
    minutes: { type: 'string' },
    'ppo-minutes': { type: 'string' },
    'eval-every': { type: 'string' },
    'eval-per-set': { type: 'string' },
  },
  async run(v, positionals) {
    if (positionals.length)
      throw new UsageError(`expected no positional arguments, found ${positionals.join(' ')}`);
    const checkpoint = (v.checkpoint as string | undefined) ?? DEFAULT_CHECKPOINT;
    const outDir = (v.out as string | undefined) ?? MODELS_DIR;
    const { freshState, loadTrainState, runTraining } = await tfjs();
    let st: TrainState;
    if (v.resume || v['export-only']) {
      for (const k of ['init', 'mix', 'config', 'relpos-trace'] as const)
        if (v[k] !== undefined)
          throw new UsageError(
            `--${k}: only for a new run; a resumed run keeps its checkpoint's model and data`,
          );
      if (!existsSync(checkpoint))
        throw new UsageError(
          `--checkpoint: expected an existing checkpoint for --resume/--export-only, found no file "${checkpoint}"`,
        );
      st = loadTrainState(checkpoint);
      // Budgets and step counts may be raised on resume; everything that shapes the data stays.
      const o = st.meta.options;
      if (v.steps === 'auto') o.autoSteps = true;
      else if (v.steps !== undefined) [o.steps, o.autoSteps] = [intOpt('steps', v.steps, o.steps, 1), false];
      o.ppoSteps = intOpt('ppo-steps', v['ppo-steps'], o.ppoSteps);
      o.minutes = numberOption('minutes', v.minutes, o.minutes, 0);
      o.ppoMinutes = numberOption('ppo-minutes', v['ppo-minutes'], o.ppoMinutes, 0);
      // A stage cut short by the time budget continues when the new budget allows; PPO never goes back.
      if (st.meta.ppoStep === 0 && st.meta.step < o.steps) st.meta.phase = 'supervised';
      else if (st.meta.phase === 'done' && st.meta.ppoStep < o.ppoSteps) st.meta.phase = 'ppo';
      process.stderr.write(
        `resuming ${checkpoint}: ${st.meta.phase}, supervised ${st.meta.step}/${o.steps}, ppo ${st.meta.ppoStep}/${o.ppoSteps}\n`,
      );
    } else {
      const d = DEFAULT_TRAIN_OPTIONS;
      const options: TrainOptions = {
        seed: intOpt('seed', v.seed, d.seed),
        batch: intOpt('batch', v.batch, d.batch, 1),
        steps: v.steps === 'auto' ? d.steps : intOpt('steps', v.steps, d.steps, 1),
        autoSteps: v.steps === 'auto',
        stage1: numberOption('stage1', v.stage1, d.stage1, 0, 1),
        lr: numberOption('lr', v.lr, d.lr, 0),
        warmup: d.warmup,
        balance: numberOption('balance', v.balance, d.balance, 0),
        noise: numberOption('noise', v.noise, d.noise, 0, 1),
        ppoSteps: intOpt('ppo-steps', v['ppo-steps'], d.ppoSteps),
        ppoBatch: intOpt('ppo-batch', v['ppo-batch'], d.ppoBatch, 1),
        ppoLr: numberOption('ppo-lr', v['ppo-lr'], d.ppoLr, 0),
        minutes: numberOption('minutes', v.minutes, d.minutes, 0),
        ppoMinutes: numberOption('ppo-minutes', v['ppo-minutes'], d.ppoMinutes, 0),
        checkpointEvery: d.checkpointEvery,
      };
      const mix = v.mix;
      if (typeof mix === 'string') options.mix = curriculumOption('mix', () => parseMix(mix));
      options.relposTrace = relposTraceOption(v['relpos-trace']) ?? d.relposTrace;
      if (options.autoSteps && options.minutes === 0)
        throw new UsageError(
          '--steps auto: expected --minutes as well (the steps are sized to the time budget)',
        );
      const initPath = v.init as string | undefined;
      if (initPath !== undefined && v.config !== undefined)
        throw new UsageError('--init and --config: expected one of them (the weights file has its config)');
      const init = initPath !== undefined ? loadWeights(initPath) : undefined;
      const config = init?.config ?? (typeof v.config === 'string' ? readConfig(v.config) : DEMO_CONFIG);
      const c = countParams(config);
      process.stderr.write(
        `training a ${(c.total / 1e6).toFixed(2)} M-parameter rru-moe (${config.experts.count} experts, top ${config.experts.top_k}) for ${options.steps} steps of ${options.batch}, then ${options.ppoSteps} PPO iterations${init ? `, from the weights in ${initPath}` : ''}\n`,
      );
      st = freshState(config, options, init?.params());
    }
    if (!v['export-only'])
      st = await runTraining(st, {
        checkpoint,
        evalEvery: intOpt('eval-every', v['eval-every'], 100),
        evalPerSet: intOpt('eval-per-set', v['eval-per-set'], 12),
      });
    await exportAll(st, outDir, checkpoint);
  },
};

/** Writes the f32 and int8 files (and the supervised-stage f32, when kept) and checks each on the reference. */
async function exportAll(st: TrainState, dir: string, checkpoint: string): Promise<void> {
  const { loadTrainState } = await tfjs();
  const checkItems = evalExamples(EVAL_SET_NAMES, 3, 99);
  const targets: [TfModel, string, 'f32' | 'int8'][] = [
    [st.model, `${dir}/reasoner.f32.safetensors`, 'f32'],
    [st.model, `${dir}/reasoner.int8.safetensors`, 'int8'],
  ];
  // The model as the supervised stage left it, so that evaluation can show what PPO changed.
  const supervised = `${checkpoint}.supervised`;
  if (st.meta.phase !== 'supervised' && existsSync(supervised))
    targets.push([loadTrainState(supervised).model, `${dir}/reasoner-supervised.f32.safetensors`, 'f32']);
  for (const [model, path, scheme] of targets) {
    const bytes = exportWeights(model, scheme);
    writeOut(path, bytes);
    const check = await checkExport(bytes, model, checkItems);
    console.log(
      `wrote ${path} (${(bytes.length / 1048576).toFixed(2)} MiB): the reference on the file gives the tfjs model's greedy output on ${check.agree}/${check.of} check problems`,
    );
    for (const m of check.mismatches.slice(0, 3))
      console.log(
        `  differs on ${JSON.stringify(m.prompt)}: tfjs ${JSON.stringify(m.tfjs.answer)}, reference ${JSON.stringify(m.reference.answer)}`,
      );
    if (scheme === 'f32' && check.agree !== check.of)
      throw new Error(
        `export check: expected the f32 file to reproduce the tfjs model exactly, found ${check.of - check.agree} differences`,
      );
  }
}

// ---------------------------------------------------------------- eval

export interface EvalReport {
  model: string;
  engine: string;
  params: number;
  sets: SetMetrics[];
  overall: {
    answerAccuracy: number;
    stepAccuracy: number;
    paramRatio: number;
    flopRatio: number;
    expertShare: number[];
  };
}

function overall(sets: SetMetrics[]): EvalReport['overall'] {
  const n = sets.reduce((a, s) => a + s.n, 0) || 1;
  const w = (f: (s: SetMetrics) => number) => sets.reduce((a, s) => a + f(s) * s.n, 0) / n;
  const E = sets[0]?.expertShare.length ?? 0;
  const share = Array.from(
    { length: E },
    (_, e) => w((s) => s.expertShare[e] * s.meanSteps) / (w((s) => s.meanSteps) || 1),
  );
  return {
    answerAccuracy: w((s) => s.answerAccuracy),
    stepAccuracy: w((s) => s.stepAccuracy),
    paramRatio: w((s) => s.paramRatio),
    flopRatio: w((s) => s.flopRatio),
    expertShare: share,
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function formatTable(r: EvalReport): string {
  const head = [
    'set',
    'n',
    'answer acc',
    'step acc',
    'trace exact',
    'params/answer',
    'FLOPs/answer',
    'steps',
  ];
  const rows = r.sets.map((s) => [
    s.set,
    String(s.n),
    pct(s.answerAccuracy),
    pct(s.stepAccuracy),
    pct(s.traceExact),
    pct(s.paramRatio),
    pct(s.flopRatio),
    s.meanSteps.toFixed(1),
  ]);
  const o = r.overall;
  rows.push([
    'all',
    String(r.sets.reduce((a, s) => a + s.n, 0)),
    pct(o.answerAccuracy),
    pct(o.stepAccuracy),
    '',
    pct(o.paramRatio),
    pct(o.flopRatio),
    '',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i]))).join(' | ')} |`;
  return [
    `${r.model} via ${r.engine}`,
    line(head),
    `|${w.map((n, i) => (i < 2 ? ':' + '-'.repeat(n + 1) : '-'.repeat(n + 1) + ':')).join('|')}|`,
    ...rows.map(line),
    `expert share of routed slots: ${o.expertShare.map((x, e) => `${e}: ${pct(x)}`).join(', ')}`,
  ].join('\n');
}

export const evaluate: Command = {
  name: 'eval',
  summary: 'evaluate a model on the held-out curriculum sets (reference and/or a running endpoint)',
  usage: `switchyard eval [MODEL ...] [options]

  MODEL             weights files (default train/models/reasoner.int8.safetensors)
  --n N             problems per held-out set (default 100)
  --sets LIST       comma-separated sets (default all: ${EVAL_SET_NAMES.join(', ')})
  --seed N          held-out sample seed (default 1)
  --engine E        reference (the float32 oracle, default) or tfjs (the training model: faster, batched)
  --url URL         also/instead evaluate an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8787
  --model NAME      the endpoint's model name (default: the first of GET /v1/models)
  --api-key KEY     the endpoint's API key (default $SWITCHYARD_API_KEY, else npm start's
                    local key sk-switchyard-local)
  --compare         with --url: run both the reference and the endpoint, exit 1 if any answer differs
  --relpos-trace F  the relpos traces step accuracy is scored against: ${RELPOS_TRACES.join(' or ')}
                    (default ${DEFAULT_RELPOS_TRACE}; give the format the model was trained on: walk before run 10)
  --recall N        simulate long-term-memory recall of N entries after step 1 (reference only; default 0)
  --max-tokens N    generation limit (default 48)
  --json FILE       where the JSON report goes (default bench/results/eval.json)`,
  options: {
    n: { type: 'string' },
    sets: { type: 'string' },
    seed: { type: 'string' },
    engine: { type: 'string' },
    url: { type: 'string' },
    model: { type: 'string' },
    'api-key': { type: 'string' },
    'relpos-trace': { type: 'string' },
    compare: { type: 'boolean' },
    recall: { type: 'string' },
    'max-tokens': { type: 'string' },
    json: { type: 'string' },
  },
  async run(v, positionals) {
    const n = intOpt('n', v.n, 100, 1);
    const seed = intOpt('seed', v.seed, 1);
    const maxTokens = intOpt('max-tokens', v['max-tokens'], 48, 1);
    const recall = intOpt('recall', v.recall, 0);
    const sets = typeof v.sets === 'string' ? v.sets.split(',').map((s) => s.trim()) : EVAL_SET_NAMES;
    for (const s of sets)
      if (!EVAL_SET_NAMES.includes(s))
        throw new UsageError(`--sets: expected names from ${EVAL_SET_NAMES.join(', ')}, found "${s}"`);
    const engineName = (v.engine as string | undefined) ?? 'reference';
    if (engineName !== 'reference' && engineName !== 'tfjs')
      throw new UsageError(`--engine: expected one of reference, tfjs, found "${engineName}"`);
    const url = v.url as string | undefined;
    if (v.compare && !url)
      throw new UsageError('--compare: expected --url as well (it compares the reference with the endpoint)');
    const apiKey = (v['api-key'] as string | undefined) ?? (process.env.SWITCHYARD_API_KEY || LOCAL_API_KEY);
    const files = positionals.length ? positionals : [DEFAULT_MODEL];
    const items = evalExamples(sets, n, seed, relposTraceOption(v['relpos-trace']));
    const reports: EvalReport[] = [];
    let failed = false;

    const runEngine = async (engine: Engine, label: string, config: ModelConfig): Promise<Answered[]> => {
      const bar = progress(`eval ${label}`, items.length);
      const answered = await engine.answer(items, (d) => bar.update(d));
      bar.done();
      const scored = score(config, answered);
      const report: EvalReport = {
        model: label,
        engine: engine.name,
        params: countParams(config).total,
        sets: scored,
        overall: overall(scored),
      };
      reports.push(report);
      console.log(`\n${formatTable(report)}\n`);
      return answered;
    };

    for (const file of files) {
      const w = loadWeights(file);
      const config = w.config;
      let refAnswers: Answered[] | undefined;
      if (!url || v.compare) {
        let engine: Engine;
        if (engineName === 'tfjs') {
          const { TfModel } = await tfjs();
          engine = new TfEngine(new TfModel(config, w.params()), maxTokens);
        } else
          engine = new ReferenceEngine(
            new ReferenceModel(config, w.params()),
            maxTokens,
            recall,
            recall > 0 ? new MemoryLtm() : undefined,
          );
        refAnswers = await runEngine(engine, file, config);
      }
      if (url) {
        const model = (v.model as string | undefined) ?? (await endpointModel(url, fetch, apiKey));
        const answers = await runEngine(
          new EndpointEngine(url, model, maxTokens, fetch, apiKey),
          `${url} (${model})`,
          config,
        );
        if (refAnswers) {
          const diffs = differences(refAnswers, answers);
          console.log(`${diffs.length} of ${items.length} answers differ between the reference and ${url}`);
          for (const d of diffs.slice(0, 10))
            console.log(
              `  ${JSON.stringify(d.a.example.prompt)}: reference ${JSON.stringify(d.a.reasoning)} → ${JSON.stringify(d.a.answer)}, endpoint ${JSON.stringify(d.b.reasoning)} → ${JSON.stringify(d.b.answer)}`,
            );
          if (diffs.length) failed = true;
        }
      }
    }
    const json = (v.json as string | undefined) ?? DEFAULT_EVAL_JSON;
    writeOut(
      json,
      JSON.stringify({ date: new Date().toISOString(), n, seed, sets, recall, reports }, null, 2) + '\n',
    );
    console.log(`wrote ${json}`);
    if (failed)
      throw new Error(
        '--compare: expected identical answers from the reference and the endpoint, found differences (listed above)',
      );
  },
};
