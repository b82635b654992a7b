// Splits a full weights file into the edge file and expert shards, carrying the stored bytes over
// unchanged: no tensor is quantized twice.
import type { StoredTensor } from '../quant.ts';
import { normalizeShard, show, WeightsError } from './format.ts';
import type { WeightsFile } from './read.ts';
import { writeStored } from './write.ts';

export interface SplitResult {
  /** Every edge-tier tensor. */
  edge: Uint8Array;
  /** Per group: experts.embed, experts.pos and the group's experts' tensors. */
  shards: { experts: number[]; bytes: Uint8Array }[];
}

/** E experts in `groups` contiguous groups whose sizes differ by at most one (larger groups first). */
export function expertGroups(count: number, groups: number): number[][] {
  if (!Number.isInteger(groups) || groups < 1 || groups > count)
    throw new WeightsError(
      `shard count: expected an integer in [1, ${count}] (the number of experts), found ${groups}`,
    );
  const base = Math.floor(count / groups);
  const extra = count % groups;
  const out: number[][] = [];
  let next = 0;
  for (let g = 0; g < groups; g++) {
    const size = base + (g < extra ? 1 : 0);
    out.push(Array.from({ length: size }, (_, i) => next + i));
    next += size;
  }
  return out;
}

/**
 * `shards` is a number of near-equal contiguous groups, or explicit groups of expert ids (a group may
 * repeat another's experts, e.g. to replicate hot experts on two servers).
 */
export function splitWeights(file: WeightsFile, shards: number | number[][]): SplitResult {
  if (file.shard.kind !== 'full')
    throw new WeightsError(
      `splitWeights: expected a full file (it must hold the edge tensors and every expert), found a file of kind "${file.shard.kind}"`,
    );
  const { config } = file;
  let groups: number[][];
  if (typeof shards === 'number') groups = expertGroups(config.experts.count, shards);
  else if (Array.isArray(shards))
    groups = shards.map(
      (g, i) => normalizeShard(config, { kind: 'experts', experts: g }, `shards[${i}]`).experts,
    );
  else
    throw new WeightsError(
      `shards: expected a number of shards or an array of expert id groups, found ${show(shards)}`,
    );
  const stored = new Map<string, StoredTensor>(file.names().map((n) => [n, file.stored(n)]));
  return {
    edge: writeStored(config, stored, { kind: 'edge' }),
    shards: groups.map((experts) => ({
      experts,
      bytes: writeStored(config, stored, { kind: 'experts', experts }),
    })),
  };
}
