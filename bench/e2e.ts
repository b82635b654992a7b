// End to end, in one run: the whole stack (the edge Worker in wrangler dev in front of switchyard-gpu on CPU,
// over loopback, started by scripts/stack.ts as `npm start` starts it) against a monolithic baseline (the same
// model in this one Node process on onnxruntime-node), at 1, 16 and 64 concurrent sessions:
//   - tokens per second per session and in aggregate;
//   - time to the first token and the steady per-step latency, split into edge compute, network, GPU-tier
//     queue and GPU-tier compute (from each step's trace timing, the tier's figures from its STEP_RESPONSE).
// The monolith runs the edge's own turn loop (edge/src/engine.ts runSteps) with the wasm SIMD edge step on the
// main thread, and the GPU tier's own ExpertService (ORT worker pool, per-expert batcher, prompt cache)
// in-process: batched across the concurrent sessions exactly as the tier batches them, minus HTTP, the
// Durable Objects and the second process. Both sides run with the same ORT worker and thread counts (cores − 1
// threads), one after the other at each load, so neither competes with the other for the cores.
// `npm run bench -- e2e` (or `npx tsx bench/e2e.ts`); JSON to bench/results/e2e.json, chart to e2e.svg.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  initRandom,
  numel,
  paramSpecs,
  preset,
  promptDigest,
  readWeights,
  renderChat,
  splitWeights,
  startGeneration,
  writeWeights,
  type ExpertBackend,
  type ModelConfig,
  type StepRecord,
} from '@switchyard/shared';
import { createKernels } from '@switchyard/wasm';
import { WasmEdgeCompute } from '@switchyard/wasm/edge';
import { enableRelaxedSimd, ensureBuilt, kernelBytes } from '@switchyard/wasm/node';
import { zeroState, runSteps } from '../edge/src/engine.ts';
import type { StepTiming, TraceStep } from '../edge/src/events.ts';
import { TurnText } from '../edge/src/text.ts';
import { StepBatcher } from '../gpu-backend/src/batcher.ts';
import { DEFAULTS } from '../gpu-backend/src/config.ts';
import { serverMetrics } from '../gpu-backend/src/metrics.ts';
import { PrefillBatcher } from '../gpu-backend/src/prefill-batcher.ts';
import { PromptCache } from '../gpu-backend/src/prompt-cache.ts';
import { AdmissionQueue, ExpertService } from '../gpu-backend/src/service.ts';
import { WorkerPool } from '../gpu-backend/src/worker-pool.ts';
import { startStack, type Stack } from '../scripts/stack.ts';
import { renderE2eChart } from './chart.ts';
import { printTable, quantile, RESULTS_DIR, writeResult } from './lib.ts';
import { cpuBetween, processTree, snapshot, type CpuUse } from './proc-cpu.ts';

export interface E2eOptions {
  /** Model preset (default r1-seed, the seed's sizes). */
  preset?: string;
  loads?: number[];
  /** Completion tokens per turn (default 20: 15 thinking, </think>, 4 of answer). */
  maxTokens?: number;
  /** Waves measured at one session, alternating between the systems (default 5). */
  singleSessionReps?: number;
  /**
   * Waves measured per system at each load above one session (default 4: an even count, so each system goes
   * first equally often), after one unmeasured wave each at that load.
   */
  loadReps?: number;
  seed?: number;
  /** ORT intra-op threads in both systems (default: cores − 1, at least 1). */
  expertThreads?: number;
  /** The batching window in both systems (default: switchyard-gpu's, 2 ms). */
  maxWaitMs?: number;
}

export type System = 'stack' | 'monolith';

