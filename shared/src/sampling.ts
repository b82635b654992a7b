// Token choice: greedy, or temperature / top-p sampling from a seeded generator.
import type { Rng } from './random.ts';

export interface SamplingOptions {
  /** 0 means greedy. */
  temperature: number;
  /** Nucleus mass in (0, 1]. */
  topP: number;
}

/** Argmax with ties to the lower id. */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  if (opts.temperature <= 0) return argmax(logits);
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[i]);
  const p = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += p[i] = Math.exp((logits[i] - max) / opts.temperature);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
  // The nucleus: the fewest most-likely tokens whose mass reaches topP.
  let kept = 0;
  let mass = 0;
  while (kept < n && (kept === 0 || mass < opts.topP * sum)) mass += p[order[kept++]];
  let u = rng.next() * mass;
  for (let i = 0; i < kept; i++) {
    u -= p[order[i]];
    if (u < 0) return order[i];
  }
  return order[kept - 1];
}
