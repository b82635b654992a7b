// The edge step in onnxruntime-web: shared's controller and head graphs (shared/src/onnx/edge.ts) built
// from the edge weights and run by ORT's single-threaded wasm build. The STM read and the LTM code stay
// outside the graphs, in plain TypeScript with the reference's own math.
//
// Loading inside workerd (DESIGN.md §5): compiling wasm at run time is forbidden and import.meta.url is
// undefined there, so ORT's .wasm comes in compiled (a CompiledWasm module, passed in by the caller) and
// WebAssembly.instantiate is wrapped for the duration of the first session's creation so that ORT's
// instantiate call receives that module instead of bytes. The first session must be created inside a request.
//
// This file does not import the .wasm itself (Node cannot import one), so Node tests can pass a module they
// compiled; backends.ts passes the bundled one.
import type {
  ControllerOutput,
  ControllerState,
  EdgeComputeBackend,
  HeadOutput,
  SparseCode,
} from '@switchyard/shared/interfaces';
import { dot, matVec, softmax, topK } from '@switchyard/shared/math';
import { controllerStateProblem } from '@switchyard/shared/reference';
import { buildEdgeController, buildEdgeHead } from '@switchyard/shared/onnx/edge';
import type { WeightSource } from '@switchyard/shared/onnx/weights';
import { dequantize } from '@switchyard/shared/quant';
import type { WeightsFile } from '@switchyard/shared/weights/index';
import * as ort from 'onnxruntime-web/wasm';

export class OrtWebComputeError extends Error {
  override name = 'OrtWebComputeError';
}

/**
 * Every graph optimization, with ORT's QDQ transformations off (disable_quant_qdq). Then constant folding
 * turns each DequantizeLinear of an int8 initializer into a float32 initializer at session creation, with
 * the values the reference computes with (q · scale in float32), and ORT runs float32 MatMul/LSTM kernels.
 * With QDQ on, ORT-web keeps DequantizeLinear per run or rewrites it to MatMulNBits, whose wasm kernel is
 * 10-15× slower here (the r1-seed head: 4 ms against 0.27 ms); at its default accuracy level it would
 * also quantize the activations.
 */
export const ORT_WEB_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  executionProviders: ['wasm'],
  graphOptimizationLevel: 'all',
  intraOpNumThreads: 1,
  extra: { session: { disable_quant_qdq: '1', qdq_matmulnbits_accuracy_level: '0' } },
};

// What ORT is told its wasm binary is: recognisable bytes that the instantiate wrapper swaps for the module.
// A valid empty module, so that anything else handed these bytes would still get a sane answer.
const PLACEHOLDER = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

function isPlaceholder(src: unknown): boolean {
  const bytes =
    src instanceof ArrayBuffer
      ? new Uint8Array(src)
      : ArrayBuffer.isView(src)
        ? new Uint8Array(src.buffer, src.byteOffset, src.byteLength)
        : null;
  return bytes !== null && bytes.length === PLACEHOLDER.length && bytes.every((b, i) => b === PLACEHOLDER[i]);
}

let runtime: { module: WebAssembly.Module; ready: Promise<unknown> } | null = null;

/**
 * Creates a session; the first one in the isolate also starts ORT's wasm runtime on `module`, with
 * WebAssembly.instantiate wrapped meanwhile. Later calls must pass the same module: ORT starts only once.
 */
export async function createOrtWebSession(
  module: WebAssembly.Module,
  model: Uint8Array,
): Promise<ort.InferenceSession> {
  if (runtime) {
    if (runtime.module !== module)
      throw new OrtWebComputeError(
        'onnxruntime-web: expected the wasm module the runtime was started with, found another one (ORT starts once per isolate)',
      );
    await runtime.ready;
    return ort.InferenceSession.create(model, ORT_WEB_SESSION_OPTIONS);
  }
  ort.env.wasm.numThreads = 1; // no threads in Workers; the threaded build runs single-threaded
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmBinary = PLACEHOLDER;
  const original = WebAssembly.instantiate;
  const wrapped = (src: unknown, imports?: WebAssembly.Imports): Promise<unknown> =>
    isPlaceholder(src)
      ? original(module, imports).then((instance) => ({ instance, module }))
      : (original as (s: unknown, i?: WebAssembly.Imports) => Promise<unknown>)(src, imports);
  WebAssembly.instantiate = wrapped as typeof WebAssembly.instantiate;
  const session = ort.InferenceSession.create(model, ORT_WEB_SESSION_OPTIONS);
  const ready = session.finally(() => {
    WebAssembly.instantiate = original;
  });
  const mine = { module, ready };
  runtime = mine;
  ready.catch(() => {
    if (runtime === mine) runtime = null;
  });
  return ready;
}

type Utf8Write = (this: Uint8Array, s: string, offset?: number, length?: number) => number;

/**
 * Runs `build` (synchronous ONNX serialization) with Buffer.prototype.utf8Write fixed where needed. Under
 * nodejs_compat, workerd's utf8Write(string, offset) defaults its length to the whole buffer's and throws for
 * any offset > 0 (Node defaults to length − offset); protobufjs, inside the ONNX builders, calls it that way
 * for every string of 40+ characters. Without nodejs_compat (the Worker's own config) there is no Buffer and
 * protobufjs writes strings itself.
 */
export function withUtf8WriteFix<T>(build: () => T): T {
  const proto = (globalThis as { Buffer?: { prototype: { utf8Write?: Utf8Write } } }).Buffer?.prototype;
  const original = proto?.utf8Write;
  if (!proto || !original) return build();
  proto.utf8Write = function (this: Uint8Array, str, offset = 0, length = this.length - offset) {
    return original.call(this, str, offset, length);
  };
  try {
    return build();
  } finally {
    proto.utf8Write = original;
  }
}