/** Mean milliseconds per step, over every step after each turn's first. */
export interface LatencySplit {
  /** Controller, gate and head on the edge (wasm SIMD). */
  edgeMs: number;
  /** The session's SQLite write per step (stack only). */
  persistMs: number;
  /**
   * The expert call outside the tier: the edge's round trip minus the tier's own handling time (from its
   * request-duration metric), i.e. loopback HTTP, the Worker's event loop and the Durable Object's output
   * gate for the stack; the in-process call for the monolith (about 0).
   */
  networkMs: number;
  /** Queued in the tier's batcher (its slowest routed expert's row), from STEP_RESPONSE. */
  queueMs: number;
  /** Computing in the tier's ORT worker (its slowest routed expert's batch, prefill included), STEP_RESPONSE. */
  computeMs: number;
  /** The rest of the tier's handling: waiting for a prefill to reach a worker, decoding, signing checks. */
  tierOtherMs: number;
  /** The rest of the client-observed step: Durable Object → Worker → SSE → client for the stack. */
  otherMs: number;
}

export interface LoadRun {
  system: System;
  sessions: number;
  turns: number;
  tokens: number;
  wallS: number;
  /** Every token of every session over the wall time of the whole wave. */
  aggregateTokensPerS: number;
  /** Mean over sessions of tokens / (request to last token). */
  perSessionTokensPerS: number;
  /** Median request → first step. */
  ttftMs: number;
  /** Mean steady step latency: (last step − first step) / (steps − 1), averaged over turns. */
  stepMs: number;
  split: LatencySplit;
  /** Rows per batched expert run. */
  meanBatch: number;
  /**
   * CPU per wave by process, mean over the measured waves (Linux: read from /proc; absent elsewhere). The
   * stack: `gpu-tier` (switchyard-gpu), `edge` (wrangler and its workerd) and `bench` (the clients); the
   * monolith: `bench`, which is all of it.
   */
  cpu?: Record<string, WaveCpu>;
}

export interface WaveCpu {
  /** CPU seconds per wave, all threads. */
  seconds: number;
  /** Per session-step, in milliseconds. */
  msPerStep: number;
  /** The busiest thread's CPU over the wave's wall time (for the GPU tier, its ORT worker). */
  busiestThreadShare: number;
  /** The processes' main threads (event loops) over the wave's wall time. */
  mainThreadShare: number;
}

export interface E2eResult {
  model: {
    preset: string;
    seed: number;
    parameters: number;
    experts: number;
    topK: number;
    expertLayers: number;
    expertWidth: number;
    hidden: number;
    promptTokensMean: number;
  };
  setup: Record<string, string | number>;
  runs: LoadRun[];
  /** Sessions whose tokens were the same in both systems (same prompt, same model), of all compared. */
  tokenAgreement: { same: number; total: number };
  goals: {
    latencyRatioAt1: number;
    latencyGoal: number;
    latencyMet: boolean;
    throughputRatioAtMax: number;
    /** Stack over monolith aggregate tokens/s of each wave pair at the top load, in run order. */
    throughputRatioPerWave: number[];
    throughputGoal: number;
    throughputMet: boolean;
    maxSessions: number;
  };
}

/** One session's turn as the client saw it. */
interface TurnObservation {
  start: number;
  /** Arrival time of each step. */
  arrivals: number[];
  end: number;
  steps: TraceStep[];
}

const NO_MEMORY = { recall: 0, write: false };

/** Distinct prompts of similar length, so no two sessions share a prompt cache entry. */
function prompt(session: number, turn: number): string {
  return `Session ${session}, question ${turn}: what is ${17 + session} + ${25 + turn}? Show the steps.`;
}

// ------------------------------------------------------------------------------------------ monolith

interface Monolith {
  run(session: number, turn: number, maxTokens: number): Promise<TurnObservation>;
  /** Rows and runs batched, and the time spent in the service's step calls, so far. */
  batchMark(): { sum: number; count: number; serviceMs: number };
  close(): Promise<void>;
}

