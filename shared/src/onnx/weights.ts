// Where the builders get their weights, and how a stored tensor becomes graph values. int8 tensors stay int8
// in the model and are dequantized by DequantizeLinear, whose output (q · scale in float32, zero point 0)
// equals quant.ts's dequantize() bit for bit, so an int8 graph computes the reference's dequantized model.
import type { ModelConfig } from '../config.ts';
import { LN_EPS } from '../math.ts';
import { numel, paramSpecs, type ParamMap, type ParamSpec } from '../params.ts';
import { densify24, dequantize, quantizeInt8, type StoredTensor } from '../quant.ts';
import type { WeightsFile } from '../weights/read.ts';
import { GraphBuilder, OnnxBuildError } from './graph.ts';

/** Model tensors by their paramSpecs name, as stored: float32, int8 or int8 2:4. */
export interface WeightSource {
  readonly config: ModelConfig;
  /** Throws when the source does not hold `name`. */
  get(name: string): StoredTensor;
}

export class WeightSourceError extends Error {
  override name = 'WeightSourceError';
  constructor(
    message: string,
    readonly tensor: string,
  ) {
    super(message);
  }
}

/**
 * Float32 params as a weight source. With 'int8', every `matrix` tensor is quantized per output row on first
 * use (once); `vector` tensors (biases, norms) stay float32, as in the weights file.
 */
export function weightSourceFromParams(
  config: ModelConfig,
  params: ParamMap,
  scheme: 'f32' | 'int8',
): WeightSource {
  if (scheme !== 'f32' && scheme !== 'int8')
    throw new RangeError(`weight scheme: expected one of f32, int8, found ${JSON.stringify(scheme)}`);
  const kinds = new Map(paramSpecs(config).map((s) => [s.name, s.kind]));
  const cache = new Map<string, StoredTensor>();
  return {
    config,
    get(name: string): StoredTensor {
      const hit = cache.get(name);
      if (hit) return hit;
      const t = params.get(name);
      if (!t)
        throw new WeightSourceError(
          `tensor "${name}": expected it in the params, found no such tensor (${params.size} tensors held)`,
          name,
        );
      const stored: StoredTensor =
        scheme === 'int8' && kinds.get(name) === 'matrix' && t.shape.length === 2
          ? quantizeInt8(t)
          : { scheme: 'f32', shape: t.shape, data: t.data };
      cache.set(name, stored);
      return stored;
    },
  };
}

/** A stored tensor with 2:4 expanded: what the CPU graphs can compute with. */
/**
 * A weights file as a weight source. 'stored' hands each tensor over as the file stores it (int8 stays int8,
 * dequantized inside the graph); 'f32' dequantizes every int8 tensor on each get, so a graph built from it
 * computes with exactly the reference's dequantized weights (each graph is built once, so nothing is cached).
 */
export function weightSourceFromFile(file: WeightsFile, as: 'stored' | 'f32'): WeightSource {
  if (as === 'stored') return { config: file.config, get: (n) => file.stored(n) };
  return {
    config: file.config,
    get(name: string): StoredTensor {
      const t = file.stored(name);
      return t.scheme === 'f32' ? t : { scheme: 'f32', ...dequantize(t) };
    },
  };
}

export type DenseTensor = Extract<StoredTensor, { scheme: 'f32' | 'int8' }>;

/** Rows reordered: row i of the result is row perm[i] of `t` (scales move with their rows). */
export function permuteRows(t: DenseTensor, perm: readonly number[]): DenseTensor {
  const [rows, cols] = t.shape;
  if (perm.length !== rows)
    throw new OnnxBuildError(`permuteRows: expected ${rows} row indices, found ${perm.length}`);
  const move = <A extends Float32Array | Int8Array>(src: A, dst: A) => {
    perm.forEach((r, i) => dst.set(src.subarray(r * cols, (r + 1) * cols), i * cols));
    return dst;
  };
  if (t.scheme === 'f32')
    return { scheme: 'f32', shape: [rows, cols], data: move(t.data, new Float32Array(rows * cols)) };
  return {
    scheme: 'int8',
    shape: [rows, cols],
    q: move(t.q, new Int8Array(rows * cols)),
    scale: Float32Array.from(perm, (r) => t.scale[r]),
  };
}

function transpose<A extends Float32Array | Int8Array>(src: A, rows: number, cols: number, dst: A): A {
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) dst[k * rows + r] = src[r * cols + k];
  return dst;
}

/**
 * Turns a WeightSource's tensors into graph values. Checks every tensor's shape against the config's specs,
 * emits each tensor once per graph, and keeps 1-D tensors float32.
 */
export class WeightEmitter {
  private readonly specs: Map<string, ParamSpec>;

  constructor(
    readonly g: GraphBuilder,
    readonly src: WeightSource,
  ) {
    this.specs = new Map(paramSpecs(src.config).map((s) => [s.name, s]));
  }

