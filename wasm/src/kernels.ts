// The edge's SIMD kernels behind typed functions. Runtime-free: it takes a compiled WebAssembly.Module (as
// workerd imports a .wasm) or its bytes, so the same code runs in Node, browsers and Workers.
//
// Memory: one linear memory with a bump allocator. Weights are copied in once (loadMatrix) and stay;
// each compute call allocates its inputs, outputs and the kernels' scratch above a mark and drops them.
//
// Accuracy, against the float32 reference on the dequantized weights (shared/src/math.ts matVec):
// - int8 'fast' quantizes x per call to int16 with one scale, range R = min(32767, ⌊(2³¹−1) /
//   (127·colsPad)⌋ − 1), so that integer sums cannot overflow; rows are finished in float64. Hence
//   |y − y_ref| ≤ Σ_k|W_rk|·max|x|/(2R) (x rounding) + 2⁻²⁴·Σ_k|W_rk·x_k| (the reference's own rounding of
//   q·scale) + 2⁻²³·|y|. 'relaxed-dot' uses R = 32767 with 8-bit parts and R = 8191 with 7-bit ones
//   (Kernels.relaxedDot). 2:4 matrices follow the same bound.
// - int8 'precise' writes x/step as an int16 value plus an int16 residual in 1/(2R) steps (same R), two
//   integer sums joined in float64: the x term of the bound above shrinks to Σ_k|W_rk|·max|x|/(4R²), below
//   float32 resolution, so |y − y_ref| ≤ Σ_k|W_rk|·max|x|/(4R²) + 2⁻²⁴·Σ_k|W_rk·x_k| + 2⁻²³·|y|.
// - int8 'exact' and float32 matrices accumulate in float32: |y − y_ref| ≤ (colsPad/4 + 16)·2⁻²⁴·
//   Σ_k|W_rk·x_k| + 2⁻²³·|y|.
// - 'auto' (the default) is 'relaxed-dot' where it runs fused with 8-bit parts (probed when the kernels are
//   created; R = 32767 ≥ the 'fast' R at every width), else 'fast'; its bound is that of the mode it picked.
// - exp/sigmoid/tanh are polynomial approximations within a few float32 ulps (see kernels.test.ts);
//   softmax, top-k gates, the STM read and the sparse code's selection run in float64 as the reference does.
//
// Speed, inside workerd at 2048×896 (CPU time of the workerd process on this 2-core AVX-VNNI box):
// 'relaxed-dot' fused with 8-bit parts ~19-23 GMAC/s, 'fast' ~14-15, 'precise' ~9-10, 'exact' ~5. workerd
// bounds-checks every load here, so the kernels load each weight once, 16 bytes at a time (wasm/README.md).
import type { StoredTensor, Tensor } from '@switchyard/shared';
import { densify24 } from '@switchyard/shared/quant';
import {
  ABI_VERSION,
  D,
  DESC_BYTES,
  f32Geometry,
  int8Geometry,
  KIND_F32,
  KIND_INT8,
  KIND_INT8_24,
  MODE_EXACT,
  MODE_FAST,
  MODE_PRECISE,
  MODE_RELAXED_DOT,
  packF32,
  packInt8,
  packSparse24,
  sparse24Geometry,
} from './layout.ts';

export type SimdFlavor = 'simd' | 'relaxed-simd';
export const SIMD_FLAVORS: readonly SimdFlavor[] = ['simd', 'relaxed-simd'];
export type WasmSource = WebAssembly.Module | BufferSource;

export interface KernelSources {
  /** build/kernels.wasm: needs only SIMD128. */
  simd: WasmSource;
  /** build/kernels-relaxed.wasm: needs relaxed SIMD too. Optional. */
  relaxed?: WasmSource;
}

export interface KernelOptions {
  /** 'auto' (default) takes relaxed-simd when its module is given and the engine validates it. */
  flavor?: 'auto' | SimdFlavor;
}