async function startMonolith(bytes: Uint8Array, threads: number, maxWaitMs: number): Promise<Monolith> {
  const full = readWeights(bytes);
  const config = full.config;
  const edgeFile = readWeights(splitWeights(full, 1).edge);
  ensureBuilt();
  const kernels = await createKernels(kernelBytes(), {
    flavor: enableRelaxedSimd() ? 'relaxed-simd' : 'simd',
  });
  const edge = new WasmEdgeCompute(
    kernels,
    config,
    new Map(edgeFile.names().map((n) => [n, edgeFile.stored(n)])),
  );
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.length));
  shared.set(bytes);
  const experts = full.experts();
  const pool = await WorkerPool.start({
    size: 1,
    weights: shared,
    experts,
    provider: 'cpu',
    threads,
    compute: 'f32',
  });
  const metrics = serverMetrics();
  let batchSum = 0;
  let batchCount = 0;
  let serviceMs = 0;
  const admission = new AdmissionQueue(DEFAULTS.queueLimit);
  const batcher = new StepBatcher(pool, {
    maxBatch: DEFAULTS.maxBatch,
    maxWaitMs,
    hidden: config.controller.hidden,
    onDispatch: (_e, rows) => {
      admission.release(rows);
      batchSum += rows;
      batchCount++;
    },
  });
  const svc = new ExpertService({
    config,
    served: experts,
    cache: new PromptCache(DEFAULTS.cacheBytes),
    batcher,
    prefills: new PrefillBatcher(pool, { maxTokens: DEFAULTS.maxPrefillTokens }),
    runner: pool,
    admission,
    metrics,
  });
  const backend: ExpertBackend = {
    name: 'in-process',
    async runExperts(call) {
      const req = {
        type: 'step-request' as const,
        sessionId: call.sessionId,
        requestId: call.requestId,
        step: call.step,
        digest: call.prompt.digest,
        hDtype: 'f32' as const,
        responseDtype: 'f32' as const,
        perExpert: false,
        experts: call.experts,
        gates: call.gates,
        h: call.h,
      };
      // As the edge does after a NEED_PROMPT: the prompt goes along only when a cache lacks it.
      const t0 = performance.now();
      let r = await svc.step(req);
      if (r.type === 'need-prompt') r = await svc.step({ ...req, tokens: call.prompt.tokens });
      serviceMs += performance.now() - t0;
      if (r.type !== 'step-response') throw new Error(`monolith: expected a step response, found ${r.type}`);
      return { mixture: r.values, timing: { queueUs: r.queueUs, computeUs: r.computeUs } };
    },
  };
  return {
    async run(session, turn, maxTokens) {
      const rendered = renderChat(
        [{ role: 'user', content: prompt(session, turn) }],
        config.experts.max_prompt,
      );
      const obs: TurnObservation = { start: performance.now(), arrivals: [], end: 0, steps: [] };
      const records: StepRecord[] = [];
      await runSteps(
        {
          config,
          edge,
          experts: backend,
          prompt: { tokens: rendered.tokens, digest: await promptDigest(rendered.tokens) },
          sessionId: `mono-${session}-${turn}`,
          requestId: `turn-${turn}`,
          options: {
            temperature: 0,
            topP: 1,
            maxTokens,
            seed: 0,
            stop: [],
            ltmTopN: 0,
          },
        },
        startGeneration(zeroState(config), 0),
        records,
        new TurnText([]),
        true,
        {
          emit: (e) => {
            if (e.type !== 'delta' || !e.step) return;
            obs.arrivals.push(performance.now());
            obs.steps.push(e.step);
          },
        },
      );
      obs.end = performance.now();
      svc.drop(`mono-${session}-${turn}`);
      return obs;
    },
    batchMark: () => ({ sum: batchSum, count: batchCount, serviceMs }),
    close: () => pool.close(),
  };
}

// ------------------------------------------------------------------------------------------- stack

