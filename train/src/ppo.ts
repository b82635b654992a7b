// The reinforcement stage: PPO on answer correctness with the seed's settings (γ = 0.99, λ = 0.95,
// entropy coefficient β = 0.01) and the clipped objective. The value head lives only here; the exported
// model is the policy alone.
import { decodeTokens, THINK } from '@switchyard/shared';
import type { Example } from './curriculum.ts';
import type { TfModel } from './model-tf.ts';
import type { Adam } from './optim.ts';
import { promptTokens } from './sequences.ts';
import { tf } from './tf.ts';
import { balanceLoss } from './losses.ts';

export interface PpoOptions {
  gamma: number;
  lambda: number;
  entropy: number;
  clip: number;
  valueWeight: number;
  balanceWeight: number;
  /** Passes over each batch of rollouts. */
  epochs: number;
  temperature: number;
  maxTokens: number;
  /**
   * What is subtracted from an episode's reward before GAE. 'task': the mean reward of the other
   * rollouts of the same task type in the batch (leave-one-out, so it stays an unbiased baseline).
   * Success rates differ by task type from 0% to 70%+, and a fresh value head cannot tell the tasks
   * apart, so without it every easy-task success looked like a large advantage and every hard-task
   * failure like a small one: the first run's PPO lowered accuracy. 'none': the raw reward.
   */
  baseline: 'task' | 'none';
}

export const PPO_DEFAULTS: PpoOptions = {
  gamma: 0.99,
  lambda: 0.95,
  entropy: 0.01,
  clip: 0.2,
  valueWeight: 0.5,
  balanceWeight: 0.02,
  epochs: 2,
  temperature: 1,
  maxTokens: 40,
  baseline: 'task',
};

/**
 * Leave-one-out per-group baselines: for each episode, the mean reward of the other episodes of its
 * group; an episode alone in its group falls back to the mean of all other episodes (0 when alone).
 */
export function groupBaselines(groups: readonly string[], rewards: readonly number[]): number[] {
  if (groups.length !== rewards.length)
    throw new Error(
      `groupBaselines: ${groups.length} groups for ${rewards.length} rewards; expected one each`,
    );
  const sum = new Map<string, number>();
  const count = new Map<string, number>();
  groups.forEach((g, i) => {
    sum.set(g, (sum.get(g) ?? 0) + rewards[i]);
    count.set(g, (count.get(g) ?? 0) + 1);
  });
  const total = rewards.reduce((a, x) => a + x, 0);
  return groups.map((g, i) => {
    const n = count.get(g)! - 1;
    if (n > 0) return (sum.get(g)! - rewards[i]) / n;
    return rewards.length > 1 ? (total - rewards[i]) / (rewards.length - 1) : 0;
  });
}

/** Generalized advantage estimation over one episode with a single terminal reward. */
export function gae(
  values: readonly number[],
  reward: number,
  gamma: number,
  lambda: number,
): { advantages: number[]; returns: number[] } {
  const n = values.length;
  const advantages = new Array<number>(n).fill(0);
  let next = 0; // A_{t+1}
  for (let t = n - 1; t >= 0; t--) {
    const r = t === n - 1 ? reward : 0;
    const vNext = t === n - 1 ? 0 : values[t + 1];
    const delta = r + gamma * vNext - values[t];
    next = delta + gamma * lambda * next;
    advantages[t] = next;
  }
  return { advantages, returns: advantages.map((a, t) => a + values[t]) };
}

export interface PpoStats {
  reward: number;
  policyLoss: number;
  valueLoss: number;
  entropy: number;
  clipFraction: number;
  routed: number[];
}

export function valueOf(head: Map<string, tf.Variable>, h: tf.Tensor, m: tf.Tensor): tf.Tensor {
  return tf.reshape(
    tf.add(tf.matMul(tf.concat([h, m], 1), head.get('value.w')!), head.get('value.b')!),
    [-1],
  );
}

