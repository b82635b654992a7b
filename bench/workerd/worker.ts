// The benchmark's Worker (bench/edge-compute.ts bundles it and runs it in workerd through Miniflare).
// POST /run {op, n} runs one operation n times back to back and answers how long that took by workerd's
// own clock; the driver also times the request from outside and subtracts an empty request. The r1-seed
// edge weights (int8 and 2:4) and the roofline module arrive as modules the driver supplies.
import type { ControllerState, EdgeComputeBackend } from '@switchyard/shared/interfaces';
import type { StoredTensor } from '@switchyard/shared/quant';
import { GraphBuilder } from '@switchyard/shared/onnx/graph';
import { WeightEmitter } from '@switchyard/shared/onnx/weights';
import { Rng } from '@switchyard/shared/random';
import { ReferenceEdge, ReferenceModel, routeFromProbs } from '@switchyard/shared/reference';
import { readWeights, type WeightsFile } from '@switchyard/shared/weights/index';
import { createKernels, type Int8ModeOption, type Kernels, type SimdFlavor } from '@switchyard/wasm';
import relaxedModule from '@switchyard/wasm/kernels-relaxed.wasm';
import simdModule from '@switchyard/wasm/kernels.wasm';
import * as ort from 'onnxruntime-web/wasm';
import ortWasm from 'onnxruntime-web/ort-wasm-simd-threaded.wasm';
import { tsInt8MatVec } from '../../wasm/bench/matvec-core.ts';
import {
  createOrtWebCompute,
  createOrtWebSession,
  withUtf8WriteFix,
} from '../../edge/src/compute/ort-web.ts';
import { createWasmSimdCompute } from '../../edge/src/compute/wasm-simd.ts';
import {
  BANDWIDTH_SETS,
  bandwidthReps,
  HEAD_SHAPE,
  PEAK_ITERS,
  type BandwidthSet,
  type RunRequest,
  type RunResponse,
} from './ops.ts';
import int8File from './r1-edge-int8.safetensors';
import sparseFile from './r1-edge-24.safetensors';
import rooflineModule from './roofline.wasm';

interface RooflineExports {
  buffer(bytes: number): number;
  read_bytes(p: number, bytes: number, reps: number): number;
  dot_i16(iters: number, seed: number): number;
  load_ext_dot(p: number, iters: number, seed: number): number;
  load16_dot(p: number, iters: number, seed: number): number;
  load_rdot(p: number, iters: number, seed: number): number;
  dot_i8_relaxed(iters: number, seed: number): number;
  fma_f32(iters: number, seed: number): number;
}

type Op = () => number | Promise<number>;

interface Bench {
  ops: Map<string, Op>;
}

let bench: Promise<Bench> | null = null;

/** A controller state with h, c, m drawn small and the STM half full, as a session mid-turn has. */
function halfFullState(file: WeightsFile, seed: number) {
  const cfg = file.config;
  const H = cfg.controller.hidden;
  const S = cfg.memory.dim;
  const slots = cfg.memory.stm_slots;
  const rng = new Rng(seed);
  const vec = (n: number, s: number) => Float32Array.from({ length: n }, () => s * rng.normal());
  const half = slots >> 1;
  const keys = new Float32Array(slots * S);
  const values = new Float32Array(slots * S);
  keys.set(vec(half * S, 0.5));
  values.set(vec(half * S, 0.5));
  const state: ControllerState = {
    h: vec(H, 0.3),
    c: vec(H, 0.5),
    m: vec(H, 0.5),
    stm: { keys, values, count: half, next: 0 },
  };
  return {
    state,
    mixture: vec(H, 0.5),
    half,
    S,
    K: cfg.experts.top_k,
    V: cfg.vocab,
  };
}

/**
 * One edge step per call: controller (STM read, LSTM, gate softmax), top-K gate, head (logits, STM key and
 * value) and the STM write. The write goes round the filled half of the ring, so the STM stays half full
 * however many steps run; a fixed vector stands in for the expert mixture.
 */
