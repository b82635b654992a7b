// The GPU tier under load, side by side in one run on r1-seed experts (DESIGN.md §1 sizes):
//   A. per-step cost with the prompt cache vs recomputing the prompt, at prompt length 256;
//   B. aggregate expert-step throughput and p50/p99 latency at 1, 16 and 64 concurrent sessions, batched
//      (max batch 64) vs unbatched (max batch 1), through the real server process over HTTP;
//   C. achieved GFLOP/s at batch 64 as a share of one large float32 MatMul on the same runtime (with and
//      without the time the worker spends copying the rows' caches into the step graph's inputs);
//   D. --compute int8-dynamic against f32 for the same compute runs.
// `npx tsx bench/gpu-tier.ts` or `npm run bench -- gpu-tier`; JSON goes to bench/results/gpu-tier.json.
// On a GPU machine: `npx tsx bench/gpu-tier.ts --provider webgpu` (or cuda), JSON to gpu-tier-webgpu.json;
// every run, the MatMul ceiling included, then goes through that provider.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import {
  GraphBuilder,
  preset,
  promptDigest,
  Rng,
  type ExpertCall,
  type ModelConfig,
} from '@switchyard/shared';
import { GpuExpertClient, TierHttp } from '../gpu-backend/src/client.ts';
import { sampleH, samplePrompt } from '../gpu-backend/src/samples.ts';
import type { PrefillResult, PromptKv, StepResult } from '../gpu-backend/src/jobs.ts';
import { WorkerPool } from '../gpu-backend/src/worker-pool.ts';
import {
  benchProvider,
  printTable,
  quantile,
  seededExpertShard,
  writeResult,
  type BenchProvider,
} from './lib.ts';

const BIN = fileURLToPath(new URL('../gpu-backend/bin/switchyard-gpu.mjs', import.meta.url));
const SECRET = 'bench-secret';
const EXPERTS = [0, 1, 2, 3]; // r1-seed routes top-4: every session step asks for four experts
const GATES = [0.4, 0.3, 0.2, 0.1];
/** Prompts in the batched-prefill measurement: what 64 sessions at top-4 of 16 experts queue per expert. */
const PREFILL_BATCH = 16;

export interface BenchOptions {
  /** Prompt length for section A (default 256). */
  cachePromptLength?: number;
  /** Prompt length for the throughput runs (default 64, plus a 64-session run at 256). */
  throughputPromptLength?: number;
  loads?: number[];
  /** Measured seconds per load (default 4). */
  seconds?: number;
  /** Also run 64 sessions at the section A prompt length (slow: 256 prefills per server). Default false. */
  longPromptLoad?: boolean;
  seed?: number;
  /** The execution provider of every run (default cpu). */
  provider?: BenchProvider;
  /** Side of the square MatMul ceiling (default 1024 on CPU, 4096 on a GPU provider). */
  matmulN?: number;
}

interface Server {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

function startServer(model: string, args: string[]): Promise<Server> {
  const proc = spawn(process.execPath, [BIN, '--model', model, '--port', '0', '--secret', SECRET, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`switchyard-gpu exited with code ${code}:\n${err}`)));
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m)
        resolve({
          url: m[1],
          proc,
          stop: () =>
            new Promise<void>((r) => {
              proc.removeAllListeners('exit');
              proc.once('exit', () => r());
              proc.kill('SIGTERM');
            }),
        });
    });
  });
}

/** Floating-point operations of one expert step row (multiply-adds count 2) at prompt length L. */
export function stepFlops(c: ModelConfig, L: number): number {
  const { width: D, layers, ffn: F } = c.experts;
  const H = c.controller.hidden;
  const perLayer = 2 * (3 * D * D + D * D + 2 * D * F) + 2 * 2 * D * (L + 1);
  return 2 * H * D + layers * perLayer + 2 * D * H;
}

async function call(sessionId: string, step: number, tokens: number[], H: number): Promise<ExpertCall> {
  return {
    sessionId,
    requestId: `r${step}`,
    step,
    prompt: { tokens, digest: await promptDigest(tokens) },
    experts: EXPERTS,
    gates: GATES,
    h: sampleH(step, H),
  };
}

