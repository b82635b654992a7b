// The edge's per-step compute (DESIGN.md §1) on the SIMD kernels: STM read, LSTM cell, gate softmax,
// output head, STM key/value and the LTM sparse code. Runtime-free, like kernels.ts.
import {
  controllerStateProblem,
  dequantize,
  paramSpecs,
  type ControllerOutput,
  type ControllerState,
  type EdgeComputeBackend,
  type HeadOutput,
  type ModelConfig,
  type SparseCode,
  type StoredTensor,
  type Tensor,
} from '@switchyard/shared';
import {
  WasmKernelError,
  type Int8Mode,
  type Int8ModeOption,
  type Kernels,
  type WasmMatrix,
} from './kernels.ts';

/** The edge step's matrices (shared/src/params.ts), each of which may be stored int8. */
export const EDGE_MATRICES = [
  'lstm.w_ih',
  'lstm.w_hh',
  'gate.w',
  'memory.w_rq',
  'memory.w_k',
  'memory.w_v',
  'memory.w_code',
  'head.w',
] as const;
export type EdgeMatrix = (typeof EDGE_MATRICES)[number];

export interface WasmEdgeOptions {
  /** How int8 matrices multiply (default 'auto': 'relaxed-dot' where Kernels.fusedDot, else 'fast'). */
  mode?: Int8ModeOption;
  /**
   * Per matrix, over `mode`. head.w defaults to 'precise' ('exact' when mode is 'exact'): the logits are
   * what sampling and the golden checksums see, and x rounding in 'fast' added up to more than float32
   * error in the checksum; 'precise' holds them to float32 error for ~18 µs more CPU time per r1-seed step
   * in workerd than 'auto' ('exact': ~40 µs).
   */
  modes?: Partial<Record<EdgeMatrix, Int8ModeOption>>;
  /** 2:4 tensors: the 2:4 kernel or densified (default 'sparse'). */
  sparse?: 'sparse' | 'dense';
}

/** The head's mode when `modes` does not name one. */
export function defaultHeadMode(mode: Int8ModeOption | undefined): Int8Mode {
  return mode === 'exact' ? 'exact' : 'precise';
}

/** Edge tensors by name (shared/src/params.ts): stored (f32, int8, 2:4) or logical float32. */
export type EdgeTensors = ReadonlyMap<string, StoredTensor | Tensor>;

export class WasmEdgeCompute implements EdgeComputeBackend {
  readonly name: string;
  private readonly V: number;
  private readonly Dc: number;
  private readonly H: number;
  private readonly S: number;
  private readonly E: number;
  private readonly slots: number;
  private readonly active: number;
  private readonly embed: Float32Array; // [V, Dc]; looked up by row, so kept in JS
  private readonly wih: WasmMatrix;
  private readonly whh: WasmMatrix;
  private readonly gate: WasmMatrix;
  private readonly rq: WasmMatrix;
  private readonly key: WasmMatrix;
  private readonly value: WasmMatrix;
  private readonly code: WasmMatrix;
  private readonly out: WasmMatrix;
  /** The mode each int8 matrix runs in (undefined for float32 matrices). */
  readonly modes: Readonly<Record<EdgeMatrix, Int8Mode | undefined>>;

