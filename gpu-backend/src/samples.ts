// Deterministic inputs for `switchyard-gpu check`, the tests and the benchmarks: a prompt as a chat opens one
// and a controller state, the same for a seed on every machine.
import { Rng } from '@switchyard/shared';

/** A prompt of `n` tokens: <bos> (256), then byte tokens below `vocab`. */
export function samplePrompt(seed: number, n: number, vocab = 256): number[] {
  const rng = new Rng(seed);
  return [256, ...Array.from({ length: n - 1 }, () => Math.floor(rng.next() * vocab))];
}

/** An h of width H in (−1, 1), as the controller's tanh leaves it. */
export function sampleH(seed: number, H: number): Float32Array {
  const rng = new Rng(seed + 1000);
  return Float32Array.from({ length: H }, () => Math.tanh(rng.normal()));
}
