// The supervised losses: cross-entropy on the think and answer tokens, and the gate's balance loss.
import type { Forward } from './model-tf.ts';
import { tf } from './tf.ts';

/**
 * The Switch Transformer balance loss E·Σ_e f_e·P_e: f_e is the share of routed slots expert e got (a
 * count, no gradient), P_e its mean gate probability (with gradient). 1 when routing is uniform.
 */
export function balanceLoss(
  f: Forward,
  mask: readonly number[],
  E: number,
  K: number,
): { loss: tf.Scalar; routed: number[] } {
  const routed = new Array<number>(E).fill(0);
  let valid = 0;
  f.experts.forEach((chosen, t) => {
    for (let b = 0; b < f.B; b++) {
      if (!mask[t * f.B + b]) continue;
      valid++;
      for (let k = 0; k < K; k++) routed[chosen[b * K + k]]++;
    }
  });
  const share = routed.map((n) => n / Math.max(1, valid * K));
  const m = tf.tensor2d([...mask], [mask.length, 1]);
  const meanProb = tf.div(tf.sum(tf.mul(f.probs, m), 0), Math.max(1, valid)); // [E]
  const loss = tf.mul(tf.sum(tf.mul(meanProb, tf.tensor1d(share))), E) as tf.Scalar;
  return { loss, routed };
}

/** Mean cross-entropy over real steps, with teacher-forced accuracy on the side. */
export function crossEntropy(
  logits: tf.Tensor2D,
  targets: readonly number[],
  mask: readonly number[],
  B: number,
): { loss: tf.Scalar; tokenAcc: number; seqAcc: number } {
  const V = logits.shape[1];
  const logp = tf.logSoftmax(logits);
  const hot = tf.cast(tf.oneHot(tf.tensor1d([...targets], 'int32'), V), 'float32');
  const m = tf.tensor1d([...mask]);
  const n = mask.reduce((a, b) => a + b, 0);
  const loss = tf.div(tf.neg(tf.sum(tf.mul(tf.sum(tf.mul(logp, hot), 1), m))), n) as tf.Scalar;
  const pred = tf.argMax(logits, 1).dataSync();
  let right = 0;
  const seqOk = new Array<boolean>(B).fill(true);
  for (let i = 0; i < targets.length; i++) {
    if (!mask[i]) continue;
    if (pred[i] === targets[i]) right++;
    else seqOk[i % B] = false;
  }
  return { loss, tokenAcc: right / n, seqAcc: seqOk.filter(Boolean).length / B };
}