/**
 * How an int8 matrix multiplies: 'fast' quantizes x to int16 (i32x4.dot_i16x8_s); 'precise' quantizes x to
 * an int16 value and an int16 residual (two dots, float32-level error, ~1.5× the time of 'fast'); 'exact'
 * widens the weights to float32 and uses x as given (~2.5× 'fast'); 'relaxed-dot' (relaxed-simd only, dense
 * int8 only) splits x into two 7-bit halves for i32x4.relaxed_dot_i8x16_i7x16_add_s (one vpdpbusd each on
 * AVX-VNNI), or its unfused form where the engine miscompiles the fused one.
 */
export type Int8Mode = 'fast' | 'precise' | 'exact' | 'relaxed-dot';
export const INT8_MODES: readonly Int8Mode[] = ['fast', 'precise', 'exact', 'relaxed-dot'];
/** A mode to ask for: one of INT8_MODES, or 'auto' (Kernels.autoMode). */
export type Int8ModeOption = Int8Mode | 'auto';

/**
 * How 'relaxed-dot' runs: x in two 8-bit unsigned parts (R = 32767) on the fused instruction where it
 * multiplies u8 by i8 without saturating (AVX-VNNI's vpdpbusd); in two 7-bit parts (R = 8191) on it where
 * only 7-bit operands are exact; or in 7-bit parts on the unfused form where the engine miscompiles the fused
 * one (Node 20 on AVX-VNNI CPUs).
 */
export type RelaxedDotPath = 'fused-8bit' | 'fused-7bit' | 'unfused-7bit';
const MODE_CODES: Record<Int8Mode, number> = {
  fast: MODE_FAST,
  precise: MODE_PRECISE,
  exact: MODE_EXACT,
  'relaxed-dot': MODE_RELAXED_DOT,
};

export type MatrixKind = 'int8' | 'int8-2:4' | 'f32';

/** A matrix resident in kernel memory. `ptr` is its descriptor, for the pointer-level API. */
export interface WasmMatrix {
  readonly ptr: number;
  readonly kind: MatrixKind;
  readonly rows: number;
  readonly cols: number;
  /** Bytes of kernel memory it holds (weights, scales, bias, descriptor). */
  readonly bytes: number;
  readonly mode: Int8Mode | undefined;
}

export interface LoadOptions {
  /** b[rows], added to every product. */
  bias?: Float32Array;
  /**
   * For int8 matrices; default 'auto'. A 2:4 matrix keeps the 2:4 kernel in 'auto' and 'fast' (unless
   * sparse: 'dense'), and is densified for the other modes.
   */
  mode?: Int8ModeOption;
  /** For 2:4 tensors: keep the 2:4 kernel ('sparse', default) or expand to dense int8 ('dense'). */
  sparse?: 'sparse' | 'dense';
}

/** The module's raw exports; pointers are byte offsets into `memory`. */
export interface KernelExports {
  memory: WebAssembly.Memory;
  abi_version(): number;
  desc_bytes(): number;
  relaxed(): number;
  alloc(bytes: number, align: number): number;
  mark(): number;
  release(mark: number): void;
  quant_range(colsPad: number): number;
  set_relaxed_dot(fused: number, bits: number): void;
  matvec(desc: number, x: number, y: number): void;
  lstm_cell(wih: number, whh: number, input: number, h: number, c: number, hOut: number, cOut: number): void;
  softmax(x: number, n: number, out: number): void;
  softmax_topk(x: number, n: number, k: number, probs: number, top: number, gates: number): void;
  stm_read(q: number, keys: number, values: number, count: number, dim: number, out: number): void;
  sparse_code(desc: number, v: number, a: number, atoms: number, weights: number): number;
  vexp(x: number, n: number, out: number): void;
  vsigmoid(x: number, n: number, out: number): void;
  vtanh(x: number, n: number, out: number): void;
}

export class WasmKernelError extends Error {
  override name = 'WasmKernelError';
}

