// Test-only helpers: run builder output in onnxruntime-node and onnxruntime-web (its wasm build, in Node)
// through one interface, and compare against the reference. Not exported from the package.
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import type { InferenceSession } from 'onnxruntime-common';
import type { ParamMap } from '../params.ts';
import { dequantize } from '../quant.ts';
import type { WeightSource } from './weights.ts';

export type RuntimeName = 'onnxruntime-node' | 'onnxruntime-web';
export const RUNTIMES: readonly RuntimeName[] = ['onnxruntime-node', 'onnxruntime-web'];

// One wasm thread: the threaded build needs workers and cross-origin isolation, which Node tests lack, and
// the edge runs single-threaded anyway.
ortWeb.env.wasm.numThreads = 1;

/**
 * The session options the parity tests (and the serving code) use: every graph optimization, but with
 * ORT's DequantizeLinear→MatMul→MatMulNBits rewrite told to compute in float32 (accuracy level 0 = the
 * kernel's most accurate mode) instead of its default level 4, which quantizes activations to int8.
 */
export const PARITY_SESSION_OPTIONS: InferenceSession.SessionOptions = {
  graphOptimizationLevel: 'all',
  intraOpNumThreads: 1,
  extra: { session: { qdq_matmulnbits_accuracy_level: '0' } },
};

export type Feed =
  | { type: 'float32'; data: Float32Array; dims: number[] }
  | { type: 'int64'; data: BigInt64Array; dims: number[] };

export const f32 = (data: ArrayLike<number>, dims: number[]): Feed => ({
  type: 'float32',
  data: Float32Array.from(data),
  dims,
});
export const i64 = (values: readonly number[], dims: number[] = [values.length]): Feed => ({
  type: 'int64',
  data: BigInt64Array.from(values, (v) => BigInt(v)),
  dims,
});

export interface Output {
  data: Float32Array;
  dims: number[];
}

export interface TestSession {
  readonly runtime: RuntimeName;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, Feed>): Promise<Record<string, Output>>;
  release(): Promise<void>;
}

export async function createSession(
  runtime: RuntimeName,
  model: Uint8Array,
  options: InferenceSession.SessionOptions = PARITY_SESSION_OPTIONS,
): Promise<TestSession> {
  const ort = runtime === 'onnxruntime-node' ? ortNode : ortWeb;
  const opts = runtime === 'onnxruntime-web' ? { ...options, executionProviders: ['wasm'] } : options;
  const s = await ort.InferenceSession.create(model, opts);
  return {
    runtime,
    inputNames: s.inputNames,
    outputNames: s.outputNames,
    async run(feeds) {
      const inputs: Record<string, ortNode.Tensor> = {};
      for (const [name, f] of Object.entries(feeds)) inputs[name] = new ort.Tensor(f.type, f.data, f.dims);
      const out = await s.run(inputs);
      const res: Record<string, Output> = {};
      for (const [name, t] of Object.entries(out)) {
        if (t.type !== 'float32') throw new TypeError(`output "${name}": expected float32, found ${t.type}`);
        res[name] = { data: t.data as Float32Array, dims: [...t.dims] };
      }
      return res;
    },
    release: () => s.release(),
  };
}

/** The float32 params an int8 graph computes with: every tensor of `names` dequantized from the source. */
export function dequantizedParams(src: WeightSource, names: Iterable<string>): ParamMap {
  const out: ParamMap = new Map();
  for (const n of names) out.set(n, dequantize(src.get(n)));
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`maxAbsDiff: lengths differ, ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    // NaN must fail a tolerance check, not slip past Math.max
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}
