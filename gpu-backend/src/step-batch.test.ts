import { describe, expect, it } from 'vitest';
import { preset } from '@switchyard/shared';
import {
  CacheShapeError,
  checkCacheRow,
  packLayer,
  planStepGroups,
  stepGroupCost,
  type CacheRow,
  type GroupCost,
} from './step-batch.ts';

/** The plan's total cost, computed independently of the planner. */
const total = (lengths: number[], groups: number[][], c: GroupCost) =>
  groups.reduce((s, g) => s + c.run + g.length * (c.row + Math.max(...g.map((i) => lengths[i]))), 0);

/** Every way to cut the sorted rows into contiguous groups (2^(n-1) plans): the optimum by brute force. */
function bruteForce(lengths: number[], c: GroupCost): number {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b]);
  let best = Infinity;
  for (let mask = 0; mask < 1 << (order.length - 1); mask++) {
    const groups: number[][] = [[]];
    order.forEach((i, k) => {
      groups[groups.length - 1].push(i);
      if (k < order.length - 1 && mask & (1 << k)) groups.push([]);
    });
    best = Math.min(best, total(lengths, groups, c));
  }
  return best;
}

describe('planStepGroups', () => {
  const cost = { run: 100, row: 5 };

  it('keeps rows of similar length in one batch, in their order', () => {
    expect(planStepGroups([64, 64, 64], cost)).toEqual([[0, 1, 2]]);
    expect(planStepGroups([60, 64, 50], cost)).toEqual([[2, 0, 1]]);
  });

  it('runs a long prompt apart when padding the short ones to it would cost more than a second run', () => {
    // One batch: 100 + 4·(5 + 900) = 3720; two: 100 + 3·(5 + 10) + 100 + 905 = 1150.
    expect(planStepGroups([10, 900, 10, 10], cost)).toEqual([[0, 2, 3], [1]]);
  });

  it('covers every row exactly once and finds the cheapest cut', () => {
    const cases = [[1], [5, 3], [7, 300, 12, 12, 40, 41, 200, 1], [100, 1, 1, 1, 1, 1, 100, 100, 50]];
    for (const lengths of cases) {
      const groups = planStepGroups(lengths, cost);
      expect(
        groups.flat().sort((a, b) => a - b),
        `${lengths}`,
      ).toEqual(lengths.map((_, i) => i));
      expect(total(lengths, groups, cost), `${lengths}`).toBeCloseTo(bruteForce(lengths, cost), 9);
    }
  });

  it('with the r1-seed costs, a batch of equal prompts stays one run and a 1000-token outlier is split off', () => {
    const c = stepGroupCost(preset('r1-seed').experts);
    expect(planStepGroups(Array(64).fill(64), c)).toHaveLength(1);
    const lengths = [...Array(63).fill(20), 1000];
    expect(planStepGroups(lengths, c)).toEqual([Array.from({ length: 63 }, (_, i) => i), [63]]);
  });
});

describe('packLayer', () => {
  const shape = { layers: 2, heads: 2, dh: 3 };
  /** A row whose value at [l, h, t, d] is row·1000 + l·100 + h·10 + t + d/10. */
  const row = (id: number, L: number): CacheRow => {
    const f = (bias: number) => {
      const x = new Float32Array(shape.layers * shape.heads * L * shape.dh);
      for (let l = 0; l < shape.layers; l++)
        for (let h = 0; h < shape.heads; h++)
          for (let t = 0; t < L; t++)
            for (let d = 0; d < shape.dh; d++)
              x[((l * shape.heads + h) * L + t) * shape.dh + d] =
                bias + id * 1000 + l * 100 + h * 10 + t + d / 10;
      return x;
    };
    return { k: f(0), v: f(0.05), length: L };
  };

  it('places each row, head by head, at [b, h, 0..L) of a [B, heads, P, dh] buffer and leaves the rest', () => {
    const rows = [row(1, 2), row(2, 4), row(3, 1)];
    const P = 4;
    for (const which of ['k', 'v'] as const) {
      const dst = new Float32Array(rows.length * shape.heads * P * shape.dh).fill(-1);
      packLayer(rows, which, 1, P, shape, dst);
      rows.forEach((r, b) => {
        for (let h = 0; h < shape.heads; h++)
          for (let t = 0; t < P; t++)
            for (let d = 0; d < shape.dh; d++) {
              const got = dst[((b * shape.heads + h) * P + t) * shape.dh + d];
              const bias = which === 'v' ? 0.05 : 0;
              const want = t < r.length ? bias + (b + 1) * 1000 + 100 + h * 10 + t + d / 10 : -1;
              expect(got).toBeCloseTo(want, 3);
            }
      });
    }
  });

  it('refuses a row whose k/v size does not match its length', () => {
    expect(() => checkCacheRow(row(1, 3), shape)).not.toThrow();
    const bad = { ...row(1, 3), length: 4 };
    expect(() => checkCacheRow(bad, shape)).toThrow(CacheShapeError);
    expect(() => checkCacheRow(bad, shape)).toThrow(/expected k and v of 48 floats .* found 36 and 36/);
  });
});