const median = (xs: number[]) => quantile(xs, 0.5);

// ------------------------------------------------------------------------------------------- A

export interface CacheResult {
  promptLength: number;
  /** One expert step served from the prompt cache (HTTP round trip included). */
  cachedStepMs: number;
  /** The same step for a session the tier has no cache for: prefill of the prompt, then the step. */
  recomputeStepMs: number;
  /** The KServe stateless expert-0 model (prefill and step in one graph), B = 1. */
  statelessStepMs: number;
  speedup: number;
}

async function cacheVsRecompute(server: Server, c: ModelConfig, L: number): Promise<CacheResult> {
  const H = c.controller.hidden;
  const tokens = samplePrompt(1, L);
  const client = new GpuExpertClient({ url: server.url, secret: SECRET });
  const one = async (sessionId: string, step: number) =>
    client.runExperts({ ...(await call(sessionId, step, tokens, H)), experts: [0], gates: [1] });
  await one('cached', 0);
  const cached: number[] = [];
  for (let i = 1; i <= 30; i++) {
    const t0 = performance.now();
    await one('cached', i);
    cached.push(performance.now() - t0);
  }
  const recompute: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    await one(`fresh-${i}`, 1); // a new session: the tier prefills from the tokens sent up front
    recompute.push(performance.now() - t0);
    await client.dropSession(`fresh-${i}`);
  }
  const http = new TierHttp(server.url, SECRET);
  const tok = BigInt64Array.from(tokens, BigInt);
  const h = sampleH(7, H);
  const head = new TextEncoder().encode(
    JSON.stringify({
      inputs: [
        {
          name: 'tokens',
          datatype: 'INT64',
          shape: [1, L],
          parameters: { binary_data_size: tok.byteLength },
        },
        { name: 'prompt_len', datatype: 'INT64', shape: [1], data: [L] },
        { name: 'h', datatype: 'FP32', shape: [1, H], parameters: { binary_data_size: h.byteLength } },
      ],
      outputs: [{ name: 'y', parameters: { binary_data: true } }],
    }),
  );
  const body = new Uint8Array(head.length + tok.byteLength + h.byteLength);
  body.set(head);
  body.set(new Uint8Array(tok.buffer), head.length);
  body.set(new Uint8Array(h.buffer), head.length + tok.byteLength);
  const stateless: number[] = [];
  for (let i = 0; i < 8; i++) {
    const t0 = performance.now();
    const res = await http.request('POST', '/v2/models/expert-0/infer', body, {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(head.length),
    });
    if (!res.ok) throw new Error(`KServe infer: HTTP ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
    if (i > 0) stateless.push(performance.now() - t0);
  }
  const cachedStepMs = median(cached);
  const recomputeStepMs = median(recompute);
  return {
    promptLength: L,
    cachedStepMs,
    recomputeStepMs,
    statelessStepMs: median(stateless),
    speedup: recomputeStepMs / cachedStepMs,
  };
}

// ------------------------------------------------------------------------------------------- B

export interface LoadResult {
  mode: 'batched' | 'unbatched';
  sessions: number;
  promptLength: number;
  requests: number;
  /** Expert rows per second (each session step asks for four experts). */
  expertStepsPerS: number;
  p50Ms: number;
  p99Ms: number;
  /** Mean rows per batched run, from the server's metrics. */
  meanBatch: number;
  /** FLOPs per second while the worker computed (batch run time only), from the server's metrics. */
  computeGflops: number;
}

async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    const x = /^(\w+)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (x) m.set(x[1], (m.get(x[1]) ?? 0) + Number(x[2]));
  }
  return m;
}

async function load(
  server: Server,
  mode: LoadResult['mode'],
  c: ModelConfig,
  sessions: number,
  L: number,
  seconds: number,
  tag: string,
): Promise<LoadResult> {
  const H = c.controller.hidden;
  const client = new GpuExpertClient({ url: server.url, secret: SECRET });
  const ids = Array.from({ length: sessions }, (_, i) => `${tag}-${sessions}-${i}`);
  const prompts = ids.map((_, i) => samplePrompt(1000 + i, L));
  const calls = await Promise.all(ids.map((id, i) => call(id, 0, prompts[i], H)));
  // Warm-up: every session's first step prefills its four experts; not measured.
  await Promise.all(calls.map((k) => client.runExperts(k)));
  const before = await scrape(server.url);
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    calls.map(async (k) => {
      for (let step = 1; performance.now() < end; step++) {
        const s = performance.now();
        await client.runExperts({ ...k, requestId: `r${step}`, step });
        latencies.push(performance.now() - s);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const after = await scrape(server.url);
  const d = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
  const rows = d('switchyard_gpu_batch_size_sum');
  await Promise.all(ids.map((id) => client.dropSession(id)));
  return {
    mode,
    sessions,
    promptLength: L,
    requests: latencies.length,
    expertStepsPerS: (latencies.length * EXPERTS.length) / elapsed,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    meanBatch: rows / d('switchyard_gpu_batch_size_count'),
    computeGflops: (rows * stepFlops(c, L)) / d('switchyard_gpu_batch_compute_seconds_sum') / 1e9,
  };
}

// ------------------------------------------------------------------------------------------- C

/** Best and median of the timed runs, in ms, and the FLOP rate at each. */
export interface Timing {
  bestMs: number;
  medianMs: number;
  bestGflops: number;
  medianGflops: number;
}

export interface EngineResult {
  threads: number;
  /** One n³ float32 MatMul session in onnxruntime-node on the same provider: the runtime's ceiling. */
  matmul: Timing;
  matmulN: number;
  /** One batched step of 64 rows at the throughput prompt length, in the server's worker code. */
  step64: Timing & { rows: number; promptLength: number; packMedianMs: number };
  /** One step of one row at the section A prompt length, from the prompt cache. */
  step1: Timing & { promptLength: number; packMedianMs: number };
  /** The prefill of that prompt (what a step without the cache has to redo). */
  prefill: Timing & { promptLength: number };
  /** One prompt at the throughput length alone, against PREFILL_BATCH of them in one run (per prompt). */
  prefillBatch: {
    prompts: number;
    promptLength: number;
    single: Timing;
    perPromptBatched: Timing;
    /** single / perPromptBatched, medians. */
    speedup: number;
  };
  /** step64 GFLOP/s over MatMul GFLOP/s, best against best and median against median. */
  shareBest: number;
  shareMedian: number;
  /** The same without the time the worker spent copying the rows' caches into the graph inputs. */
  shareMedianGraphOnly: number;
  /** (prefill + step1) / step1, medians: the prompt cache's saving in compute alone. */
  cacheSpeedup: number;
  /** The same runs with --compute int8-dynamic (int8 weights times int8 activations), interleaved. */
  int8Dynamic: { step64: Timing; step1: Timing; prefill: Timing; cacheSpeedup: number };
}

function matMulSession(n: number, threads: number, provider: BenchProvider) {
  const g = new GraphBuilder();
  const a = g.input('a', 'float32', [n, n]);
  const rng = new Rng(3);
  const b = g.f32(
    'b',
    Float32Array.from({ length: n * n }, () => rng.normal()),
    [n, n],
  );
  g.output(g.op('MatMul', [a, b]), 'c', 'float32', [n, n]);
  return ort.InferenceSession.create(g.build({ graphName: 'matmul', doc: 'bench' }), {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
}

function timing(ms: number[], flop: number): Timing {
  const t = ms.slice(2); // the first two warm up sessions and buffers
  const best = Math.min(...t);
  const med = median(t);
  return { bestMs: best, medianMs: med, bestGflops: flop / best / 1e6, medianGflops: flop / med / 1e6 };
}

/**
 * Compute without HTTP: the MatMul ceiling, the batch-64 step, a single cached step and a prefill, measured
 * round-robin in the same process so that load from elsewhere on the machine hits them alike. The expert
 * runs go through the server's own worker code (WorkerPool) and are timed inside the worker.
 */
async function engine(
  model: string,
  c: ModelConfig,
  threads: number,
  Lt: number,
  Lc: number,
  provider: BenchProvider,
  n: number,
): Promise<EngineResult> {
  const rows = 64;
  const bytes = readFileSync(model);
  const weights = new Uint8Array(new SharedArrayBuffer(bytes.length));
  weights.set(bytes);
  const start = (compute: 'f32' | 'int8-dynamic') =>
    WorkerPool.start({ size: 1, weights, experts: [0], provider, threads, compute });
  const pool = await start('f32');
  const pool8 = await start('int8-dynamic');
  const session = await matMulSession(n, threads, provider);
  try {
    const prefillRun = async (p: WorkerPool, prompts: number[][]) => {
      const r = await p.run({ kind: 'prefill', expert: 0, prompts: prompts.map((t) => Int32Array.from(t)) });
      return { caches: (r.result as PrefillResult).caches, ms: r.computeUs / 1000 };
    };
    const prefill = async (tokens: number[]) => {
      const { caches, ms } = await prefillRun(pool, [tokens]);
      return { cache: caches[0], ms };
    };
    const caches: PromptKv[] = [];
    for (let i = 0; i < rows; i++) caches.push((await prefill(samplePrompt(500 + i, Lt))).cache);
    const long = samplePrompt(1, Lc);
    const longCache = (await prefill(long)).cache;
    // Sessions' prefills of one expert at the throughput prompt length, as the tier batches them.
    const short = Array.from({ length: PREFILL_BATCH }, (_, i) => samplePrompt(900 + i, Lt));
    const H = c.controller.hidden;
    const h = new Float32Array(rows * H);
    for (let i = 0; i < rows; i++) h.set(sampleH(i, H), i * H);
    const rng = new Rng(4);
    const feeds = {
      a: new ort.Tensor(
        'float32',
        Float32Array.from({ length: n * n }, () => rng.normal()),
        [n, n],
      ),
    };
    const t = {
      mm: [] as number[],
      s64: [] as number[],
      s1: [] as number[],
      pre: [] as number[],
      pack64: [] as number[],
      pack1: [] as number[],
      preShort: [] as number[],
      preBatch: [] as number[],
    };
    const i8 = { s64: [] as number[], s1: [] as number[], pre: [] as number[], pack: [] as number[] };
    const step = async (p: WorkerPool, rows: PromptKv[], hs: Float32Array, ms: number[], pack: number[]) => {
      const r = await p.run({ kind: 'step', expert: 0, h: hs, rows });
      ms.push(r.computeUs / 1000);
      pack.push((r.result as StepResult).packUs / 1000);
    };
    for (let i = 0; i < 9; i++) {
      const t0 = performance.now();
      await session.run(feeds);
      t.mm.push(performance.now() - t0);
      await step(pool, caches, h, t.s64, t.pack64);
      await step(pool, [longCache], h.subarray(0, H), t.s1, t.pack1);
      t.pre.push((await prefill(long)).ms);
      t.preShort.push((await prefill(short[i % PREFILL_BATCH])).ms);
      t.preBatch.push((await prefillRun(pool, short)).ms / PREFILL_BATCH);
      // The f32 caches serve the int8-dynamic step as well: only their layout matters for its timing.
      await step(pool8, caches, h, i8.s64, i8.pack);
      await step(pool8, [longCache], h.subarray(0, H), i8.s1, i8.pack);
      i8.pre.push((await prefillRun(pool8, [long])).ms);
    }
    const { width: D, layers, ffn: F } = c.experts;
    // Prefill: every prompt row through every layer, plus L×L attention; of the last layer only the
    // Q/K/V projection (the cache needs its keys and values, nothing after them).
    const prefillFlops = (L: number) =>
      (layers - 1) * (L * 2 * (4 * D * D + 2 * D * F) + 2 * 2 * L * L * D) + L * 2 * 3 * D * D;
    const prefillFlop = prefillFlops(Lc);
    const matmul = timing(t.mm, 2 * n ** 3);
    const step64 = {
      rows,
      promptLength: Lt,
      ...timing(t.s64, rows * stepFlops(c, Lt)),
      packMedianMs: median(t.pack64.slice(2)),
    };
    const step1 = {
      promptLength: Lc,
      ...timing(t.s1, stepFlops(c, Lc)),
      packMedianMs: median(t.pack1.slice(2)),
    };
    // Per run, graph time = compute − packing, so the medians of the differences, not of each.
    const graph64 = median(t.s64.slice(2).map((x, i) => x - t.pack64[i + 2]));
    const pre = { promptLength: Lc, ...timing(t.pre, prefillFlop) };
    const pre8 = timing(i8.pre, prefillFlop);
    const preShort = timing(t.preShort, prefillFlops(Lt));
    const preBatch = timing(t.preBatch, prefillFlops(Lt));
    const step1i8 = timing(i8.s1, stepFlops(c, Lc));
    return {
      threads,
      matmul,
      matmulN: n,
      step64,
      step1,
      prefill: pre,
      prefillBatch: {
        prompts: PREFILL_BATCH,
        promptLength: Lt,
        single: preShort,
        perPromptBatched: preBatch,
        speedup: preShort.medianMs / preBatch.medianMs,
      },
      shareBest: step64.bestGflops / matmul.bestGflops,
      shareMedian: step64.medianGflops / matmul.medianGflops,
      shareMedianGraphOnly: (rows * stepFlops(c, Lt)) / graph64 / 1e6 / matmul.medianGflops,
      cacheSpeedup: (pre.medianMs + step1.medianMs) / step1.medianMs,
      int8Dynamic: {
        step64: timing(i8.s64, rows * stepFlops(c, Lt)),
        step1: step1i8,
        prefill: pre8,
        cacheSpeedup: (pre8.medianMs + step1i8.medianMs) / step1i8.medianMs,
      },
    };
  } finally {
    await session.release();
    await pool.close();
    await pool8.close();
  }
}

// -------------------------------------------------------------------------------------------

export interface GpuTierBenchResult {
  model: { preset: string; experts: number[]; provider: BenchProvider; threads: number; cores: number };
  cache: CacheResult;
  loads: LoadResult[];
  engine: EngineResult;
  /** os.loadavg() before and after: this machine is shared, and the figures move with its load. */
  load: { before: number[]; after: number[] };
  /** The 64-session batched load at the throughput prompt length, as FLOP rates. */
  batch64: { promptLength: number; computeGflops: number; endToEndGflops: number };
  goals: {
    cacheSpeedup20x: boolean;
    cacheSpeedup20xOverHttp: boolean;
    batching4xAt64: boolean;
    gflops60pct: boolean;
  };
}

export async function run(o: BenchOptions = {}): Promise<GpuTierBenchResult> {
  const Lc = o.cachePromptLength ?? 256;
  const Lt = o.throughputPromptLength ?? 64;
  const loads = o.loads ?? [1, 16, 64];
  const seconds = o.seconds ?? 4;
  const threads = availableParallelism();
  const provider = o.provider ?? 'cpu';
  const matmulN = o.matmulN ?? (provider === 'cpu' ? 1024 : 4096);
  const loadBefore = loadavg();
  const config = preset('r1-seed');
  console.log(
    `gpu-tier: r1-seed experts ${EXPERTS.join(',')}, provider ${provider}, ${threads} intra-op threads, building the model...`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-'));
  const model = join(dir, 'r1-seed-experts.safetensors');
  writeFileSync(model, seededExpertShard(config, o.seed ?? 1, EXPERTS));
  const common = [
    '--provider',
    provider,
    '--threads',
    String(threads),
    '--cache-bytes',
    '4GiB',
    '--queue-limit',
    '4096',
  ];
  try {
    const results: LoadResult[] = [];
    // Both servers stay up and each load runs on one and then the other, back to back, so that changes in
    // the machine's load over the run hit both modes alike.
    console.log(
      'gpu-tier: starting an unbatched (max batch 1) and a batched (max batch 64, max wait 2 ms) server...',
    );
    const unbatched = await startServer(model, [...common, '--max-batch', '1', '--max-wait-ms', '0']);
    const batched = await startServer(model, [...common, '--max-batch', '64', '--max-wait-ms', '2']);
    let cache: CacheResult;
    try {
      console.log('gpu-tier: cache vs recompute...');
      cache = await cacheVsRecompute(unbatched, config, Lc);
      const plan = loads.map((n) => [n, Lt]);
      if (o.longPromptLoad) plan.push([64, Lc]);
      for (const [n, L] of plan) {
        console.log(`gpu-tier: ${n} sessions, prompt ${L}...`);
        results.push(await load(unbatched, 'unbatched', config, n, L, seconds, `u${L}`));
        results.push(await load(batched, 'batched', config, n, L, seconds, `b${L}`));
      }
    } finally {
      await Promise.all([unbatched.stop(), batched.stop()]);
    }
    console.log('gpu-tier: engine without HTTP: MatMul ceiling, batch-64 step, cached step, prefill...');
    const eng = await engine(model, config, threads, Lt, Lc, provider, matmulN);

    const at = (mode: LoadResult['mode'], n: number, L = Lt) =>
      results.find((r) => r.mode === mode && r.sessions === n && r.promptLength === L)!;
    const b64 = at('batched', 64);
    const batch64 = {
      promptLength: Lt,
      computeGflops: b64.computeGflops,
      endToEndGflops: (b64.expertStepsPerS * stepFlops(config, Lt)) / 1e9,
    };
    const result: GpuTierBenchResult = {
      model: { preset: 'r1-seed', experts: EXPERTS, provider, threads, cores: availableParallelism() },
      cache,
      loads: results,
      engine: eng,
      load: { before: loadBefore, after: loadavg() },
      batch64,
      goals: {
        cacheSpeedup20x: eng.cacheSpeedup >= 20,
        cacheSpeedup20xOverHttp: cache.speedup >= 20,
        batching4xAt64: b64.expertStepsPerS / at('unbatched', 64).expertStepsPerS >= 4,
        gflops60pct: eng.shareMedian >= 0.6,
      },
    };
    report(result, at);
    const path = writeResult(provider === 'cpu' ? 'gpu-tier' : `gpu-tier-${provider}`, result);
    console.log(`\nwrote ${path}`);
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(
  r: GpuTierBenchResult,
  at: (m: LoadResult['mode'], n: number, L?: number) => LoadResult,
): void {
  const c = r.cache;
  printTable(
    `A. per expert step at prompt length ${c.promptLength} (HTTP round trip, one session, one expert)`,
    ['path', 'ms / step', 'vs cached'],
    [
      ['prompt cache hit', c.cachedStepMs, '1×'],
      ['recompute: new session, prefill + step', c.recomputeStepMs, `${c.speedup.toFixed(1)}×`],
      [
        'recompute: KServe stateless expert-0',
        c.statelessStepMs,
        `${(c.statelessStepMs / c.cachedStepMs).toFixed(1)}×`,
      ],
    ],
  );
  printTable(
    'B. aggregate throughput, 4 experts per session step (expert steps/s), latency per session step',
    [
      'prompt',
      'sessions',
      'mode',
      'expert steps/s',
      'batched/unbatched',
      'p50 ms',
      'p99 ms',
      'mean batch',
      'compute GFLOP/s',
    ],
    r.loads.map((x) => [
      x.promptLength,
      x.sessions,
      x.mode,
      x.expertStepsPerS,
      x.mode === 'batched'
        ? `${(x.expertStepsPerS / at('unbatched', x.sessions, x.promptLength).expertStepsPerS).toFixed(2)}×`
        : '',
      x.p50Ms,
      x.p99Ms,
      x.meanBatch,
      x.computeGflops,
    ]),
  );
  const e = r.engine;
  printTable(
    `A'. the same in compute alone (worker time, no HTTP), prompt length ${e.step1.promptLength}`,
    ['run', 'best ms', 'median ms', 'vs cached step'],
    [
      ['cached step (1 row)', e.step1.bestMs, e.step1.medianMs, '1×'],
      ['  of which copying its cache into the graph input', '', e.step1.packMedianMs, ''],
      ['prefill', e.prefill.bestMs, e.prefill.medianMs, ''],
      [
        'prefill + step (no cache)',
        '',
        e.prefill.medianMs + e.step1.medianMs,
        `${e.cacheSpeedup.toFixed(1)}×`,
      ],
    ],
  );
  const pb = e.prefillBatch;
  printTable(
    `A''. prefill of sessions' prompts (length ${pb.promptLength}) for one expert: alone vs ${pb.prompts} in one batched run`,
    ['run', 'median ms per prompt', 'median GFLOP/s', 'speedup'],
    [
      ['one prompt per run', pb.single.medianMs, pb.single.medianGflops, '1×'],
      [
        `${pb.prompts} prompts per run`,
        pb.perPromptBatched.medianMs,
        pb.perPromptBatched.medianGflops,
        `${pb.speedup.toFixed(2)}×`,
      ],
    ],
  );
  printTable(
    `C. GFLOP/s of one batch of ${e.step64.rows} expert steps (prompt ${e.step64.promptLength}) vs one float32 MatMul, onnxruntime-node ${r.model.provider}, ${e.threads} threads`,
    ['measure', 'best GFLOP/s', 'median GFLOP/s', 'median share'],
    [
      [`MatMul ${e.matmulN}³`, e.matmul.bestGflops, e.matmul.medianGflops, '100%'],
      [
        `batched step, ${e.step64.rows} rows (server worker code)`,
        e.step64.bestGflops,
        e.step64.medianGflops,
        `${(100 * e.shareMedian).toFixed(0)}%`,
      ],
      [
        `  the same, less copying the caches into the inputs (median ${e.step64.packMedianMs.toFixed(1)} ms)`,
        '',
        e.shareMedianGraphOnly * e.matmul.medianGflops,
        `${(100 * e.shareMedianGraphOnly).toFixed(0)}%`,
      ],
      [
        '64 sessions through the server: worker compute time',
        '',
        r.batch64.computeGflops,
        `${((100 * r.batch64.computeGflops) / e.matmul.medianGflops).toFixed(0)}%`,
      ],
      [
        '64 sessions through the server: end to end',
        '',
        r.batch64.endToEndGflops,
        `${((100 * r.batch64.endToEndGflops) / e.matmul.medianGflops).toFixed(0)}%`,
      ],
    ],
  );
  const q = e.int8Dynamic;
  const vs = (name: string, f: number, i8: number) => [name, f, i8, `${(f / i8).toFixed(2)}×`];
  printTable(
    '--compute int8-dynamic (int8 weights × int8 activations, ~1% off the reference) vs f32, same runs interleaved',
    ['run', 'f32 median ms', 'int8-dynamic median ms', 'f32 / int8-dynamic'],
    [
      vs(`cached step, 1 row, prompt ${e.step1.promptLength}`, e.step1.medianMs, q.step1.medianMs),
      vs(
        `batched step, ${e.step64.rows} rows, prompt ${e.step64.promptLength}`,
        e.step64.medianMs,
        q.step64.medianMs,
      ),
      vs(`prefill, prompt ${e.prefill.promptLength}`, e.prefill.medianMs, q.prefill.medianMs),
      ['(prefill + step) / step', `${e.cacheSpeedup.toFixed(1)}×`, `${q.cacheSpeedup.toFixed(1)}×`, ''],
    ],
  );
  console.log(
    `\nload average (1 min) before ${r.load.before[0].toFixed(1)}, after ${r.load.after[0].toFixed(1)} on ${r.model.cores} cores`,
  );
  console.log(
    `goals: cache ≥ 20× ${r.goals.cacheSpeedup20x ? 'met' : 'NOT met'} in compute, ${r.goals.cacheSpeedup20xOverHttp ? 'met' : 'NOT met'} over HTTP; batching ≥ 4× at 64 ${r.goals.batching4xAt64 ? 'met' : 'NOT met'}; ` +
      `≥ 60% of MatMul ${r.goals.gflops60pct ? 'met' : 'NOT met'}`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { long: { type: 'boolean' }, provider: { type: 'string' }, seconds: { type: 'string' } },
  });
  await run({
    longPromptLoad: values.long,
    provider: benchProvider('gpu-tier', values.provider),
    seconds: values.seconds === undefined ? undefined : Number(values.seconds),
  });
}