  /** Copies every edge tensor into kernel memory; checks names and shapes against the config. */
  constructor(
    readonly kernels: Kernels,
    readonly config: ModelConfig,
    tensors: EdgeTensors,
    options: WasmEdgeOptions = {},
  ) {
    this.name = `wasm-${kernels.flavor}`;
    this.V = config.vocab;
    this.Dc = config.controller.embed;
    this.H = config.controller.hidden;
    this.S = config.memory.dim;
    this.E = config.experts.count;
    this.slots = config.memory.stm_slots;
    this.active = config.memory.ltm_active;
    for (const spec of paramSpecs(config)) {
      if (spec.tier !== 'edge') continue;
      const t = tensors.get(spec.name);
      if (!t)
        throw new WasmKernelError(
          `tensor "${spec.name}": expected shape [${spec.shape}], found no such tensor`,
        );
      if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i]))
        throw new WasmKernelError(
          `tensor "${spec.name}": expected shape [${spec.shape}], found [${t.shape}]`,
        );
    }
    for (const name of Object.keys(options.modes ?? {}))
      if (!(EDGE_MATRICES as readonly string[]).includes(name))
        throw new WasmKernelError(`modes: expected keys among ${EDGE_MATRICES.join(', ')}, found "${name}"`);
    const stored = (name: string): StoredTensor => {
      const t = tensors.get(name)!;
      return 'scheme' in t ? t : { scheme: 'f32', shape: t.shape, data: t.data };
    };
    const vector = (name: string) => dequantize(stored(name)).data;
    const modeOf = (name: EdgeMatrix): Int8ModeOption | undefined =>
      options.modes?.[name] ?? (name === 'head.w' ? defaultHeadMode(options.mode) : options.mode);
    const load = (name: EdgeMatrix, bias?: string) => {
      const t = stored(name);
      const int8 = t.scheme !== 'f32';
      return kernels.loadMatrix(t, {
        bias: bias ? vector(bias) : undefined,
        mode: int8 ? modeOf(name) : undefined,
        sparse: options.sparse,
      });
    };
    this.embed = vector('tok_embed');
    this.wih = load('lstm.w_ih', 'lstm.b');
    this.whh = load('lstm.w_hh');
    this.gate = load('gate.w', 'gate.b');
    this.rq = load('memory.w_rq');
    this.key = load('memory.w_k');
    this.value = load('memory.w_v');
    this.code = load('memory.w_code');
    this.out = load('head.w', 'head.b');
    this.modes = {
      'lstm.w_ih': this.wih.mode,
      'lstm.w_hh': this.whh.mode,
      'gate.w': this.gate.mode,
      'memory.w_rq': this.rq.mode,
      'memory.w_k': this.key.mode,
      'memory.w_v': this.value.mode,
      'memory.w_code': this.code.mode,
      'head.w': this.out.mode,
    };
  }

  private checkState(state: ControllerState): void {
    const problem = controllerStateProblem(state, this.H, this.S, this.slots);
    if (problem) throw new WasmKernelError(problem);
  }

  /** x = tok_embed[y]; r = STM read with the previous h; (h, c) = LSTM([x; r; m]); p = softmax(W_g h + b_g). */
  controllerSync(state: ControllerState, token: number): ControllerOutput {
    const { Dc, S, H, E } = this;
    if (!Number.isInteger(token) || token < 0 || token >= this.V)
      throw new WasmKernelError(`token: expected an integer in [0, ${this.V}), found ${token}`);
    this.checkState(state);
    const k = this.kernels;
    const raw = k.raw;
    const count = state.stm.count;
    const mk = k.mark();
    try {
      const input = k.allocF32(Dc + S + H); // [x; r; m]
      const h = k.allocF32(H, state.h);
      const c = k.allocF32(H, state.c);
      const q = k.alloc(S * 4);
      const keys = k.allocF32(count * S, state.stm.keys.subarray(0, count * S));
      const values = k.allocF32(count * S, state.stm.values.subarray(0, count * S));
      const logits = k.alloc(E * 4);
      const probs = k.alloc(E * 4);
      k.writeF32(input, this.embed.subarray(token * Dc, (token + 1) * Dc));
      k.writeF32(input + (Dc + S) * 4, state.m);
      if (count > 0) raw.matvec(this.rq.ptr, h, q);
      raw.stm_read(q, keys, values, count, S, input + Dc * 4);
      raw.lstm_cell(this.wih.ptr, this.whh.ptr, input, h, c, h, c);
      raw.matvec(this.gate.ptr, h, logits);
      raw.softmax(logits, E, probs);
      return { h: k.readF32(h, H), c: k.readF32(c, H), probs: k.readF32(probs, E) };
    } finally {
      k.release(mk);
    }
  }

  /** logits = W_o [h; m] + b_o; the STM key W_k h and value W_v m. */
  headSync(h: Float32Array, m: Float32Array): HeadOutput {
    const { H, S, V } = this;
    if (h.length !== H || m.length !== H)
      throw new WasmKernelError(`head: expected h and m of ${H} elements, found ${h.length} and ${m.length}`);
    const k = this.kernels;
    const mk = k.mark();
    try {
      const hm = k.allocF32(2 * H, h);
      k.writeF32(hm + H * 4, m);
      const logits = k.alloc(V * 4);
      const key = k.alloc(S * 4);
      const value = k.alloc(S * 4);
      k.raw.matvec(this.out.ptr, hm, logits);
      k.raw.matvec(this.key.ptr, hm, key);
      k.raw.matvec(this.value.ptr, hm + H * 4, value);
      return { logits: k.readF32(logits, V), stmKey: k.readF32(key, S), stmValue: k.readF32(value, S) };
    } finally {
      k.release(mk);
    }
  }

  /** code(h) = the top-a entries of ReLU(W_code h) that are > 0. */
  ltmCodeSync(h: Float32Array): SparseCode {
    if (h.length !== this.H)
      throw new WasmKernelError(`ltmCode: expected h of ${this.H} elements, found ${h.length}`);
    return this.kernels.sparseCode(this.code, h, this.active);
  }

  async controller(state: ControllerState, token: number): Promise<ControllerOutput> {
    return this.controllerSync(state, token);
  }

  async head(h: Float32Array, m: Float32Array): Promise<HeadOutput> {
    return this.headSync(h, m);
  }

  async ltmCode(h: Float32Array): Promise<SparseCode> {
    return this.ltmCodeSync(h);
  }
}
