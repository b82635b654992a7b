import { beforeAll, describe, expect, it } from 'vitest';
import { gatherRows, initTf, scatterRows, tf } from './tf.ts';

beforeAll(() => initTf(), 60_000);

/** Central-difference gradient of a scalar function of one tensor's values. */
function numericGrad(f: (x: tf.Tensor) => tf.Scalar, x0: number[], shape: number[], h = 1e-2): number[] {
  return x0.map((_, i) => {
    const plus = [...x0];
    const minus = [...x0];
    plus[i] += h;
    minus[i] -= h;
    const fp = tf.tidy(() => f(tf.tensor(plus, shape)).dataSync()[0]);
    const fm = tf.tidy(() => f(tf.tensor(minus, shape)).dataSync()[0]);
    return (fp - fm) / (2 * h);
  });
}

const grad = (f: (x: tf.Tensor) => tf.Scalar, x0: number[], shape: number[]) =>
  Array.from(tf.tidy(() => tf.grad(f)(tf.tensor(x0, shape))).dataSync());

describe('tfjs setup', () => {
  it('runs on the wasm backend with gradients and chained ops registered', () => {
    expect(tf.getBackend()).toBe('wasm');
    const x = tf.tensor([1, 2, 3]);
    // A chained op and a gradient tfjs-core only registers in its side-effect modules.
    expect((x as unknown as { square(): tf.Tensor }).square().dataSync()).toEqual(
      new Float32Array([1, 4, 9]),
    );
    expect(
      Array.from(
        tf
          .grad((t: tf.Tensor) => tf.sum(tf.sigmoid(t)))(x)
          .dataSync(),
      )[0],
    ).toBeCloseTo(0.19661, 4);
  });

  it('has a TopK gradient: the values pass theirs back to where they came from', () => {
    const w = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const x = [0.1, 0.7, 0.3, 0.5, /* row 2 */ 0.9, 0.2, 0.8, 0.4];
    const g = grad((t) => tf.sum(tf.mul(tf.topk(t, 2).values, w)), x, [2, 4]);
    expect(g).toEqual([0, 1, 0, 2, 3, 0, 4, 0]);
  });

  it('trains top-K routing with renormalized gates (numerical check)', () => {
    const x0 = [0.3, -0.2, 0.9, 0.1, -0.5, 0.4, 0.2, 0.0];
    const f = (t: tf.Tensor) => {
      const p = tf.softmax(t);
      const top = tf.topk(p, 2);
      const gates = tf.div(top.values, tf.sum(top.values, 1, true));
      return tf.sum(
        tf.mul(
          gates,
          tf.tensor2d([
            [1.5, -0.7],
            [0.3, 2.0],
          ]),
        ),
      ) as tf.Scalar;
    };
    const a = grad(f, x0, [2, 4]);
    const n = numericGrad(f, x0, [2, 4], 1e-3);
    a.forEach((v, i) => expect(v).toBeCloseTo(n[i], 3));
  });

  it('differentiates matMul (plain, transposed, batched) through its explicit-transpose gradient', () => {
    const b = tf.tensor([0.5, -1, 2, 0.25, 1, -0.5], [3, 2]);
    const c = tf.tensor([1, 2, -1, 0.5], [2, 2]);
    const a0 = [0.1, 0.2, -0.3, 0.4, 0.5, -0.6];
    const plain = (a: tf.Tensor) =>
      tf.sum(tf.mul(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), c)) as tf.Scalar;
    expect(grad(plain, a0, [2, 3])).toEqual(numericGrad(plain, a0, [2, 3]).map((v) => expect.closeTo(v, 3)));
    const bt = tf.transpose(b);
    const transB = (a: tf.Tensor) =>
      tf.sum(tf.mul(tf.matMul(a as tf.Tensor2D, bt as tf.Tensor2D, false, true), c)) as tf.Scalar;
    expect(grad(transB, a0, [2, 3])).toEqual(grad(plain, a0, [2, 3]).map((v) => expect.closeTo(v, 5)));
    const at = (a: tf.Tensor) =>
      tf.sum(
        tf.mul(tf.matMul(tf.transpose(a) as tf.Tensor2D, b as tf.Tensor2D, true, false), c),
      ) as tf.Scalar;
    expect(grad(at, a0, [2, 3])).toEqual(grad(plain, a0, [2, 3]).map((v) => expect.closeTo(v, 5)));
    const b3 = tf.stack([b, tf.mul(b, 2)]);
    const batched = (a: tf.Tensor) =>
      tf.sum(tf.square(tf.matMul(a as tf.Tensor3D, b3 as tf.Tensor3D))) as tf.Scalar;
    const x3 = [...a0, ...a0.map((v) => -v)];
    grad(batched, x3, [2, 2, 3]).forEach((v, i) =>
      expect(v).toBeCloseTo(numericGrad(batched, x3, [2, 2, 3])[i], 2),
    );
  });

  it('gathers and scatters rows with gradients that are each other', () => {
    const idx = tf.tensor1d([2, 0, 2], 'int32');
    const x0 = [1, 2, 3, 4, 5, 6];
    // Row 2 is taken twice: its gradient is the sum of both uses.
    const g = grad(
      (t) =>
        tf.sum(
          tf.mul(
            gatherRows(t, idx),
            tf.tensor2d([
              [1, 1],
              [2, 2],
              [3, 5],
            ]),
          ),
        ),
      x0,
      [3, 2],
    );
    expect(g).toEqual([2, 2, 0, 0, 4, 6]);
    const s = tf.tidy(() =>
      scatterRows(
        tf.tensor2d([
          [1, 1],
          [2, 2],
          [3, 5],
        ]),
        idx,
        3,
      ).arraySync(),
    );
    expect(s).toEqual([
      [2, 2],
      [0, 0],
      [4, 6],
    ]);
    const y0 = [1, 1, 2, 2, 3, 5];
    const gs = grad(
      (t) =>
        tf.sum(
          tf.mul(
            scatterRows(t, idx, 3),
            tf.tensor2d([
              [1, 2],
              [3, 4],
              [5, 6],
            ]),
          ),
        ),
      y0,
      [3, 2],
    );
    expect(gs).toEqual([5, 6, 1, 2, 5, 6]);
  });
});