// (module (func (result v128) (i8x16.relaxed_swizzle (v128.const 0) (v128.const 0))))
const RELAXED_PROBE = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00,
  0x01,
  0x05,
  0x01,
  0x60,
  0x00,
  0x01,
  0x7b,
  0x03,
  0x02,
  0x01,
  0x00,
  0x0a,
  0x2b,
  0x01,
  0x29,
  0x00,
  0xfd,
  0x0c,
  ...new Array<number>(16).fill(0),
  0xfd,
  0x0c,
  ...new Array<number>(16).fill(0),
  0xfd,
  0x80,
  0x02,
  0x0b,
]);

/** Whether this engine accepts relaxed-SIMD instructions (Node 20 needs --experimental-wasm-relaxed-simd). */
export function relaxedSimdSupported(): boolean {
  try {
    return WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false; // an embedder that forbids handling wasm bytes at run time
  }
}

async function compile(src: WasmSource): Promise<WebAssembly.Module> {
  return src instanceof WebAssembly.Module ? src : WebAssembly.compile(src);
}

/** Instantiates the kernels; picks the flavor as `options.flavor` says. */
export async function createKernels(sources: KernelSources, options: KernelOptions = {}): Promise<Kernels> {
  const want = options.flavor ?? 'auto';
  if (want !== 'auto' && !SIMD_FLAVORS.includes(want))
    throw new WasmKernelError(
      `flavor: expected one of auto, ${SIMD_FLAVORS.join(', ')}, found ${String(want)}`,
    );
  let flavor: SimdFlavor = 'simd';
  // A relaxed module the embedder already compiled (a workerd CompiledWasm import) proves support.
  const relaxedUsable = () => sources.relaxed instanceof WebAssembly.Module || relaxedSimdSupported();
  if (want === 'relaxed-simd' || (want === 'auto' && sources.relaxed && relaxedUsable())) {
    if (!sources.relaxed)
      throw new WasmKernelError(
        'flavor relaxed-simd: expected sources.relaxed (kernels-relaxed.wasm), found none',
      );
    if (!relaxedUsable())
      throw new WasmKernelError(
        'flavor relaxed-simd: this engine does not validate relaxed-SIMD code; use flavor simd or auto',
      );
    flavor = 'relaxed-simd';
  }
  const module = await compile(flavor === 'relaxed-simd' ? sources.relaxed! : sources.simd);
  const instance = await WebAssembly.instantiate(module, {});
  return new Kernels(instance.exports as unknown as KernelExports, flavor);
}

function int8Mode(mode: Int8ModeOption | undefined): Int8ModeOption {
  const m = mode ?? 'auto';
  if (m !== 'auto' && !INT8_MODES.includes(m))
    throw new WasmKernelError(
      `int8 mode: expected one of auto, ${INT8_MODES.join(', ')}, found ${String(m)}`,
    );
  return m;
}