/** The file's tensors as the ONNX builders want them. */
export function weightSource(file: WeightsFile): WeightSource {
  return { config: file.config, get: (name) => file.stored(name) };
}

function f32(data: Float32Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

function output(out: ort.InferenceSession.OnnxValueMapType, name: string, n: number): Float32Array {
  const t = out[name];
  if (!t || t.type !== 'float32' || t.size !== n)
    throw new OrtWebComputeError(
      `ORT output "${name}": expected float32 with ${n} elements, found ${t ? `${t.type} with ${t.size}` : 'none'}`,
    );
  return t.data as Float32Array;
}

export class OrtWebCompute implements EdgeComputeBackend {
  readonly name = 'ort-web';
  private readonly V: number;
  private readonly H: number;
  private readonly S: number;
  private readonly E: number;
  private readonly C: number;
  private readonly slots: number;
  private readonly active: number;
  private readonly wRq: Float32Array; // [S, H], for the STM read
  private readonly wCode: Float32Array; // [C, H], for the LTM code

  private constructor(
    file: WeightsFile,
    private readonly controllerSession: ort.InferenceSession,
    private readonly headSession: ort.InferenceSession,
  ) {
    const cfg = file.config;
    this.V = cfg.vocab;
    this.H = cfg.controller.hidden;
    this.S = cfg.memory.dim;
    this.E = cfg.experts.count;
    this.C = cfg.memory.ltm_atoms;
    this.slots = cfg.memory.stm_slots;
    this.active = cfg.memory.ltm_active;
    this.wRq = dequantize(file.stored('memory.w_rq')).data;
    this.wCode = dequantize(file.stored('memory.w_code')).data;
  }

  /** Builds both graphs from the file and opens their sessions; starts ORT on `wasm` if not yet running. */
  static async create(file: WeightsFile, wasm: WebAssembly.Module): Promise<OrtWebCompute> {
    const src = weightSource(file);
    const controller = await createOrtWebSession(
      wasm,
      withUtf8WriteFix(() => buildEdgeController(src)),
    );
    const head = await createOrtWebSession(
      wasm,
      withUtf8WriteFix(() => buildEdgeHead(src)),
    );
    return new OrtWebCompute(file, controller, head);
  }

  private checkState(state: ControllerState): void {
    const problem = controllerStateProblem(state, this.H, this.S, this.slots);
    if (problem) throw new OrtWebComputeError(problem);
  }

  /** r = Σ_j softmax_j(q·k_j/√S) v_j with q = W_rq h, as the reference computes it; zero while empty. */
  stmRead(state: ControllerState): Float32Array {
    const { S, H } = this;
    const { keys, values, count } = state.stm;
    const r = new Float32Array(S);
    if (count === 0) return r;
    const q = matVec(this.wRq, S, H, state.h); // [S]
    const scores = new Float64Array(count);
    for (let j = 0; j < count; j++) scores[j] = dot(q, keys.subarray(j * S, (j + 1) * S)) / Math.sqrt(S);
    const p = softmax(scores);
    for (let i = 0; i < S; i++) {
      let acc = 0;
      for (let j = 0; j < count; j++) acc += p[j] * values[j * S + i];
      r[i] = acc;
    }
    return r;
  }

  async controller(state: ControllerState, token: number): Promise<ControllerOutput> {
    const { H, S, E } = this;
    if (!Number.isInteger(token) || token < 0 || token >= this.V)
      throw new OrtWebComputeError(`token: expected an integer in [0, ${this.V}), found ${token}`);
    this.checkState(state);
    const out = await this.controllerSession.run({
      token: new ort.Tensor('int64', BigInt64Array.of(BigInt(token)), [1]),
      r: f32(this.stmRead(state), [1, S]),
      m: f32(state.m, [1, H]),
      h: f32(state.h, [1, H]),
      c: f32(state.c, [1, H]),
    });
    return { h: output(out, 'h_out', H), c: output(out, 'c_out', H), probs: output(out, 'probs', E) };
  }

  async head(h: Float32Array, m: Float32Array): Promise<HeadOutput> {
    const { H, S, V } = this;
    if (h.length !== H || m.length !== H)
      throw new OrtWebComputeError(
        `head: expected h and m of ${H} elements, found ${h.length} and ${m.length}`,
      );
    const out = await this.headSession.run({ h: f32(h, [1, H]), m: f32(m, [1, H]) });
    return {
      logits: output(out, 'logits', V),
      stmKey: output(out, 'stm_key', S),
      stmValue: output(out, 'stm_value', S),
    };
  }

  /** code(h) = the top-a entries of ReLU(W_code h) that are > 0, as the reference computes it. */
  async ltmCode(h: Float32Array): Promise<SparseCode> {
    if (h.length !== this.H)
      throw new OrtWebComputeError(`ltmCode: expected h of ${this.H} elements, found ${h.length}`);
    const u = matVec(this.wCode, this.C, this.H, h);
    for (let i = 0; i < u.length; i++) if (u[i] < 0) u[i] = 0;
    const atoms = topK(u, this.active).filter((i) => u[i] > 0);
    return { atoms, weights: atoms.map((i) => u[i]) };
  }

  async release(): Promise<void> {
    await this.controllerSession.release();
    await this.headSession.release();
  }
}

/** An ort-web edge compute over the file; `wasm` is ORT's ort-wasm-simd-threaded.wasm, compiled. */
export function createOrtWebCompute(file: WeightsFile, wasm: WebAssembly.Module): Promise<OrtWebCompute> {
  return OrtWebCompute.create(file, wasm);
}