/** One PPO iteration: sample answers for `batch`, score them, and update the policy and the value head. */
export function ppoIteration(
  model: TfModel,
  head: Map<string, tf.Variable>,
  adam: Adam,
  batch: readonly Example[],
  lr: number,
  rng: { next(): number },
  opts: PpoOptions = PPO_DEFAULTS,
): PpoStats {
  const Lmax = model.config.experts.max_prompt;
  const prompts = batch.map((e) => promptTokens(e.prompt, Lmax));
  // The value head reads a copy of [h; m]: its loss must not move the policy's features.
  const detachedValue = (h: tf.Tensor, m: tf.Tensor) =>
    valueOf(head, tf.tensor(h.dataSync(), h.shape), tf.tensor(m.dataSync(), m.shape));
  const roll = model.generate(prompts, {
    maxTokens: opts.maxTokens,
    temperature: opts.temperature,
    rng,
    valueHead: detachedValue,
  });
  const B = batch.length;
  const rewards: number[] = batch.map((e, b) => (decodeTokens(roll.answer[b]) === e.answer ? 1 : 0));
  const T = Math.max(...roll.tokens.map((t) => t.length));
  const adv: number[] = [];
  const ret: number[] = [];
  const oldLogp: number[] = [];
  const actions: number[] = [];
  const policyMask: number[] = [];
  const validMask: number[] = [];
  const base =
    opts.baseline === 'task'
      ? groupBaselines(
          batch.map((e) => e.task),
          rewards,
        )
      : rewards.map(() => 0);
  const perSeq = roll.tokens.map((_, b) =>
    gae(roll.values[b], rewards[b] - base[b], opts.gamma, opts.lambda),
  );
  // Advantages normalized over the batch: the scale of a 0/1 reward says little by itself.
  const all = perSeq.flatMap((s, b) => s.advantages.filter((_, t) => !roll.forced[b][t]));
  const mean = all.reduce((a, x) => a + x, 0) / Math.max(1, all.length);
  const std = Math.sqrt(all.reduce((a, x) => a + (x - mean) ** 2, 0) / Math.max(1, all.length)) || 1;
  for (let t = 0; t < T; t++)
    for (let b = 0; b < B; b++) {
      const real = t < roll.tokens[b].length;
      validMask.push(real ? 1 : 0);
      policyMask.push(real && !roll.forced[b][t] ? 1 : 0);
      actions.push(real ? roll.tokens[b][t] : 0);
      oldLogp.push(real ? roll.logProbs[b][t] : 0);
      adv.push(real ? (perSeq[b].advantages[t] - mean) / std : 0);
      ret.push(real ? perSeq[b].returns[t] : 0);
    }
  const inputs = roll.tokens.map((toks) => [THINK, ...toks.slice(0, -1)]);
  const names = [...model.vars.keys()];
  const varList = [...model.vars.values(), ...head.values()];
  let stats: PpoStats = { reward: 0, policyLoss: 0, valueLoss: 0, entropy: 0, clipFraction: 0, routed: [] };
  const nPolicy = Math.max(
    1,
    policyMask.reduce((a, x) => a + x, 0),
  );
  const nValid = Math.max(
    1,
    validMask.reduce((a, x) => a + x, 0),
  );
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const { value, grads } = tf.variableGrads(() => {
      const p = model.prepare();
      const f = model.forward(p, prompts, inputs);
      const logp = tf.logSoftmax(f.logits); // [T*B, V]
      const V = f.logits.shape[1];
      const hot = tf.cast(tf.oneHot(tf.tensor1d(actions, 'int32'), V), 'float32');
      const newLogp = tf.sum(tf.mul(logp, hot), 1);
      const ratio = tf.exp(tf.sub(newLogp, tf.tensor1d(oldLogp)));
      const a = tf.tensor1d(adv);
      const pm = tf.tensor1d(policyMask);
      const surrogate = tf.minimum(
        tf.mul(ratio, a),
        tf.mul(tf.clipByValue(ratio, 1 - opts.clip, 1 + opts.clip), a),
      );
      const policyLoss = tf.div(tf.neg(tf.sum(tf.mul(surrogate, pm))), nPolicy);
      const entropy = tf.div(tf.sum(tf.mul(tf.neg(tf.sum(tf.mul(tf.exp(logp), logp), 1)), pm)), nPolicy);
      const hm = [tf.tensor(f.h.dataSync(), f.h.shape), tf.tensor(f.m.dataSync(), f.m.shape)] as const;
      const v = valueOf(head, hm[0], hm[1]);
      const valueLoss = tf.div(
        tf.sum(tf.mul(tf.square(tf.sub(v, tf.tensor1d(ret))), tf.tensor1d(validMask))),
        nValid,
      );
      const bal = balanceLoss(f, validMask, model.config.experts.count, model.config.experts.top_k);
      const r = ratio.dataSync();
      let clipped = 0;
      for (let i = 0; i < r.length; i++) if (policyMask[i] && Math.abs(r[i] - 1) > opts.clip) clipped++;
      stats = {
        reward: rewards.reduce((x, y) => x + y, 0) / B,
        policyLoss: policyLoss.dataSync()[0],
        valueLoss: valueLoss.dataSync()[0],
        entropy: entropy.dataSync()[0],
        clipFraction: clipped / nPolicy,
        routed: bal.routed,
      };
      return tf.addN([
        policyLoss,
        tf.mul(entropy, -opts.entropy),
        tf.mul(valueLoss, opts.valueWeight),
        tf.mul(bal.loss, opts.balanceWeight),
      ]) as tf.Scalar;
    }, varList);
    const byName = new Map<string, tf.Tensor>();
    const all = new Map<string, tf.Variable>([...model.vars, ...head]);
    for (const n of [...names, ...head.keys()]) {
      const g = grads[all.get(n)!.name];
      if (g) byName.set(n, g);
    }
    adam.apply(all, byName, lr);
    value.dispose();
    for (const g of Object.values(grads)) g.dispose();
  }
  return stats;
}