function edgeStep(edge: EdgeComputeBackend, file: WeightsFile, seed: number): Op {
  const s = halfFullState(file, seed);
  let token = 258;
  return async () => {
    const out = await edge.controller(s.state, token);
    const route = routeFromProbs(out.probs, s.K);
    const head = await edge.head(out.h, s.mixture);
    const stm = s.state.stm;
    stm.keys.set(head.stmKey, stm.next * s.S);
    stm.values.set(head.stmValue, stm.next * s.S);
    stm.next = (stm.next + 1) % s.half;
    s.state = { h: out.h, c: out.c, m: s.mixture, stm };
    let best = 0;
    for (let i = 1; i < s.V; i++) if (head.logits[i] > head.logits[best]) best = i;
    token = best;
    return route.experts[0] + best;
  };
}

async function setup(): Promise<Bench> {
  const int8 = readWeights(new Uint8Array(int8File));
  const sparse = readWeights(new Uint8Array(sparseFile));
  const ops = new Map<string, Op>();
  ops.set('empty', () => 0);

  // ---- the edge step
  const wasmDense = await createWasmSimdCompute(int8);
  const wasmHeadFast = await createWasmSimdCompute(int8, { modes: { 'head.w': 'auto' } });
  const wasmHeadExact = await createWasmSimdCompute(int8, { modes: { 'head.w': 'exact' } });
  const wasmDenseSimd = await createWasmSimdCompute(int8, { flavor: 'simd' });
  const wasmSparse = await createWasmSimdCompute(sparse);
  const ortWeb = await createOrtWebCompute(int8, ortWasm);
  const plain = new ReferenceEdge(new ReferenceModel(int8.config, int8.params(), 'edge'));
  ops.set('step:wasm-int8', edgeStep(wasmDense, int8, 1));
  ops.set('step:wasm-int8-head-fast', edgeStep(wasmHeadFast, int8, 1));
  ops.set('step:wasm-int8-head-exact', edgeStep(wasmHeadExact, int8, 1));
  ops.set('step:wasm-int8-simd', edgeStep(wasmDenseSimd, int8, 1));
  ops.set('step:wasm-2:4', edgeStep(wasmSparse, sparse, 1));
  ops.set('step:ort-web', edgeStep(ortWeb, int8, 1));
  ops.set('step:typescript', edgeStep(plain, int8, 1));

  // ---- the int8 mat-vec alone: lstm.w_ih, which is 2048×896 at r1-seed
  const name = 'lstm.w_ih';
  const stored = int8.stored(name);
  if (stored.scheme !== 'int8')
    throw new Error(`${name}: expected int8 in the int8 file, found ${stored.scheme}`);
  const dense = stored;
  const [rows, cols] = dense.shape;
  const rng = new Rng(7);
  // The first `cols` are the mat-vec's x; the head (wider) takes the first 2H.
  const xs = Float32Array.from({ length: 4096 }, () => rng.normal());
  const x = xs.slice(0, cols);
  const kernelSets = new Map<SimdFlavor, Kernels>();
  for (const flavor of ['relaxed-simd', 'simd'] as const)
    kernelSets.set(flavor, await createKernels({ simd: simdModule, relaxed: relaxedModule }, { flavor }));
  const matvec = (flavor: SimdFlavor, t: StoredTensor, mode: Int8ModeOption = 'auto'): Op => {
    const k = kernelSets.get(flavor)!;
    const m = k.loadMatrix(t, { mode });
    const xp = k.allocF32(t.shape[1], xs.subarray(0, t.shape[1]));
    const yp = k.alloc(t.shape[0] * 4);
    return () => {
      k.raw.matvec(m.ptr, xp, yp);
      return 0;
    };
  };
  ops.set('matvec:wasm-int8', matvec('relaxed-simd', dense));
  ops.set('matvec:wasm-int8-fast', matvec('relaxed-simd', dense, 'fast'));
  ops.set('matvec:wasm-int8-simd', matvec('simd', dense));
  ops.set('matvec:wasm-int8-precise', matvec('relaxed-simd', dense, 'precise'));
  ops.set('matvec:wasm-int8-exact', matvec('relaxed-simd', dense, 'exact'));
  ops.set('matvec:wasm-2:4', matvec('relaxed-simd', sparse.stored(name)));
  const head = int8.stored('head.w');
  if (head.scheme !== 'int8' || head.shape[0] !== HEAD_SHAPE[0] || head.shape[1] !== HEAD_SHAPE[1])
    throw new Error(`head.w: expected int8 [${HEAD_SHAPE}], found ${head.scheme} [${head.shape}]`);
  for (const mode of ['auto', 'precise', 'exact'] as const)
    ops.set(`head:${mode}`, matvec('relaxed-simd', head, mode));
  const y = new Float32Array(rows);
  ops.set('matvec:typescript', () => {
    tsInt8MatVec(dense, x, y);
    return y[0];
  });
  const g = new GraphBuilder();
  const w = new WeightEmitter(g, { config: int8.config, get: (n) => int8.stored(n) });
  const xin = g.input('x', 'float32', [1, cols]);
  g.output(w.linear(xin, name), 'y', 'float32', [1, rows]);
  const session = await createOrtWebSession(
    ortWasm,
    withUtf8WriteFix(() => g.build({ graphName: 'matvec' })),
  );
  const feed = { x: new ort.Tensor('float32', x, [1, cols]) };
  ops.set('matvec:ort-web', async () => {
    const out = await session.run(feed);
    return (out.y.data as Float32Array)[0];
  });

  // ---- roofline
  const roof = (await WebAssembly.instantiate(rooflineModule, {})).exports as unknown as RooflineExports;
  for (const set of Object.keys(BANDWIDTH_SETS) as BandwidthSet[]) {
    const bytes = BANDWIDTH_SETS[set];
    const p = roof.buffer(bytes);
    if (p === 0)
      throw new Error(`roofline: expected ${bytes} bytes of wasm memory, found the engine refused`);
    const reps = bandwidthReps(set);
    ops.set(`bw:${set}`, () => roof.read_bytes(p, bytes, reps));
  }
  const block = roof.buffer(512);
  ops.set('peak:dot_i16', () => roof.dot_i16(PEAK_ITERS, 3));
  ops.set('peak:load_ext_dot', () => roof.load_ext_dot(block, PEAK_ITERS, 3));
  ops.set('peak:load16_dot', () => roof.load16_dot(block, PEAK_ITERS, 3));
  ops.set('peak:load_rdot', () => roof.load_rdot(block, PEAK_ITERS, 3));
  ops.set('peak:dot_i8_relaxed', () => roof.dot_i8_relaxed(PEAK_ITERS, 3));
  ops.set('peak:fma_f32', () => roof.fma_f32(PEAK_ITERS, 0.5));
  return { ops };
}

async function run(req: RunRequest): Promise<RunResponse> {
  const b = await (bench ??= setup());
  const op = b.ops.get(req.op);
  if (!op) throw new RangeError(`op: expected one of ${[...b.ops.keys()].join(', ')}, found "${req.op}"`);
  if (!Number.isInteger(req.n) || req.n < 0)
    throw new RangeError(`n: expected an integer ≥ 0, found ${req.n}`);
  let sink = 0;
  const first = performance.now();
  for (let i = 0; i < req.n; i++) {
    const r = op();
    sink += typeof r === 'number' ? r : await r;
  }
  const last = performance.now();
  return { op: req.op, n: req.n, ms: last - first, clock: { first, last }, sink };
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    try {
      if (url.pathname === '/ops') return Response.json([...(await (bench ??= setup())).ops.keys()]);
      if (url.pathname === '/run' && request.method === 'POST')
        return Response.json(await run((await request.json()) as RunRequest));
      return new Response(`expected POST /run or GET /ops, found ${request.method} ${url.pathname}`, {
        status: 404,
      });
    } catch (e) {
      return new Response(e instanceof Error ? (e.stack ?? e.message) : String(e), { status: 500 });
    }
  },
};
