// The edge's per-step compute, measured inside workerd (Miniflare), side by side in one run:
// - the r1-seed edge step (controller + gate + STM read/write + head, STM half full) on wasm-simd dense int8
//   (the defaults, and with the head in auto or exact instead of precise), wasm-simd 2:4, ort-web and plain
//   TypeScript (shared's ReferenceEdge);
// - the int8 mat-vec alone at 2048×896 (r1-seed's lstm.w_ih) on the same four, wasm-simd in each int8 mode;
// - the output head alone (260×1024) in the modes it may run in;
// - a measured roofline: read bandwidth at L1/L2/L3-sized working sets and SIMD multiply-add peaks
//   (wasm/assembly/roofline.ts, compiled here);
// - the first request of a fresh workerd process with the wasm-simd backend, weights included: the r1-seed
//   weights in a minimal Worker, and the real edge Worker (its bundled weights) answering /health;
// - the edge Worker's bundle, raw and gzipped, default and with ort-web.
//
// Timing: each measurement is one request that runs an operation n times (~120 ms); the Worker reads
// performance.now() around the loop, and this side times the request and subtracts an empty request.
// workerd's clock has a 1 ms grain here (in production it is frozen during synchronous execution); a
// sample uses it where it moved during the loop, else the outside time. Every op runs once per round, so
// load from other processes on the box spreads evenly; medians and the best round are both reported.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { preset } from '@switchyard/shared/config';
import { initRandom } from '@switchyard/shared/init';
import { writeWeights } from '@switchyard/shared/weights/index';
import asc from 'assemblyscript/asc';
import type { Miniflare } from 'miniflare';
import { ensureBuilt } from '../wasm/src/node-loader.ts';
import { printTable, quantile, writeResult } from './lib.ts';
import { bundle, modulesOf, startWorker, wranglerBundle, type WorkerModule } from './workerd/bundle.ts';
import {
  BANDWIDTH_SETS,
  bandwidthReps,
  HEAD_OPS,
  HEAD_SHAPE,
  MATVEC_OPS,
  MATVEC_SHAPE,
  PEAK_ITERS,
  PEAK_MACS_PER_ITER,
  ROOF_OPS,
  STEP_OPS,
  type BandwidthSet,
  type PeakOp,
  type RunResponse,
} from './workerd/ops.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const TARGET_MS = 120; // per measurement
const ROUNDS = 7;
const FRESH_STARTS = 3;

// ---------------------------------------------------------------------------------------------- inputs

function r1EdgeFiles(): { int8: Uint8Array; sparse: Uint8Array } {
  const config = preset('r1-seed');
  const params = initRandom(config, 11, (s) => s.tier === 'edge');
  return {
    int8: writeWeights(config, params, { scheme: 'int8', shard: { kind: 'edge' } }),
    sparse: writeWeights(config, params, { scheme: 'int8-2:4', shard: { kind: 'edge' } }),
  };
}

async function compileRoofline(): Promise<Uint8Array> {
  let bytes: Uint8Array | undefined;
  const { error, stderr } = await asc.main(
    [
      'wasm/assembly/roofline.ts',
      '-O3',
      '--runtime',
      'stub',
      '--noAssert',
      '--use',
      'abort=',
      '--enable',
      'simd',
      '--enable',
      'relaxed-simd',
      '--outFile',
      'roofline.wasm',
      '--baseDir',
      ROOT,
    ],
    {
      writeFile(name: string, contents: Uint8Array | string) {
        if (name.endsWith('.wasm') && typeof contents !== 'string') bytes = contents;
      },
    },
  );
  if (error || !bytes)
    throw new Error(
      `roofline: expected asc to compile wasm/assembly/roofline.ts, found ${error?.message}\n${stderr}`,
    );
  return bytes;
}

// ---------------------------------------------------------------------------------------------- timing

interface Sample {
  /** Per call, from this side: (request − empty request) / n. */
  outsideMs: number;
  /** Per call, by workerd's clock around the loop. */
  insideMs: number;
  clockMoved: boolean;
}

