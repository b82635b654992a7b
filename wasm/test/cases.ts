// The shapes of the kernel case files in wasm/test/cases/ (written by gen-cases.ts, read by the tests).
import type { StoredTensor } from '@switchyard/shared';

export type MatrixData =
  | { scheme: 'f32'; w: number[] }
  | { scheme: 'int8'; q: number[]; scale: number[] }
  | { scheme: 'int8-2:4'; q: number[]; idx: number[]; scale: number[] };

export interface MatVecCase {
  name: string;
  rows: number;
  cols: number;
  w: MatrixData;
  bias: number[] | null;
  x: number[];
  expected: number[];
  /**
   * Per output, the allowed |got − expected|: 'fast' for the x-quantizing paths ('fast', 'relaxed-dot', 2:4),
   * 'precise' for 'precise' (present wherever 'fast' is), 'exact' for the float32 ones.
   */
  tolerance: { fast?: number[]; precise?: number[]; exact?: number[] };
}

export interface LstmCase {
  name: string;
  hidden: number;
  inputSize: number;
  wih: MatrixData;
  whh: MatrixData;
  b: number[];
  input: number[];
  h: number[];
  c: number[];
  expected: { h: number[]; c: number[] };
  tolerance: { h: number[]; c: number[] };
}

export interface SoftmaxTopKCase {
  name: string;
  logits: number[];
  k: number;
  expected: { probs: number[]; top: number[]; gates: number[] };
  /** Relative tolerances on probs and gates; top must match exactly. */
  tolerance: { probs: number; gates: number };
}

export interface StmReadCase {
  name: string;
  dim: number;
  slots: number;
  count: number;
  q: number[];
  keys: number[];
  values: number[];
  expected: number[];
  tolerance: number[];
}

export interface SparseCodeCase {
  name: string;
  atoms: number;
  dim: number;
  active: number;
  w: MatrixData;
  v: number[];
  expected: { atoms: number[]; weights: number[] };
  /** Per expected weight; the atoms (and their order) must match exactly. */
  tolerance: number[];
}

export interface CaseFile<T> {
  kernel: string;
  about: string;
  cases: T[];
}

export interface AllCases {
  'matvec-int8': CaseFile<MatVecCase>;
  'matvec-int8-24': CaseFile<MatVecCase>;
  'matvec-f32': CaseFile<MatVecCase>;
  lstm: CaseFile<LstmCase>;
  'softmax-topk': CaseFile<SoftmaxTopKCase>;
  'stm-read': CaseFile<StmReadCase>;
  'sparse-code': CaseFile<SparseCodeCase>;
}

export const CASE_FILES: ReadonlyArray<keyof AllCases> = [
  'matvec-int8',
  'matvec-int8-24',
  'matvec-f32',
  'lstm',
  'softmax-topk',
  'stm-read',
  'sparse-code',
];

/** A case's matrix as the weights file would hold it. */
export function toStored(w: MatrixData, rows: number, cols: number): StoredTensor {
  const shape = [rows, cols];
  if (w.scheme === 'f32') return { scheme: 'f32', shape, data: Float32Array.from(w.w) };
  if (w.scheme === 'int8')
    return { scheme: 'int8', shape, q: Int8Array.from(w.q), scale: Float32Array.from(w.scale) };
  return {
    scheme: 'int8-2:4',
    shape,
    q: Int8Array.from(w.q),
    idx: Uint8Array.from(w.idx),
    scale: Float32Array.from(w.scale),
  };
}

export function toData(t: StoredTensor): MatrixData {
  if (t.scheme === 'f32') return { scheme: 'f32', w: Array.from(t.data) };
  if (t.scheme === 'int8') return { scheme: 'int8', q: Array.from(t.q), scale: Array.from(t.scale) };
  return { scheme: 'int8-2:4', q: Array.from(t.q), idx: Array.from(t.idx), scale: Array.from(t.scale) };
}
