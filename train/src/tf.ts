// tfjs on its wasm backend, made ready for training here (DESIGN.md §5): the side-effect modules that
// register gradients and chained ops, a TopK gradient, and ops whose backward passes stay on the fast
// plain 2-D matMul path of the wasm backend.
import { register } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';

export { tf };

let ready: Promise<void> | undefined;

/** Loads the gradient and chained-op registrations and the wasm backend, once. */
export function initTf(): Promise<void> {
  ready ??= (async () => {
    register('./tf-resolve-hook.mjs', import.meta.url);
    await import('@tensorflow/tfjs-core/dist/register_all_gradients.js' as string);
    await import('@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js' as string);
    await import('@tensorflow/tfjs-backend-wasm');
    registerTopKGradient();
    registerMatMulGradient();
    if (!(await tf.setBackend('wasm')))
      throw new Error(`tfjs backend: expected "wasm" to start, found ${tf.getBackend()}`);
    await tf.ready();
  })();
  return ready;
}

/**
 * tfjs registers no gradient for TopK. The values' gradient flows back to the positions they were taken
 * from; the indices are integers and get none. With it, top-k routing with renormalized gates trains
 * the gate.
 */
export function registerTopKGradient(): void {
  tf.registerGradient({
    kernelName: 'TopK',
    inputsToSave: ['x'],
    outputsToSave: [false, true],
    gradFunc: (dy, saved) => {
      const [x, indices] = saved;
      const dValues = Array.isArray(dy) ? dy[0] : dy;
      const n = x.shape[x.shape.length - 1];
      return {
        x: () =>
          tf.tidy(() => {
            const hot = tf.cast(tf.oneHot(indices as tf.Tensor, n), 'float32'); // [..., k, n]
            return tf.sum(tf.mul(hot, tf.expandDims(dValues, -1)), -2); // [..., n]
          }),
      };
    },
  });
}

/**
 * On wasm a matMul with a transposed operand runs ~8× slower than a plain one, and tfjs's own matMul
 * gradient multiplies with transposed operands. This one transposes explicitly (a cheap copy) and then
 * multiplies plainly; with it registered, tf.matMul trains at the plain speed in both directions.
 */
export function registerMatMulGradient(): void {
  const swap = (t: tf.Tensor) => {
    const r = t.rank;
    return tf.transpose(t, [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2]);
  };
  tf.registerGradient({
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved;
      const g = dy as tf.Tensor;
      const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
      if (a.rank !== b.rank || a.shape.slice(0, -2).some((d, i) => d !== b.shape[i]))
        throw new RangeError(
          `matMul gradient: expected operands with equal batch dimensions, found [${a.shape}] and [${b.shape}]`,
        );
      const mul = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y);
      if (!transposeA && !transposeB) return { a: () => mul(g, swap(b)), b: () => mul(swap(a), g) };
      if (!transposeA && transposeB) return { a: () => mul(g, b), b: () => mul(swap(g), a) };
      if (transposeA && !transposeB) return { a: () => mul(b, swap(g)), b: () => mul(a, g) };
      return { a: () => mul(swap(b), swap(g)), b: () => mul(swap(g), swap(a)) };
    },
  });
}

/** x [n, in] · w [in, out]. */
export function mm(x: tf.Tensor, w: tf.Tensor): tf.Tensor2D {
  return tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D);
}

/** Batched x [b, n, k] · w [b, k, m]. */
export function bmm(x: tf.Tensor, w: tf.Tensor): tf.Tensor3D {
  return tf.matMul(x as tf.Tensor3D, w as tf.Tensor3D);
}

/**
 * Rows of x by index. The wasm backend lacks UnsortedSegmentSum, which tf.gather's gradient needs; the
 * backward here scatters with ScatterNd, which sums repeated indices the same way. GatherNd, not
 * GatherV2: on wasm it copies whole rows and runs ~15× faster.
 */
export function gatherRows(x: tf.Tensor, idx: tf.Tensor1D): tf.Tensor {
  // The index goes through `save`: tensors a gradient only closes over are gone by the backward pass.
  const f = tf.customGrad((t, save) => {
    const src = t as tf.Tensor;
    (save as tf.GradSaveFunc)([idx]);
    return {
      value: tf.gatherND(src, tf.expandDims(idx, 1)),
      gradFunc: (dy, saved) => tf.scatterND(tf.expandDims(saved[0], 1), dy as tf.Tensor, src.shape),
    };
  });
  return f(x);
}

/** The adjoint of gatherRows: out[idx[i]] += y[i], out having `rows` rows. */
export function scatterRows(y: tf.Tensor, idx: tf.Tensor1D, rows: number): tf.Tensor {
  const f = tf.customGrad((t, save) => {
    const src = t as tf.Tensor;
    (save as tf.GradSaveFunc)([idx]);
    return {
      value: tf.scatterND(tf.expandDims(idx, 1), src, [rows, ...src.shape.slice(1)]),
      gradFunc: (dy, saved) => tf.gatherND(dy as tf.Tensor, tf.expandDims(saved[0], 1)),
    };
  });
  return f(y);
}

/** One-hot rows times a table: an embedding lookup whose gradient works on wasm. */
export function embed(table: tf.Tensor, ids: readonly number[]): tf.Tensor2D {
  const hot = tf.cast(tf.oneHot(tf.tensor1d([...ids], 'int32'), table.shape[0]), 'float32');
  return mm(hot, table);
}