async function request(mf: Miniflare, op: string, n: number): Promise<{ wall: number; body: RunResponse }> {
  const t0 = performance.now();
  const res = await mf.dispatchFetch('http://bench/run', { method: 'POST', body: JSON.stringify({ op, n }) });
  const text = await res.text();
  const wall = performance.now() - t0;
  if (res.status !== 200)
    throw new Error(`bench worker ${op}×${n}: expected 200, found ${res.status}\n${text}`);
  return { wall, body: JSON.parse(text) as RunResponse };
}

/** Request overhead: the median of a few empty requests. */
async function baseline(mf: Miniflare): Promise<number> {
  const ts: number[] = [];
  for (let i = 0; i < 5; i++) ts.push((await request(mf, 'empty', 0)).wall);
  return quantile(ts, 0.5);
}

/**
 * The n that makes one request take about TARGET_MS: doubling from 1 until a request takes half of it,
 * after a warm-up request; twice, keeping the larger n, so that one request slowed by other load on the box
 * does not leave an op with too few calls per measurement.
 */
async function calibrate(mf: Miniflare, op: string): Promise<number> {
  await request(mf, op, 2);
  let most = 1;
  for (let pass = 0; pass < 2; pass++) {
    let n = 1;
    for (;;) {
      const { wall } = await request(mf, op, n);
      if (wall >= TARGET_MS / 2 || n >= 1 << 22) {
        most = Math.max(most, Math.round((n * TARGET_MS) / wall));
        break;
      }
      n *= 2;
    }
  }
  return Math.max(1, most);
}

interface OpResult {
  op: string;
  n: number;
  /** Median per-call milliseconds over the rounds, by the clock chosen. */
  ms: number;
  minMs: number;
  maxMs: number;
  samples: Sample[];
}

interface Throughput {
  results: Map<string, OpResult>;
  /** Which clock the per-call figures come from, in words. */
  clock: string;
  /** Median of outside / inside per-call time over every sample: how well the two clocks agree. */
  outsideOverInside: number;
  /** Whether every performance.now() reading in the Worker was a whole number of milliseconds. */
  wholeMilliseconds: boolean;
  /** Ops with a loop over which workerd's clock stood still, and how often. */
  clockStill: Record<string, number>;
}

/**
 * Calibrates each op to ~TARGET_MS per request, then runs every op once per round, ROUNDS rounds, with an
 * empty-request baseline per round. A sample takes workerd's clock when it moved during the loop (a loop
 * spans ~TARGET_MS, so its 1 ms grain costs ~1%), else the outside time minus the baseline.
 */
async function measureThroughput(mf: Miniflare, ops: readonly string[]): Promise<Throughput> {
  const known = (await (await mf.dispatchFetch('http://bench/ops')).json()) as string[];
  const missing = ops.filter((o) => !known.includes(o));
  if (missing.length)
    throw new Error(`bench worker: expected ops ${missing.join(', ')}, found ${known.join(', ')}`);
  const ns = new Map<string, number>();
  for (const op of ops) ns.set(op, await calibrate(mf, op));
  const samples = new Map<string, Sample[]>(ops.map((o) => [o, []]));
  let wholeMilliseconds = true;
  for (let round = 0; round < ROUNDS; round++) {
    const base = await baseline(mf);
    for (const op of ops) {
      const n = ns.get(op)!;
      const { wall, body } = await request(mf, op, n);
      wholeMilliseconds &&= Number.isInteger(body.clock.first) && Number.isInteger(body.clock.last);
      samples.get(op)!.push({
        outsideMs: (wall - base) / n,
        insideMs: body.ms / n,
        clockMoved: body.clock.last > body.clock.first,
      });
    }
  }
  const all = [...samples.values()].flat();
  const perCall = (s: Sample) => (s.clockMoved ? s.insideMs : s.outsideMs);
  const clockStill: Record<string, number> = {};
  for (const [op, ss] of samples) {
    const still = ss.filter((s) => !s.clockMoved).length;
    if (still) clockStill[op] = still;
  }
  const results = new Map<string, OpResult>();
  for (const op of ops) {
    const ms = samples.get(op)!.map(perCall);
    results.set(op, {
      op,
      n: ns.get(op)!,
      ms: quantile(ms, 0.5),
      minMs: Math.min(...ms),
      maxMs: Math.max(...ms),
      samples: samples.get(op)!,
    });
  }
  return {
    results,
    clock:
      Object.keys(clockStill).length === 0
        ? "workerd's performance.now() around the loop"
        : "workerd's performance.now() around the loop, or the request time minus an empty request where that clock stood still",
    outsideOverInside: quantile(
      all.filter((s) => s.clockMoved).map((s) => s.outsideMs / s.insideMs),
      0.5,
    ),
    wholeMilliseconds,
    clockStill,
  };
}