  /** The tensor, shape-checked against the spec, with 2:4 densified (no 2:4 kernel on CPU). */
  dense(name: string): DenseTensor {
    const spec = this.specs.get(name);
    if (!spec)
      throw new OnnxBuildError(
        `tensor "${name}": expected a tensor name of this config, found an unknown name`,
      );
    const t = this.src.get(name);
    const same = t.shape.length === spec.shape.length && t.shape.every((d, i) => d === spec.shape[i]);
    if (!same)
      throw new WeightSourceError(
        `tensor "${name}": expected shape [${spec.shape}], found [${t.shape}]`,
        name,
      );
    const size = t.scheme === 'f32' ? t.data.length : t.scheme === 'int8' ? t.q.length : 2 * t.q.length;
    if (size !== numel(spec.shape))
      throw new WeightSourceError(
        `tensor "${name}": expected ${numel(spec.shape)} elements, found ${size} (scheme ${t.scheme})`,
        name,
      );
    return t.scheme === 'int8-2:4' ? densify24(t) : t;
  }

  /** A 1-D tensor's float32 values (biases and norms are never quantized). */
  vectorData(name: string): Float32Array {
    const t = this.dense(name);
    if (t.scheme !== 'f32' || t.shape.length !== 1)
      throw new WeightSourceError(
        `tensor "${name}": expected a float32 vector, found ${t.scheme} with shape [${t.shape}]`,
        name,
      );
    return t.data;
  }

  /** A float32 vector initializer. */
  vector(name: string): string {
    return this.g.once(`vec:${name}`, () => {
      const data = this.vectorData(name);
      return this.g.f32(name, data, [data.length]);
    });
  }

  /**
   * A float value of shape `dims` from `t` (its data laid out row-major in `dims`): an initializer for
   * float32, or int8 + DequantizeLinear with the per-row scales along `axis` for int8.
   */
  matrix(base: string, t: DenseTensor, dims: readonly number[], axis: number): string {
    const g = this.g;
    if (t.scheme === 'f32') return g.f32(base, t.data, dims);
    const q = g.i8(`${base}.q`, t.q, dims);
    const scale = g.f32(`${base}.scale`, t.scale, [t.scale.length]);
    const zero = g.i8(`${base}.zero`, new Int8Array(t.scale.length), [t.scale.length]);
    return g.op('DequantizeLinear', [q, scale, zero], { axis });
  }

  /** Wᵀ as a float [in, out] value, so that MatMul(x[..., in], Wᵀ) works for any batch rank. */
  transposed(name: string): string {
    return this.g.once(`wT:${name}`, () => {
      const t = this.dense(name);
      const [rows, cols] = t.shape;
      const tt: DenseTensor =
        t.scheme === 'f32'
          ? {
              scheme: 'f32',
              shape: [cols, rows],
              data: transpose(t.data, rows, cols, new Float32Array(rows * cols)),
            }
          : {
              scheme: 'int8',
              shape: [cols, rows],
              q: transpose(t.q, rows, cols, new Int8Array(rows * cols)),
              scale: t.scale,
            };
      return this.matrix(`${name}.T`, tt, [cols, rows], 1);
    });
  }

  /** y[..., out] = x[..., in] · Wᵀ (+ b) for W [out, in]. */
  linear(x: string, w: string, b?: string): string {
    const y = this.g.op('MatMul', [x, this.transposed(w)]);
    return b ? this.g.op('Add', [y, this.vector(b)]) : y;
  }

  /** The first `rows` rows of a [rows, cols] table (all by default) as a float value, for Gather/Slice. */
  table(name: string, rows?: number): string {
    return this.g.once(`table:${name}:${rows}`, () => {
      const t = this.dense(name);
      const [all, cols] = t.shape;
      const n = rows ?? all;
      const head: DenseTensor =
        t.scheme === 'f32'
          ? { scheme: 'f32', shape: [n, cols], data: t.data.subarray(0, n * cols) }
          : { scheme: 'int8', shape: [n, cols], q: t.q.subarray(0, n * cols), scale: t.scale.subarray(0, n) };
      return this.matrix(name, head, [n, cols], 0);
    });
  }

  /** Row `i` of a table, dequantized here: the same float32 values as dequantize() gives. */
  row(name: string, i: number): Float32Array {
    const t = this.dense(name);
    const cols = t.shape[1];
    if (t.scheme === 'f32') return t.data.slice(i * cols, (i + 1) * cols);
    return Float32Array.from(t.q.subarray(i * cols, (i + 1) * cols), (q) => q * t.scale[i]);
  }

  layerNorm(x: string, g: string, b: string): string {
    return this.g.op('LayerNormalization', [x, this.vector(g), this.vector(b)], {
      axis: -1,
      epsilon: { float: LN_EPS },
    });
  }
}
