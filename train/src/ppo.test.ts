import { beforeAll, describe, expect, it } from 'vitest';
import { initRandom, parseConfig, Rng } from '@switchyard/shared';
import { generateTask } from './curriculum.ts';
import { TfModel } from './model-tf.ts';
import { Adam } from './optim.ts';
import { gae, groupBaselines, PPO_DEFAULTS, ppoIteration } from './ppo.ts';
import { initTf } from './tf.ts';
import { newValueHead } from './train.ts';

beforeAll(() => initTf(), 60_000);

describe('GAE', () => {
  it('matches a hand computation with the seed settings (γ 0.99, λ 0.95)', () => {
    // δ1 = 1 − 0.5 = 0.5; δ0 = 0.99·0.5 − 0.2 = 0.295; A0 = 0.295 + 0.99·0.95·0.5 = 0.76525.
    const { advantages, returns } = gae([0.2, 0.5], 1, 0.99, 0.95);
    expect(advantages[1]).toBeCloseTo(0.5, 10);
    expect(advantages[0]).toBeCloseTo(0.76525, 10);
    expect(returns).toEqual([expect.closeTo(0.96525, 10), expect.closeTo(1, 10)]);
  });

  it('gives discounted returns at λ = 1 and one-step TD errors at λ = 0', () => {
    const v = [0.3, 0.1, 0.7];
    expect(gae(v, 1, 0.9, 1).returns.map((x) => Number(x.toFixed(10)))).toEqual([0.81, 0.9, 1]);
    expect(gae(v, 0, 0.9, 0).advantages.map((x) => Number(x.toFixed(10)))).toEqual([
      Number((0.9 * 0.1 - 0.3).toFixed(10)),
      Number((0.9 * 0.7 - 0.1).toFixed(10)),
      -0.7,
    ]);
  });
});

describe('per-task baselines', () => {
  it('are the mean reward of the other episodes of the same task', () => {
    const b = groupBaselines(['add', 'add', 'add', 'bool', 'bool'], [1, 0, 0, 1, 1]);
    expect(b).toEqual([0, 0.5, 0.5, 1, 1]);
  });

  it('fall back to the other episodes of the batch for a task seen once, and to 0 for one episode', () => {
    expect(groupBaselines(['add', 'bool', 'bool'], [1, 0, 1])).toEqual([0.5, 1, 0]);
    expect(groupBaselines(['add'], [1])).toEqual([0]);
    expect(() => groupBaselines(['add'], [1, 0])).toThrow(/1 groups for 2 rewards/);
  });
});

describe('PPO iteration', () => {
  it('samples, scores and updates the policy and the value head', () => {
    const config = parseConfig({
      arch: 'rru-moe',
      version: 1,
      vocab: 260,
      controller: { embed: 16, hidden: 32 },
      memory: { dim: 8, stm_slots: 8, ltm_atoms: 32, ltm_active: 4 },
      experts: { count: 4, top_k: 2, width: 16, layers: 1, heads: 2, ffn: 32, max_prompt: 64 },
      max_think_steps: 4,
    });
    const model = new TfModel(config, initRandom(config, 1));
    const head = newValueHead(config, 1);
    const before = model.hostVars().get('head.w')!.data.slice();
    const vBefore = head.get('value.w')!.dataSync().slice();
    const rng = new Rng(4);
    const batch = Array.from({ length: 4 }, () => generateTask(rng, { task: 'compare' }, 1, 'train'));
    const s = ppoIteration(model, head, new Adam(), batch, 1e-2, new Rng(1), {
      ...PPO_DEFAULTS,
      maxTokens: 8,
      epochs: 1,
    });
    expect(s.reward).toBeGreaterThanOrEqual(0);
    expect(s.reward).toBeLessThanOrEqual(1);
    expect(s.entropy).toBeGreaterThan(0);
    // One epoch on fresh rollouts: every ratio is 1, so nothing is clipped.
    expect(s.clipFraction).toBe(0);
    expect(model.hostVars().get('head.w')!.data).not.toEqual(before);
    expect(head.get('value.w')!.dataSync()).not.toEqual(vBefore);
    model.dispose();
  });
});