// ---------------------------------------------------------------------------------------------- first request

interface FirstRequest {
  worker: string;
  /** new Miniflare() until ready: workerd started, modules compiled, top level evaluated. */
  startMs: number[];
  /** The first request's round trip. */
  firstMs: number[];
  /** A second request, for comparison. */
  secondMs: number[];
}

async function firstRequest(
  worker: string,
  dir: string,
  modules: WorkerModule[],
  url: string,
  bindings: Record<string, string> = {},
): Promise<FirstRequest> {
  const r: FirstRequest = { worker, startMs: [], firstMs: [], secondMs: [] };
  for (let i = 0; i < FRESH_STARTS; i++) {
    const t0 = performance.now();
    const mf = startWorker(dir, modules, bindings);
    await mf.ready;
    const t1 = performance.now();
    const res = await mf.dispatchFetch(url);
    const text = await res.text();
    const t2 = performance.now();
    if (res.status !== 200)
      throw new Error(`${worker} first request: expected 200, found ${res.status}\n${text}`);
    await (await mf.dispatchFetch(url)).text();
    const t3 = performance.now();
    await mf.dispose();
    r.startMs.push(t1 - t0);
    r.firstMs.push(t2 - t1);
    r.secondMs.push(t3 - t2);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------- bundle size

// ---------------------------------------------------------------------------------------------- run

const MATVEC_MACS = MATVEC_SHAPE[0] * MATVEC_SHAPE[1];

export async function run(): Promise<void> {
  const started = performance.now();
  const startLoad = loadavg()[0];
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-edge-bench-'));
  try {
    ensureBuilt();
    const files = r1EdgeFiles();
    const roofline = await compileRoofline();
    const provided = {
      'r1-edge-int8.safetensors': { type: 'Data' as const, contents: files.int8 },
      'r1-edge-24.safetensors': { type: 'Data' as const, contents: files.sparse },
      'roofline.wasm': { type: 'CompiledWasm' as const, contents: roofline },
    };
    const benchModules = await bundle(join(ROOT, 'bench/workerd/worker.ts'), dir, provided);

    // ---- throughput: every op in each round, so that the box's other load spreads evenly over them
    const mf = startWorker(dir, benchModules);
    let tp: Throughput;
    try {
      tp = await measureThroughput(mf, [...STEP_OPS, ...MATVEC_OPS, ...HEAD_OPS, ...ROOF_OPS]);
    } finally {
      await mf.dispose();
    }
    const by = (op: string) => tp.results.get(op)!;
    const us = (op: string) => by(op).ms * 1000;
    const clock = tp.clock;

    // ---- first request and bundle sizes
    const firstModules = await bundle(
      join(ROOT, 'bench/workerd/first-request.ts'),
      join(dir, 'first'),
      provided,
    );
    const firstR1 = await firstRequest(
      'wasm-simd + r1-seed int8 edge weights (4.6 MB)',
      join(dir, 'first'),
      firstModules,
      'http://bench/',
    );
    const defaultOut = join(dir, 'edge-default');
    const ortOut = join(dir, 'edge-ort-web');
    const sizes = [
      wranglerBundle('default (wasm-simd)', defaultOut, []),
      wranglerBundle('ort-web build', ortOut, ['--define', 'SWITCHYARD_ORT_WEB:true']),
    ];
    const firstEdge = await firstRequest(
      'edge Worker, default bundle (tiny weights), GET /health',
      defaultOut,
      modulesOf(defaultOut),
      'http://edge/health',
    );
    const firstOrt = await firstRequest(
      'edge Worker, ort-web build, COMPUTE_BACKEND=ort-web, GET /health',
      ortOut,
      modulesOf(ortOut),
      'http://edge/health',
      { COMPUTE_BACKEND: 'ort-web' },
    );

    // ---- tables (median over the rounds; "best" is the fastest round, the least disturbed by other load)
    const best = (op: string) => by(op).minMs * 1000;
    printTable(
      `r1-seed edge step inside workerd (controller + gate + STM read/write + head; STM 32 of 64), µs per step; ${clock}`,
      ['backend', 'median', 'best', 'worst', 'median / wasm-int8'],
      STEP_OPS.map((op) => [
        op.slice(5),
        us(op),
        best(op),
        by(op).maxMs * 1000,
        us(op) / us('step:wasm-int8'),
      ]),
    );
    const gmacs = (t: number) => MATVEC_MACS / t / 1000;
    printTable(
      `int8 mat-vec ${MATVEC_SHAPE.join('×')} (r1-seed lstm.w_ih) inside workerd`,
      ['implementation', 'µs median', 'GMAC/s median', 'GMAC/s best'],
      MATVEC_OPS.map((op) => [op.slice(7), us(op), gmacs(us(op)), gmacs(best(op))]),
    );
    const headMacs = HEAD_SHAPE[0] * HEAD_SHAPE[1];
    printTable(
      `output head ${HEAD_SHAPE.join('×')} (r1-seed head.w) inside workerd, by int8 mode; the step's default is precise`,
      ['mode', 'µs median', 'µs best', 'GMAC/s median', 'µs median over auto'],
      HEAD_OPS.map((op) => [
        op.slice(5),
        us(op),
        best(op),
        headMacs / us(op) / 1000,
        us(op) - us('head:auto'),
      ]),
    );
    const bw = (set: BandwidthSet, t: number) => (BANDWIDTH_SETS[set] * bandwidthReps(set)) / (t * 1000);
    const peak = (name: PeakOp, t: number) => (PEAK_ITERS * PEAK_MACS_PER_ITER[name]) / (t * 1000);
    const roofRows: Array<[string, number, number]> = [
      ['read bandwidth, 16 KiB set (L1), GB/s', bw('l1', us('bw:l1')), bw('l1', best('bw:l1'))],
      [
        'read bandwidth, 1.75 MiB set (the 2048×896 int8 matrix; L2), GB/s',
        bw('l2', us('bw:l2')),
        bw('l2', best('bw:l2')),
      ],
      ['read bandwidth, 32 MiB set (L3), GB/s', bw('l3', us('bw:l3')), bw('l3', best('bw:l3'))],
      [
        'i32x4.dot_i16x8_s on registers, GMAC/s',
        peak('dot_i16', us('peak:dot_i16')),
        peak('dot_i16', best('peak:dot_i16')),
      ],
      [
        'v128.load + extend_low/high + dot_i16x8_s + add from L1 (the fast kernel mix), GMAC/s',
        peak('load_ext_dot', us('peak:load_ext_dot')),
        peak('load_ext_dot', best('peak:load_ext_dot')),
      ],
      [
        'v128.load (int16 weights) + dot_i16x8_s + add from L1, GMAC/s',
        peak('load16_dot', us('peak:load16_dot')),
        peak('load16_dot', best('peak:load16_dot')),
      ],
      [
        'v128.load + 2 relaxed_dot_i8x16_i7x16_add_s from L1 (the relaxed-dot kernel mix), GMAC/s',
        peak('load_rdot', us('peak:load_rdot')),
        peak('load_rdot', best('peak:load_rdot')),
      ],
      [
        'i32x4.relaxed_dot_i8x16_i7x16_add_s on registers, GMAC/s',
        peak('dot_i8_relaxed', us('peak:dot_i8_relaxed')),
        peak('dot_i8_relaxed', best('peak:dot_i8_relaxed')),
      ],
      [
        'f32x4 mul + add on registers, GMAC/s',
        peak('fma_f32', us('peak:fma_f32')),
        peak('fma_f32', best('peak:fma_f32')),
      ],
    ];
    // int8 weights stream one byte per multiply-add: the matrix's cache level bounds MAC/s by its bytes/s,
    // and the default kernel's own instruction mix (relaxed-dot in workerd) bounds it from the compute side.
    const matvecRoof = Math.min(bw('l2', us('bw:l2')), peak('load_rdot', us('peak:load_rdot')));
    const matvecRoofBest = Math.min(bw('l2', best('bw:l2')), peak('load_rdot', best('peak:load_rdot')));
    roofRows.push([
      'int8 mat-vec roof: min(L2 bytes/s, relaxed-dot kernel-mix peak), GMAC/s',
      matvecRoof,
      matvecRoofBest,
    ]);
    printTable('measured roofline (same workerd, same run)', ['quantity', 'median', 'best'], roofRows);
    const ratio = (slow: string, fast: string) => ({
      median: us(slow) / us(fast),
      best: best(slow) / best(fast),
    });
    const ratios = {
      'edge step: wasm-int8 vs ort-web': ratio('step:ort-web', 'step:wasm-int8'),
      'edge step: wasm-int8 vs plain TypeScript': ratio('step:typescript', 'step:wasm-int8'),
      'edge step: 2:4 vs dense int8': ratio('step:wasm-int8', 'step:wasm-2:4'),
      'edge step: relaxed-simd vs simd build': ratio('step:wasm-int8-simd', 'step:wasm-int8'),
      'edge step: head fast (auto) vs head precise (default)': ratio(
        'step:wasm-int8',
        'step:wasm-int8-head-fast',
      ),
      'edge step: head precise (default) vs head exact': ratio('step:wasm-int8-head-exact', 'step:wasm-int8'),
      'mat-vec: wasm-int8 (auto) vs the same build in fast': ratio(
        'matvec:wasm-int8-fast',
        'matvec:wasm-int8',
      ),
      'mat-vec: wasm-int8 vs ort-web': ratio('matvec:ort-web', 'matvec:wasm-int8'),
      'mat-vec: wasm-int8 vs plain TypeScript': ratio('matvec:typescript', 'matvec:wasm-int8'),
      'mat-vec: 2:4 vs dense int8': ratio('matvec:wasm-int8', 'matvec:wasm-2:4'),
      'mat-vec: wasm-int8 / its roof': {
        median: gmacs(us('matvec:wasm-int8')) / matvecRoof,
        best: gmacs(best('matvec:wasm-int8')) / matvecRoofBest,
      },
    };
    printTable(
      'ratios (speed of the first over the second; > 1: the first is faster)',
      ['ratio', 'median', 'best'],
      Object.entries(ratios).map(([k, v]) => [k, v.median, v.best]),
    );
    const med = (xs: number[]) => quantile(xs, 0.5);
    const firstRow = (f: FirstRequest) => [
      f.worker,
      med(f.startMs),
      med(f.firstMs),
      med(f.startMs.map((x, i) => x + f.firstMs[i])),
      med(f.secondMs),
    ];
    printTable(
      `first request of a fresh workerd process, ms (median of ${FRESH_STARTS} starts)`,
      ['worker', 'process start', 'first request', 'start + first', 'second request'],
      [firstRow(firstR1), firstRow(firstEdge), firstRow(firstOrt)],
    );
    printTable(
      'edge Worker bundle (wrangler deploy --dry-run; .map and README left out)',
      ['variant', 'raw KiB', 'gzip KiB', 'wrangler says'],
      sizes.map((x) => [x.variant, x.rawBytes / 1024, x.gzipBytes / 1024, x.wrangler]),
    );
    const goals: Array<[string, number, '≥' | '≤', number]> = [
      ['int8 mat-vec 2048×896, GMAC/s', gmacs(us('matvec:wasm-int8')), '≥', 15],
      ['edge step median, µs', us('step:wasm-int8'), '≤', 1000],
      ['edge step, × faster than ort-web', ratios['edge step: wasm-int8 vs ort-web'].median, '≥', 3],
      [
        'edge step, × faster than plain TypeScript',
        ratios['edge step: wasm-int8 vs plain TypeScript'].median,
        '≥',
        6,
      ],
      ['2:4, × faster than dense int8 (mat-vec)', ratios['mat-vec: 2:4 vs dense int8'].median, '≥', 1.6],
      ['2:4, × faster than dense int8 (edge step)', ratios['edge step: 2:4 vs dense int8'].median, '≥', 1.6],
      ['first request, r1-seed weights, ms', med(firstR1.firstMs), '≤', 300],
      ['first request, edge Worker, ms', med(firstEdge.firstMs), '≤', 300],
    ];
    const met = ([, v, op, t]: (typeof goals)[number]) => (op === '≤' ? v <= t : v >= t);
    printTable(
      'goals (issue 4), on the medians',
      ['goal', 'measured', 'target', 'met'],
      goals.map((g) => [g[0], g[1], `${g[2]} ${g[3]}`, met(g) ? 'yes' : 'NO']),
    );
    const load = { start: startLoad, end: loadavg()[0] };
    console.log(
      `\nclock check: outside / inside per-call time, median ${tp.outsideOverInside.toFixed(3)}; workerd readings whole milliseconds: ${tp.wholeMilliseconds}; 1-min load average ${load.start.toFixed(2)} → ${load.end.toFixed(2)} on ${cpus().length} CPUs; clock stood still in ${JSON.stringify(tp.clockStill)}`,
    );

    const path = writeResult('edge-compute', {
      timing: clock,
      rounds: ROUNDS,
      targetMsPerMeasurement: TARGET_MS,
      loadAverage: load,
      stepUs: Object.fromEntries(
        STEP_OPS.map((op) => [
          op.slice(5),
          { median: us(op), min: by(op).minMs * 1000, max: by(op).maxMs * 1000, n: by(op).n },
        ]),
      ),
      matvec2048x896: Object.fromEntries(
        MATVEC_OPS.map((op) => [
          op.slice(7),
          { us: us(op), bestUs: by(op).minMs * 1000, gmacs: MATVEC_MACS / us(op) / 1000, n: by(op).n },
        ]),
      ),
      head260x1024: Object.fromEntries(
        HEAD_OPS.map((op) => [
          op.slice(5),
          { us: us(op), bestUs: by(op).minMs * 1000, gmacs: headMacs / us(op) / 1000, n: by(op).n },
        ]),
      ),
      roofline: roofRows.map(([quantity, median, best]) => ({ quantity, median, best })),
      ratios,
      firstRequest: [firstR1, firstEdge, firstOrt],
      bundle: sizes,
      goals: goals.map((g) => ({ goal: g[0], measured: g[1], target: `${g[2]} ${g[3]}`, met: met(g) })),
      clockCheck: {
        outsideOverInside: tp.outsideOverInside,
        wholeMilliseconds: tp.wholeMilliseconds,
        clockStill: tp.clockStill,
      },
      samples: Object.fromEntries([...tp.results.values()].map((r) => [r.op, r.samples])),
      seconds: (performance.now() - started) / 1000,
    });
    console.log(`\nwrote ${path} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
