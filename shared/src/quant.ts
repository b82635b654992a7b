// Weight quantization: int8 symmetric with one float32 scale per output channel (row), and 2:4 sparsity
// (in each group of 4 along the input dimension, the 2 largest-magnitude weights are kept).
import type { Tensor } from './params.ts';

export type QuantScheme = 'f32' | 'int8' | 'int8-2:4';
export const QUANT_SCHEMES: readonly QuantScheme[] = ['f32', 'int8', 'int8-2:4'];

/** A tensor as stored: float32 as is, or int8 rows with their scales (and 2:4 positions). */
export type StoredTensor =
  | { scheme: 'f32'; shape: number[]; data: Float32Array }
  | { scheme: 'int8'; shape: number[]; q: Int8Array; scale: Float32Array }
  | {
      scheme: 'int8-2:4';
      shape: number[];
      /** [rows, cols/2]: the two kept values of each group, in position order. */
      q: Int8Array;
      /** [rows, cols/8]: per group a nibble, low 2 bits the first kept position, high 2 bits the second. */
      idx: Uint8Array;
      scale: Float32Array;
    };

function rowsCols(t: { shape: number[] }): [number, number] {
  if (t.shape.length !== 2) throw new RangeError(`quantize: expected a 2-D tensor, found shape [${t.shape}]`);
  return [t.shape[0], t.shape[1]];
}

/** scale_r = max|W_r| / 127; q = round(W / scale). A zero row gets scale 1 and stays zero. */
export function quantizeInt8(t: Tensor): Extract<StoredTensor, { scheme: 'int8' }> {
  const [rows, cols] = rowsCols(t);
  const q = new Int8Array(rows * cols);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = 0;
    for (let k = 0; k < cols; k++) max = Math.max(max, Math.abs(t.data[r * cols + k]));
    const s = max > 0 ? max / 127 : 1;
    scale[r] = s;
    const inv = 1 / Math.fround(s);
    for (let k = 0; k < cols; k++)
      q[r * cols + k] = Math.max(-127, Math.min(127, Math.round(t.data[r * cols + k] * inv)));
  }
  return { scheme: 'int8', shape: [rows, cols], q, scale };
}

/** The two positions kept in one group of 4: the largest magnitudes, ties to the lower position. */
function keep2(g: ArrayLike<number>, o: number): [number, number] {
  let a = 0;
  for (let i = 1; i < 4; i++) if (Math.abs(g[o + i]) > Math.abs(g[o + a])) a = i;
  let b = a === 0 ? 1 : 0;
  for (let i = 0; i < 4; i++) if (i !== a && Math.abs(g[o + i]) > Math.abs(g[o + b])) b = i;
  return a < b ? [a, b] : [b, a];
}

/** Prunes to 2:4 and quantizes the kept values to int8 per row. Needs cols % 4 == 0. */
export function quantize24(t: Tensor): Extract<StoredTensor, { scheme: 'int8-2:4' }> {
  const [rows, cols] = rowsCols(t);
  if (cols % 4 !== 0)
    throw new RangeError(`2:4 sparsity: expected an input dimension divisible by 4, found ${cols}`);
  const groups = cols / 4;
  const pruned = new Float32Array(rows * cols);
  const idx = new Uint8Array(rows * Math.ceil(groups / 2));
  for (let r = 0; r < rows; r++)
    for (let g = 0; g < groups; g++) {
      const o = r * cols + g * 4;
      const [a, b] = keep2(t.data, o);
      pruned[o + a] = t.data[o + a];
      pruned[o + b] = t.data[o + b];
      const nib = a | (b << 2);
      idx[r * Math.ceil(groups / 2) + (g >> 1)] |= g & 1 ? nib << 4 : nib;
    }
  const dense = quantizeInt8({ shape: [rows, cols], data: pruned });
  const q = new Int8Array(rows * (cols / 2));
  for (let r = 0; r < rows; r++)
    for (let g = 0; g < groups; g++) {
      const nib = (idx[r * Math.ceil(groups / 2) + (g >> 1)] >> (g & 1 ? 4 : 0)) & 15;
      q[r * (cols / 2) + 2 * g] = dense.q[r * cols + g * 4 + (nib & 3)];
      q[r * (cols / 2) + 2 * g + 1] = dense.q[r * cols + g * 4 + (nib >> 2)];
    }
  return { scheme: 'int8-2:4', shape: [rows, cols], q, idx, scale: dense.scale };
}

/** Back to a dense int8 matrix [rows, cols] (zeros where pruned), e.g. for graphs without 2:4 kernels. */
export function densify24(
  t: Extract<StoredTensor, { scheme: 'int8-2:4' }>,
): Extract<StoredTensor, { scheme: 'int8' }> {
  const [rows, cols] = rowsCols(t);
  const groups = cols / 4;
  const perRow = Math.ceil(groups / 2);
  const q = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let g = 0; g < groups; g++) {
      const nib = (t.idx[r * perRow + (g >> 1)] >> (g & 1 ? 4 : 0)) & 15;
      q[r * cols + g * 4 + (nib & 3)] = t.q[r * (cols / 2) + 2 * g];
      q[r * cols + g * 4 + (nib >> 2)] = t.q[r * (cols / 2) + 2 * g + 1];
    }
  return { scheme: 'int8', shape: [rows, cols], q, scale: t.scale };
}

/** The float32 tensor the model computes with: W = q · scale_row. */
export function dequantize(t: StoredTensor): Tensor {
  if (t.scheme === 'f32') return { shape: t.shape, data: t.data };
  const d = t.scheme === 'int8' ? t : densify24(t);
  const [rows, cols] = rowsCols(d);
  const data = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const s = d.scale[r];
    for (let k = 0; k < cols; k++) data[r * cols + k] = d.q[r * cols + k] * s;
  }
  return { shape: [rows, cols], data };
}

export function quantizeAs(t: Tensor, scheme: QuantScheme): StoredTensor {
  if (scheme === 'f32') return { scheme, shape: t.shape, data: t.data };
  return scheme === 'int8' ? quantizeInt8(t) : quantize24(t);
}