function shapeOf(t: { shape: number[] }, what: string): [number, number] {
  if (t.shape.length !== 2 || !t.shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new WasmKernelError(`${what}: expected a 2-D shape [rows, cols], found [${t.shape}]`);
  return [t.shape[0], t.shape[1]];
}

function expectLength(what: string, found: number, expected: number, meaning: string): void {
  if (found !== expected)
    throw new WasmKernelError(`${what}: expected ${expected} elements (${meaning}), found ${found}`);
}

export interface Routing {
  probs: Float32Array;
  /** The k most probable, by descending probability, ties to the lower index. */
  top: number[];
  /** probs[top] renormalized over the top k. */
  gates: number[];
}

export interface SparseCodeResult {
  atoms: number[];
  weights: number[];
}

export class Kernels {
  /**
   * How 'relaxed-dot' runs on this engine and CPU (undefined for the simd flavor), decided when the kernels
   * are created by running the kernel on probe matrices and comparing with exact integer arithmetic.
   */
  readonly relaxedDot: RelaxedDotPath | undefined;
  private buffer: ArrayBuffer | undefined;
  private u8v = new Uint8Array(0);
  private i8v = new Int8Array(0);
  private i32v = new Int32Array(0);
  private f32v = new Float32Array(0);
  private f64v = new Float64Array(0);

  constructor(
    readonly raw: KernelExports,
    readonly flavor: SimdFlavor,
  ) {
    const abi = raw.abi_version();
    if (abi !== ABI_VERSION || raw.desc_bytes() !== DESC_BYTES)
      throw new WasmKernelError(
        `kernel module ABI: expected version ${ABI_VERSION} with ${DESC_BYTES}-byte descriptors, found version ${abi} with ${raw.desc_bytes()}; rebuild wasm/ (npm run build -w @switchyard/wasm)`,
      );
    if ((raw.relaxed() === 1) !== (flavor === 'relaxed-simd'))
      throw new WasmKernelError(`kernel module: expected a ${flavor} build, found the other one`);
    this.relaxedDot = flavor === 'relaxed-simd' ? this.probeRelaxedDot() : undefined;
  }

  /** Whether 'relaxed-dot' uses the fused i32x4.relaxed_dot_i8x16_i7x16_add_s. */
  get fusedDot(): boolean {
    return this.relaxedDot === 'fused-8bit' || this.relaxedDot === 'fused-7bit';
  }

  /**
   * The widest relaxed-dot path that computes a probe matrix exactly: x of max|x| = 2^(2b−1) − 1 has step 1,
   * so every output is an exact integer. The 8-bit probe pairs x bytes of 255 with weights of 127, which
   * saturates pmaddubsw and reads negative on signed-by-signed hardware. Three 16-column chunks, so that both
   * loops of the kernel (pairs of chunks, then the odd one) run.
   */
  private probeRelaxedDot(): RelaxedDotPath {
    for (const [path, bits] of [
      ['fused-8bit', 8],
      ['fused-7bit', 7],
    ] as const) {
      this.raw.set_relaxed_dot(1, bits);
      if (this.probeExact(2 ** (2 * bits - 1) - 1)) return path;
    }
    this.raw.set_relaxed_dot(0, 7);
    return 'unfused-7bit';
  }

  private probeExact(range: number): boolean {
    const rows = 8;
    const cols = 48;
    const q = Int8Array.from({ length: rows * cols }, (_, i) => ((i * 37 + 11) % 255) - 127);
    const x = Float32Array.from({ length: cols }, (_, k) => ((k * 5309 + 7) % (2 * range + 1)) - range);
    q.set([127, 127, 127, 127]);
    x.set([range, range, range, range]);
    const expected = Array.from({ length: rows }, (_, r) => {
      let sum = 0;
      for (let k = 0; k < cols; k++) sum += q[r * cols + k] * x[k];
      return Math.fround(sum);
    });
    const mk = this.mark();
    try {
      const m = this.loadInt8(q, new Float32Array(rows).fill(1), rows, cols, 'relaxed-dot');
      const y = this.matVec(m, x);
      return expected.every((e, r) => y[r] === e);
    } finally {
      this.release(mk);
    }
  }

  /** The mode 'auto' (or no mode) stands for: 'relaxed-dot' where it is fused with 8-bit parts, else 'fast'. */
  get autoMode(): Int8Mode {
    return this.relaxedDot === 'fused-8bit' ? 'relaxed-dot' : 'fast';
  }

  private resolveMode(mode: Int8ModeOption): Int8Mode {
    return mode === 'auto' ? this.autoMode : mode;
  }

  // ---------------------------------------------------------------- memory

  /** Bytes of linear memory the module holds now. */
  get memoryBytes(): number {
    return this.raw.memory.buffer.byteLength;
  }

  /** Allocates `bytes` (16-byte aligned at least); throws when the engine refuses to grow memory. */
  alloc(bytes: number, align = 16): number {
    const p = this.raw.alloc(bytes, align);
    if (p === 0)
      throw new WasmKernelError(
        `alloc: expected to grow memory by ${bytes} bytes, found the engine refused (holding ${this.memoryBytes} bytes)`,
      );
    return p;
  }

  mark(): number {
    return this.raw.mark();
  }

  release(mark: number): void {
    this.raw.release(mark);
  }

  /** Views over the whole memory, renewed when memory has grown (growth detaches the old buffer). */
  private views(): void {
    const buf = this.raw.memory.buffer;
    if (buf === this.buffer) return;
    this.buffer = buf as ArrayBuffer;
    this.u8v = new Uint8Array(buf);
    this.i8v = new Int8Array(buf);
    this.i32v = new Int32Array(buf);
    this.f32v = new Float32Array(buf);
    this.f64v = new Float64Array(buf);
  }

  /** Copies floats into kernel memory at ptr (4-byte aligned). */
  writeF32(ptr: number, data: ArrayLike<number>): void {
    this.views();
    this.f32v.set(data, ptr >> 2);
  }

  /** A copy of n floats from kernel memory. */
  readF32(ptr: number, n: number): Float32Array {
    this.views();
    return this.f32v.slice(ptr >> 2, (ptr >> 2) + n);
  }

  /** A live view of n floats; valid until the next allocation that grows memory. */
  viewF32(ptr: number, n: number): Float32Array {
    this.views();
    return this.f32v.subarray(ptr >> 2, (ptr >> 2) + n);
  }

  /** Allocates n floats and fills them from data when given. */
  allocF32(n: number, data?: ArrayLike<number>): number {
    const p = this.alloc(n * 4);
    if (data) this.writeF32(p, data);
    return p;
  }

  // ---------------------------------------------------------------- weights

  /**
   * Copies a stored tensor into kernel memory in the layout its kernel wants. Takes the weights file's
   * layouts (shared/src/quant.ts): float32, int8 rows with scales, or 2:4 (kept values + position nibbles).
   * Permanent: call at load, not per step.
   */
  loadMatrix(t: StoredTensor | Tensor, options: LoadOptions = {}): WasmMatrix {
    const st: StoredTensor = 'scheme' in t ? t : { scheme: 'f32', shape: t.shape, data: t.data };
    const [rows, cols] = shapeOf(st, 'loadMatrix');
    if (options.bias) expectLength('loadMatrix bias', options.bias.length, rows, 'one per row');
    if (st.scheme === 'f32') {
      expectLength('loadMatrix f32 data', st.data.length, rows * cols, `${rows}×${cols}`);
      if (options.mode !== undefined)
        throw new WasmKernelError(
          `loadMatrix: mode applies to int8 matrices, found mode ${options.mode} on f32`,
        );
      return this.loadF32(st.data, rows, cols, options.bias);
    }
    const asked = int8Mode(options.mode);
    const mode = this.resolveMode(asked);
    if (mode === 'relaxed-dot' && this.flavor !== 'relaxed-simd')
      throw new WasmKernelError(
        `int8 mode relaxed-dot: expected the relaxed-simd flavor, found ${this.flavor}`,
      );
    expectLength('loadMatrix scale', st.scale.length, rows, 'one per row');
    if (st.scheme === 'int8') {
      expectLength('loadMatrix int8 q', st.q.length, rows * cols, `${rows}×${cols}`);
      return this.loadInt8(st.q, st.scale, rows, cols, mode, options.bias);
    }
    if (st.scheme !== 'int8-2:4')
      throw new WasmKernelError(
        `loadMatrix: expected scheme f32, int8 or int8-2:4, found ${String((st as { scheme: unknown }).scheme)}`,
      );
    if (cols % 4 !== 0)
      throw new WasmKernelError(`loadMatrix 2:4: expected columns divisible by 4, found ${cols}`);
    expectLength('loadMatrix 2:4 q', st.q.length, (rows * cols) / 2, `${rows}×${cols / 2} kept values`);
    expectLength(
      'loadMatrix 2:4 idx',
      st.idx.length,
      rows * Math.ceil(cols / 8),
      `${rows}×${Math.ceil(cols / 8)}`,
    );
    if (options.sparse === 'dense' || (asked !== 'auto' && asked !== 'fast'))
      return this.loadInt8(densify24(st).q, st.scale, rows, cols, mode, options.bias);
    return this.loadSparse24(st.q, st.idx, st.scale, rows, cols, options.bias);
  }

  /** Switches an int8 matrix between modes (a 2:4 kernel matrix has only 'fast'). */
  setMode(m: WasmMatrix, option: Int8ModeOption): WasmMatrix {
    const mode = this.resolveMode(int8Mode(option));
    if (m.kind !== 'int8')
      throw new WasmKernelError(
        `setMode: expected an int8 matrix, found ${m.kind}; reload 2:4 with sparse: 'dense'`,
      );
    if (mode === 'relaxed-dot' && this.flavor !== 'relaxed-simd')
      throw new WasmKernelError(
        `int8 mode relaxed-dot: expected the relaxed-simd flavor, found ${this.flavor}`,
      );
    this.views();
    this.i32v[(m.ptr >> 2) + D.mode] = MODE_CODES[mode];
    return { ...m, mode };
  }

  private descriptor(kind: number, rows: number, cols: number, rowsPad: number, colsPad: number): number {
    const p = this.alloc(DESC_BYTES);
    this.views();
    const d = p >> 2;
    this.i32v.fill(0, d, d + DESC_BYTES / 4);
    this.i32v[d + D.kind] = kind;
    this.i32v[d + D.rows] = rows;
    this.i32v[d + D.cols] = cols;
    this.i32v[d + D.rowsPad] = rowsPad;
    this.i32v[d + D.colsPad] = colsPad;
    return p;
  }

  private scalesAndBias(
    desc: number,
    scale: Float32Array | undefined,
    rowsPad: number,
    bias?: Float32Array,
  ): number {
    let bytes = 0;
    if (scale) {
      const s = this.alloc(rowsPad * 4);
      this.views();
      this.f32v.fill(0, s >> 2, (s >> 2) + rowsPad);
      this.f32v.set(scale, s >> 2);
      this.i32v[(desc >> 2) + D.scale] = s;
      bytes += rowsPad * 4;
    }
    if (bias) {
      const b = this.allocF32(bias.length, bias);
      this.views();
      this.i32v[(desc >> 2) + D.bias] = b;
      bytes += bias.length * 4;
    }
    return bytes;
  }

  private loadInt8(
    q: Int8Array,
    scale: Float32Array,
    rows: number,
    cols: number,
    mode: Int8Mode,
    bias?: Float32Array,
  ): WasmMatrix {
    const g = int8Geometry(rows, cols);
    const desc = this.descriptor(KIND_INT8, rows, cols, g.rowsPad, g.colsPad);
    const w = this.alloc(g.bytes);
    const rs = this.alloc(g.rowsPad * 4);
    this.views();
    this.i8v.fill(0, w, w + g.bytes);
    this.i32v.fill(0, rs >> 2, (rs >> 2) + g.rowsPad);
    packInt8(
      q,
      rows,
      cols,
      this.i8v.subarray(w, w + g.bytes),
      this.i32v.subarray(rs >> 2, (rs >> 2) + g.rowsPad),
    );
    this.i32v[(desc >> 2) + D.w] = w;
    this.i32v[(desc >> 2) + D.rowSum] = rs;
    this.i32v[(desc >> 2) + D.mode] = MODE_CODES[mode];
    const bytes = DESC_BYTES + g.bytes + g.rowsPad * 4 + this.scalesAndBias(desc, scale, g.rowsPad, bias);
    return { ptr: desc, kind: 'int8', rows, cols, bytes, mode };
  }

  private loadSparse24(
    q: Int8Array,
    idx: Uint8Array,
    scale: Float32Array,
    rows: number,
    cols: number,
    bias?: Float32Array,
  ): WasmMatrix {
    const g = sparse24Geometry(rows, cols);
    const desc = this.descriptor(KIND_INT8_24, rows, cols, g.rowsPad, g.colsPad);
    const w = this.alloc(g.bytes);
    this.views();
    this.u8v.fill(0, w, w + g.bytes);
    packSparse24(q, idx, rows, cols, this.u8v.subarray(w, w + g.bytes));
    this.i32v[(desc >> 2) + D.w] = w;
    const bytes = DESC_BYTES + g.bytes + this.scalesAndBias(desc, scale, g.rowsPad, bias);
    return { ptr: desc, kind: 'int8-2:4', rows, cols, bytes, mode: 'fast' };
  }

  private loadF32(data: Float32Array, rows: number, cols: number, bias?: Float32Array): WasmMatrix {
    const g = f32Geometry(rows, cols);
    const desc = this.descriptor(KIND_F32, rows, cols, g.rowsPad, g.colsPad);
    const w = this.alloc(g.bytes);
    this.views();
    this.f32v.fill(0, w >> 2, (w + g.bytes) >> 2);
    packF32(data, rows, cols, this.f32v.subarray(w >> 2, (w + g.bytes) >> 2));
    this.i32v[(desc >> 2) + D.w] = w;
    const bytes = DESC_BYTES + g.bytes + this.scalesAndBias(desc, undefined, g.rowsPad, bias);
    return { ptr: desc, kind: 'f32', rows, cols, bytes, mode: undefined };
  }

  // ---------------------------------------------------------------- compute (copying in and out)

  /** y = W x + b. */
  matVec(m: WasmMatrix, x: ArrayLike<number>): Float32Array {
    expectLength('matVec x', x.length, m.cols, `the matrix's columns`);
    const mk = this.mark();
    try {
      const xp = this.allocF32(m.cols, x);
      const yp = this.alloc(m.rows * 4);
      this.raw.matvec(m.ptr, xp, yp);
      return this.readF32(yp, m.rows);
    } finally {
      this.release(mk);
    }
  }

  /**
   * One LSTM step: gates = W_ih·input + b + W_hh·h (b loaded as W_ih's bias), order i, f, g, o.
   * W_ih is [4H, I], W_hh is [4H, H].
   */
  lstmCell(
    wih: WasmMatrix,
    whh: WasmMatrix,
    input: ArrayLike<number>,
    h: ArrayLike<number>,
    c: ArrayLike<number>,
  ): { h: Float32Array; c: Float32Array } {
    const H = whh.cols;
    if (whh.rows !== 4 * H || wih.rows !== 4 * H)
      throw new WasmKernelError(
        `lstmCell: expected W_hh [4H, H] and W_ih [4H, I], found W_hh [${whh.rows}, ${whh.cols}] and W_ih [${wih.rows}, ${wih.cols}]`,
      );
    expectLength('lstmCell input', input.length, wih.cols, "W_ih's columns");
    expectLength('lstmCell h', h.length, H, 'H');
    expectLength('lstmCell c', c.length, H, 'H');
    const mk = this.mark();
    try {
      const ip = this.allocF32(wih.cols, input);
      const hp = this.allocF32(H, h);
      const cp = this.allocF32(H, c);
      this.raw.lstm_cell(wih.ptr, whh.ptr, ip, hp, cp, hp, cp);
      return { h: this.readF32(hp, H), c: this.readF32(cp, H) };
    } finally {
      this.release(mk);
    }
  }

  softmax(x: ArrayLike<number>): Float32Array {
    const n = x.length;
    const mk = this.mark();
    try {
      const xp = this.allocF32(n, x);
      const out = this.alloc(n * 4);
      this.raw.softmax(xp, n, out);
      return this.readF32(out, n);
    } finally {
      this.release(mk);
    }
  }

  /** probs = softmax(logits); the top k (ties to the lower index) with gates renormalized over them. */
  softmaxTopK(logits: ArrayLike<number>, k: number): Routing {
    const n = logits.length;
    if (!Number.isInteger(k) || k < 1 || k > n)
      throw new WasmKernelError(`softmaxTopK k: expected an integer in 1..${n}, found ${k}`);
    const mk = this.mark();
    try {
      const xp = this.allocF32(n, logits);
      const probs = this.alloc(n * 4);
      const top = this.alloc(k * 4);
      const gates = this.alloc(k * 8, 8);
      this.raw.softmax_topk(xp, n, k, probs, top, gates);
      this.views();
      return {
        probs: this.readF32(probs, n),
        top: Array.from(this.i32v.subarray(top >> 2, (top >> 2) + k)),
        gates: Array.from(this.f64v.subarray(gates >> 3, (gates >> 3) + k)),
      };
    } finally {
      this.release(mk);
    }
  }

  /** r = Σ_j softmax_j(q·k_j/√S) v_j over the first `count` slots of keys/values ([slots, S]). */
  stmRead(q: ArrayLike<number>, keys: Float32Array, values: Float32Array, count: number): Float32Array {
    const S = q.length;
    if (keys.length !== values.length || S === 0 || keys.length % S !== 0)
      throw new WasmKernelError(
        `stmRead: expected keys and values of equal length, a multiple of S=${S}, found ${keys.length} and ${values.length}`,
      );
    const slots = keys.length / S;
    if (!Number.isInteger(count) || count < 0 || count > slots)
      throw new WasmKernelError(`stmRead count: expected an integer in 0..${slots}, found ${count}`);
    const mk = this.mark();
    try {
      const qp = this.allocF32(S, q);
      const kp = this.allocF32(count * S, keys.subarray(0, count * S));
      const vp = this.allocF32(count * S, values.subarray(0, count * S));
      const out = this.alloc(S * 4);
      this.raw.stm_read(qp, kp, vp, count, S, out);
      return this.readF32(out, S);
    } finally {
      this.release(mk);
    }
  }

  /** The top-a entries of ReLU(W v) that are > 0, strongest first (ties to the lower atom). */
  sparseCode(m: WasmMatrix, v: ArrayLike<number>, a: number): SparseCodeResult {
    expectLength('sparseCode v', v.length, m.cols, `the matrix's columns`);
    if (!Number.isInteger(a) || a < 0)
      throw new WasmKernelError(`sparseCode a: expected a non-negative integer, found ${a}`);
    const k = Math.min(a, m.rows);
    const mk = this.mark();
    try {
      const vp = this.allocF32(m.cols, v);
      const atoms = this.alloc(k * 4);
      const weights = this.alloc(k * 4);
      const n = this.raw.sparse_code(m.ptr, vp, k, atoms, weights);
      this.views();
      return {
        atoms: Array.from(this.i32v.subarray(atoms >> 2, (atoms >> 2) + n)),
        weights: Array.from(this.f32v.subarray(weights >> 2, (weights >> 2) + n)),
      };
    } finally {
      this.release(mk);
    }
  }

  exp(x: ArrayLike<number>): Float32Array {
    return this.elementwise(x, (p, n, o) => this.raw.vexp(p, n, o));
  }

  sigmoid(x: ArrayLike<number>): Float32Array {
    return this.elementwise(x, (p, n, o) => this.raw.vsigmoid(p, n, o));
  }

  tanh(x: ArrayLike<number>): Float32Array {
    return this.elementwise(x, (p, n, o) => this.raw.vtanh(p, n, o));
  }

  private elementwise(x: ArrayLike<number>, f: (p: number, n: number, out: number) => void): Float32Array {
    const mk = this.mark();
    try {
      const p = this.allocF32(x.length, x);
      const out = this.alloc(x.length * 4);
      f(p, x.length, out);
      return this.readF32(out, x.length);
    } finally {
      this.release(mk);
    }
  }
}