/** Batch rows and runs, and the seconds spent handling POST /v1/step, from the tier's metrics. */
async function scrapeBatches(url: string): Promise<{ sum: number; count: number; stepSeconds: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  let count = 0;
  let stepSeconds = 0;
  for (const line of text.split('\n')) {
    const m = /^switchyard_gpu_batch_size_(sum|count)\{[^}]*\} (\S+)$/.exec(line);
    if (m) m[1] === 'sum' ? (sum += Number(m[2])) : (count += Number(m[2]));
    const d = /^switchyard_gpu_request_duration_seconds_sum\{endpoint="v1-step"\} (\S+)$/.exec(line);
    if (d) stepSeconds += Number(d[1]);
  }
  return { sum, count, stepSeconds };
}

async function createSession(stack: Stack): Promise<string> {
  const res = await fetch(`${stack.edge.url}/v1/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: stack.modelName, switchyard: { memory: NO_MEMORY } }),
  });
  const body = (await res.json()) as { id?: string };
  if (!res.ok || !body.id)
    throw new Error(
      `POST /v1/sessions: expected 200 with an id, found ${res.status}: ${JSON.stringify(body)}`,
    );
  return body.id;
}

/** One streamed session turn, timed at the client as each step's SSE chunk arrives. */
async function stackTurn(
  stack: Stack,
  id: string,
  session: number,
  turn: number,
  maxTokens: number,
): Promise<TurnObservation> {
  const obs: TurnObservation = { start: performance.now(), arrivals: [], end: 0, steps: [] };
  const res = await fetch(`${stack.edge.url}/v1/sessions/${id}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      content: prompt(session, turn),
      max_tokens: maxTokens,
      temperature: 0,
      stream: true,
      switchyard: { trace: true },
    }),
  });
  if (!res.ok || !res.body)
    throw new Error(`session turn: expected 200, found ${res.status}: ${await res.text()}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let finished = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const now = performance.now();
    buf += decoder.decode(value, { stream: true });
    let cut: number;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      if (event === 'data: [DONE]') finished = true;
      if (!event.startsWith('data: ') || finished) continue;
      const chunk = JSON.parse(event.slice(6)) as { error?: unknown; switchyard?: { steps?: TraceStep[] } };
      if (chunk.error) throw new Error(`session turn: stream error ${JSON.stringify(chunk.error)}`);
      for (const s of chunk.switchyard?.steps ?? []) {
        obs.arrivals.push(now);
        obs.steps.push(s);
      }
    }
  }
  obs.end = performance.now();
  // A stream cut short (the Worker restarted, a connection dropped) must not pass for a short answer.
  if (!finished)
    throw new Error(`session turn: the stream ended after ${obs.steps.length} steps without data: [DONE]`);
  return obs;
}

// ----------------------------------------------------------------------------------------- summary

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/**
 * `tierMsPerStep`: the tier's own handling time per step over all the turns' steps (HTTP request durations
 * from its metrics, or the in-process service calls). The network share is the round trip beyond it, taken
 * over all steps too (a transport cost that does not depend on the step), the rest of the steady steps'
 * round trip beyond queue and compute is the tier's other handling.
 */
export function summarize(
  system: System,
  sessions: number,
  turns: TurnObservation[],
  wallMs: number,
  meanBatch: number,
  tierMsPerStep: number,
): LoadRun {
  const tokens = turns.reduce((a, t) => a + t.steps.length, 0);
  const allExpertMs = mean(turns.flatMap((t) => t.steps.map((s) => s.timing!.expert_us / 1000)));
  const networkMs = Math.max(0, allExpertMs - tierMsPerStep);
  const steady = turns.flatMap((t) => t.steps.slice(1).map((s) => s.timing!));
  const avg = (k: keyof StepTiming) => mean(steady.map((t) => (t[k] ?? 0) / 1000));
  const stepMs = mean(
    turns
      .filter((t) => t.arrivals.length > 1)
      .map((t) => (t.arrivals.at(-1)! - t.arrivals[0]) / (t.arrivals.length - 1)),
  );
  const edgeMs = avg('edge_us');
  const persistMs = avg('persist_us');
  const expertMs = avg('expert_us');
  const queueMs = avg('tier_queue_us');
  const computeMs = avg('tier_compute_us');
  return {
    system,
    sessions,
    turns: turns.length,
    tokens,
    wallS: wallMs / 1000,
    aggregateTokensPerS: tokens / (wallMs / 1000),
    perSessionTokensPerS: mean(turns.map((t) => t.steps.length / ((t.end - t.start) / 1000))),
    ttftMs: quantile(
      turns.map((t) => t.arrivals[0] - t.start),
      0.5,
    ),
    stepMs,
    split: {
      edgeMs,
      persistMs,
      networkMs,
      queueMs,
      computeMs,
      tierOtherMs: Math.max(0, expertMs - networkMs - queueMs - computeMs),
      otherMs: Math.max(0, stepMs - edgeMs - persistMs - expertMs),
    },
    meanBatch,
  };
}

function modelFile(presetName: string, seed: number, dir: string): { path: string; config: ModelConfig } {
  const config = preset(presetName);
  const path = join(dir, `${presetName}-${seed}.safetensors`);
  process.stderr.write(`e2e: creating a seeded ${presetName} model (int8) ...\n`);
  writeFileSync(path, writeWeights(config, initRandom(config, seed), { scheme: 'int8' }));
  return { path, config };
}

export async function run(o: E2eOptions = {}): Promise<E2eResult> {
  const presetName = o.preset ?? 'r1-seed';
  const loads = o.loads ?? [1, 16, 64];
  const maxTokens = o.maxTokens ?? 20;
  const singleReps = o.singleSessionReps ?? 5;
  const loadReps = o.loadReps ?? 4;
  const seed = o.seed ?? 7;
  // ORT gets every core but one in both systems. Deployed, the edge runs on Cloudflare and the GPU tier's
  // HTTP work beside its accelerator; on one small box the spare core stands in for that, and the monolith's
  // main thread (its edge compute and batching) gets the same core.
  const threads = o.expertThreads ?? Math.max(1, availableParallelism() - 1);
  const load0 = loadavg()[0];
  const maxWaitMs = o.maxWaitMs ?? DEFAULTS.maxWaitMs;
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-e2e-'));
  let stack: Stack | undefined;
  let mono: Monolith | undefined;
  try {
    const { path, config } = modelFile(presetName, seed, dir);
    const bytes = new Uint8Array(readFileSync(path));
    process.stderr.write('e2e: starting the stack (GPU tier + edge in wrangler dev) ...\n');
    stack = await startStack({
      model: path,
      modelName: `switchyard-${presetName}`,
      // The same worker and thread counts as the monolith below.
      gpuArgs: ['--workers', '1', '--threads', String(threads), '--max-wait-ms', String(maxWaitMs)],
      // The benchmark measures serving, not the per-key request budget.
      extraVars: { RATE_LIMIT_RPM: '0' },
    });
    process.stderr.write('e2e: starting the monolith (ORT worker pool in this process) ...\n');
    mono = await startMonolith(bytes, threads, maxWaitMs);
    const s = stack;
    const m = mono;

    interface Wave {
      obs: TurnObservation[];
      wall: number;
      rows: number;
      batches: number;
      /** The tier's own handling time, summed over the wave's expert calls. */
      tierMs: number;
      cpu?: Record<string, CpuUse>;
    }
    // The processes whose CPU each system's waves are charged with (read again per wave: workerd may restart).
    const parts = (system: System): Record<string, number[]> =>
      system === 'stack'
        ? {
            'gpu-tier': processTree(s.gpu.child.pid!),
            edge: processTree(s.edge.child.pid!),
            bench: processTree(process.pid, false),
          }
        : { bench: processTree(process.pid, false) };
    const measured = async (system: System, wave: () => Promise<Omit<Wave, 'cpu'>>): Promise<Wave> => {
      const pids = parts(system);
      const before = Object.entries(pids).map(([k, p]) => [k, snapshot(p)] as const);
      const w = await wave();
      const cpu: Record<string, CpuUse> = {};
      for (const [k, b] of before) {
        const a = snapshot(pids[k]);
        if (!a || !b) return w;
        cpu[k] = cpuBetween(b, a);
      }
      return { ...w, cpu };
    };
    // A wave: n sessions at once, each a fresh single-turn session with its own prompt. Both systems get
    // the same prompts, so they generate the same tokens, route to the same experts and do the same work.
    const stackWave = async (n: number, tokens: number, base: number): Promise<Wave> => {
      const ids = await Promise.all(Array.from({ length: n }, () => createSession(s)));
      return measured('stack', () => stackTurns(ids, tokens, base));
    };
    const stackTurns = async (ids: string[], tokens: number, base: number) => {
      const before = await scrapeBatches(s.gpu.url);
      const t0 = performance.now();
      const obs = await Promise.all(ids.map((id, i) => stackTurn(s, id, base + i, 0, tokens)));
      const wall = performance.now() - t0;
      const after = await scrapeBatches(s.gpu.url);
      return {
        obs,
        wall,
        rows: after.sum - before.sum,
        batches: after.count - before.count,
        tierMs: (after.stepSeconds - before.stepSeconds) * 1000,
      };
    };
    const monoWave = (n: number, tokens: number, base: number): Promise<Wave> =>
      measured('monolith', () => monoTurns(n, tokens, base));
    const monoTurns = async (n: number, tokens: number, base: number) => {
      const before = m.batchMark();
      const t0 = performance.now();
      const obs = await Promise.all(Array.from({ length: n }, (_, i) => m.run(base + i, 0, tokens)));
      const wall = performance.now() - t0;
      const after = m.batchMark();
      return {
        obs,
        wall,
        rows: after.sum - before.sum,
        batches: after.count - before.count,
        tierMs: after.serviceMs - before.serviceMs,
      };
    };

    // Warm-up, not measured: first runs of each graph, the Worker's first requests, wasm compilation.
    process.stderr.write('e2e: warm-up ...\n');
    await monoWave(4, 4, 100_000);
    await stackWave(4, 4, 100_000);

    const runs: LoadRun[] = [];
    const agreement = { same: 0, total: 0 };
    let base = 0;
    const maxN = Math.max(...loads);
    let topWaves: Record<System, Wave[]> = { monolith: [], stack: [] };
    for (const n of loads) {
      // Several waves per load on a shared machine, the systems alternating and taking turns at going
      // first: single wave pairs at 64 sessions ranged 0.79–0.98× on one box with nothing changed.
      const reps = n === 1 ? singleReps : loadReps;
      const waves: Record<System, Wave[]> = { monolith: [], stack: [] };
      if (n > 1) {
        // Not measured: a system's first wave at a new size grows its memory (every prompt cache is a new
        // buffer), and on this VM the page faults cost more than the wave: 8-9 s of kernel time in the ORT
        // worker in the first 64-session wave against 0.2-0.7 s once warm, 55-63 tokens/s against ~100.
        process.stderr.write(`e2e: ${n} session(s), one unmeasured wave per system ...\n`);
        await monoWave(n, maxTokens, 200_000 + n);
        await stackWave(n, maxTokens, 200_000 + n);
      }
      process.stderr.write(`e2e: ${n} session(s), ${reps} wave(s) per system ...\n`);
      for (let rep = 0; rep < reps; rep++) {
        const stackFirst = rep % 2 === 1 ? await stackWave(n, maxTokens, base) : undefined;
        const mw = await monoWave(n, maxTokens, base);
        const sw = stackFirst ?? (await stackWave(n, maxTokens, base));
        waves.monolith.push(mw);
        waves.stack.push(sw);
        // Same prompts, same model: the two systems should generate the same tokens (a check on the
        // comparison itself; batching may move a float32 sum by an ulp and flip a near tie).
        sw.obs.forEach((o, i) => {
          const same = o.steps.map((x) => x.token).join() === mw.obs[i].steps.map((x) => x.token).join();
          agreement.same += same ? 1 : 0;
          agreement.total++;
        });
        base += n;
      }
      if (n === maxN) topWaves = waves;
      for (const system of ['monolith', 'stack'] as const) {
        const w = waves[system];
        const rows = w.reduce((a, x) => a + x.rows, 0);
        const batches = w.reduce((a, x) => a + x.batches, 0);
        const obs = w.flatMap((x) => x.obs);
        const steps = obs.reduce((a, o) => a + o.steps.length, 0);
        const summary = summarize(
          system,
          n,
          obs,
          w.reduce((a, x) => a + x.wall, 0),
          rows / Math.max(1, batches),
          w.reduce((a, x) => a + x.tierMs, 0) / Math.max(1, steps),
        );
        const cpu = wavesCpu(w, steps);
        runs.push(cpu ? { ...summary, cpu } : summary);
      }
    }

    const find = (sys: System, n: number) => runs.find((r) => r.system === sys && r.sessions === n)!;
    const tokensPerS = (w: Wave) => w.obs.reduce((a, t) => a + t.steps.length, 0) / (w.wall / 1000);
    const throughputRatioPerWave = topWaves.stack.map(
      (w, i) => tokensPerS(w) / tokensPerS(topWaves.monolith[i]),
    );
    const latencyRatioAt1 = loads.includes(1) ? find('stack', 1).stepMs / find('monolith', 1).stepMs : NaN;
    const throughputRatioAtMax =
      find('stack', maxN).aggregateTokensPerS / find('monolith', maxN).aggregateTokensPerS;
    const promptLens = Array.from(
      { length: base },
      (_, i) =>
        renderChat([{ role: 'user', content: prompt(i, 0) }], config.experts.max_prompt).tokens.length,
    );
    const result: E2eResult = {
      model: {
        preset: presetName,
        seed,
        parameters: paramSpecs(config).reduce((a, p) => a + numel(p.shape), 0),
        experts: config.experts.count,
        topK: config.experts.top_k,
        expertLayers: config.experts.layers,
        expertWidth: config.experts.width,
        hidden: config.controller.hidden,
        promptTokensMean: mean(promptLens),
      },
      setup: {
        cores: availableParallelism(),
        maxTokens,
        singleSessionReps: singleReps,
        loadReps,
        gpuTier: `switchyard-gpu, provider cpu, 1 worker × ${threads} threads, compute f32, max batch ${DEFAULTS.maxBatch}, max wait ${maxWaitMs} ms`,
        edge: `wrangler dev (workerd), ${s.edgeWeights} edge weights, default compute (wasm SIMD), sessions API, SSE, trace on`,
        monolith: `one Node process: the edge's runSteps with WasmEdgeCompute on the main thread, the GPU tier's ExpertService (1 ORT worker × ${threads} threads, batcher, prompt cache) in-process; batched across sessions the same way`,
        loopback: 'everything on 127.0.0.1; the two systems run one after the other at each load',
        // Other work on a shared machine moves these figures: the 1-minute load average before and after.
        loadAverage: `${load0.toFixed(1)} → ${loadavg()[0].toFixed(1)}`,
      },
      runs,
      tokenAgreement: agreement,
      goals: {
        latencyRatioAt1,
        latencyGoal: 1.5,
        latencyMet: latencyRatioAt1 <= 1.5,
        throughputRatioAtMax,
        throughputRatioPerWave,
        throughputGoal: 1,
        throughputMet: throughputRatioAtMax >= 1,
        maxSessions: maxN,
      },
    };
    report(result);
    const json = writeResult('e2e', result);
    const svg = join(RESULTS_DIR, 'e2e.svg');
    writeFileSync(svg, renderE2eChart(result));
    console.log(`\nwrote ${json} and ${svg}`);
    return result;
  } finally {
    await Promise.allSettled([stack?.stop(), mono?.close()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Mean CPU per wave by process over `waves`, or undefined where a wave has no reading. */
function wavesCpu(
  waves: readonly { wall: number; cpu?: Record<string, CpuUse> }[],
  steps: number,
): Record<string, WaveCpu> | undefined {
  const first = waves[0]?.cpu;
  if (!first || waves.some((w) => !w.cpu)) return undefined;
  const wallS = waves.reduce((a, w) => a + w.wall, 0) / 1000;
  const out: Record<string, WaveCpu> = {};
  for (const part of Object.keys(first)) {
    const uses = waves.map((w) => w.cpu![part]);
    const seconds = uses.reduce((a, u) => a + u.seconds, 0);
    out[part] = {
      seconds: seconds / waves.length,
      msPerStep: (seconds * 1000) / Math.max(1, steps),
      busiestThreadShare: uses.reduce((a, u) => a + u.busiestThread.seconds, 0) / wallS,
      mainThreadShare: uses.reduce((a, u) => a + u.mainThreads, 0) / wallS,
    };
  }
  return out;
}

function report(r: E2eResult): void {
  const m = r.model;
  console.log(
    `\nmodel: ${m.preset} (seeded, int8): ${m.experts} experts top-${m.topK}, each ${m.expertLayers} layers × d${m.expertWidth}; H ${m.hidden}; prompts ~${m.promptTokensMean.toFixed(0)} tokens, ${r.setup.maxTokens} tokens per turn; load average ${r.setup.loadAverage} on ${r.setup.cores} cores`,
  );
  printTable(
    'Throughput and latency (per-session and aggregate tokens/s; TTFT p50; steady step latency mean)',
    ['system', 'sessions', 'tokens', 'agg tok/s', 'per-session tok/s', 'TTFT ms', 'step ms', 'mean batch'],
    r.runs.map((x) => [
      x.system,
      x.sessions,
      x.tokens,
      x.aggregateTokensPerS,
      x.perSessionTokensPerS,
      x.ttftMs,
      x.stepMs,
      x.meanBatch,
    ]),
  );
  printTable(
    'Per-step latency split (ms, mean over steps after the first)',
    [
      'system',
      'sessions',
      'edge compute',
      'persist',
      'network',
      'GPU queue',
      'GPU compute',
      'tier other',
      'other',
      'step',
    ],
    r.runs.map((x) => [
      x.system,
      x.sessions,
      x.split.edgeMs,
      x.split.persistMs,
      x.split.networkMs,
      x.split.queueMs,
      x.split.computeMs,
      x.split.tierOtherMs,
      x.split.otherMs,
      x.stepMs,
    ]),
  );
  const withCpu = r.runs.filter((x) => x.cpu && x.sessions > 1);
  if (withCpu.length)
    printTable(
      'CPU per wave by process (from /proc): seconds, ms per session-step, busiest thread (the ORT worker) as a share of the wave',
      ['system', 'sessions', 'process', 'CPU s / wave', 'CPU ms / step', 'busiest thread', 'main thread(s)'],
      withCpu.flatMap((x) =>
        Object.entries(x.cpu!).map(([part, c]) => [
          x.system,
          x.sessions,
          part,
          c.seconds,
          c.msPerStep,
          `${(c.busiestThreadShare * 100).toFixed(0)}%`,
          `${(c.mainThreadShare * 100).toFixed(0)}%`,
        ]),
      ),
    );
  console.log(
    `\nsame tokens in both systems: ${r.tokenAgreement.same} of ${r.tokenAgreement.total} sessions`,
  );
  const g = r.goals;
  console.log(
    `\ngoals: step latency at 1 session ${g.latencyRatioAt1.toFixed(2)}× the monolith (goal ≤ ${g.latencyGoal}×: ${g.latencyMet ? 'met' : 'NOT met'}); ` +
      `aggregate throughput at ${g.maxSessions} sessions ${g.throughputRatioAtMax.toFixed(2)}× the monolith over all waves ` +
      `(per wave pair ${g.throughputRatioPerWave.map((x) => x.toFixed(2)).join(', ')}; goal ≥ ${g.throughputGoal}×: ${g.throughputMet ? 'met' : 'NOT met'})`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
