// What the HTTP thread asks an ORT worker to do, and what comes back. Typed arrays travel by structured
// clone; K/V caches live in SharedArrayBuffers, so a step batch hands the worker views, not copies.
import type { ComputeMode, Provider } from './config.ts';

export type ResolvedProvider = 'cuda' | 'webgpu' | 'cpu';

export interface WorkerInit {
  /** The weights file; backed by a SharedArrayBuffer so every worker reads the same bytes. */
  weights: Uint8Array;
  experts: number[];
  provider: Provider;
  threads: number;
  spin: boolean;
  compute: ComputeMode;
}

export type WorkerReady =
  | { type: 'ready'; provider: ResolvedProvider; fallback?: string }
  | { type: 'init-failed'; error: { name: string; message: string } };

/**
 * Prefill of one or more prompts for one expert, in one batched run (the prompts padded to the longest):
 * each prompt's tokens [L] → its K and V [layers, heads, L, dh], the step graph's cache layout.
 */
export interface PrefillJob {
  kind: 'prefill';
  expert: number;
  prompts: Int32Array[];
}

/** One prompt's cache, in SharedArrayBuffers so that any worker's step batch reads it without a copy. */
export interface PromptKv {
  length: number;
  k: Float32Array;
  v: Float32Array;
}

export interface PrefillResult {
  kind: 'prefill';
  /** In the order of the job's prompts. */
  caches: PromptKv[];
}

/**
 * One batched step: row b is h[b] over its own cache of `length` positions (k, v [layers, heads, length,
 * dh], as the prefill returned them).
 */
export interface StepJob {
  kind: 'step';
  expert: number;
  /** [B, H] */
  h: Float32Array;
  rows: { k: Float32Array; v: Float32Array; length: number }[];
}

export interface StepResult {
  kind: 'step';
  /** [B, H] */
  y: Float32Array;
  /** Step-graph runs the batch took (rows of very different prompt lengths run apart). */
  runs: number;
  /** Of the compute time, how long went to copying the rows' caches into the graph's inputs. */
  packUs: number;
}

/** The stateless expert-{e} graph: prefill and step for B padded prompts in one run. */
export interface StatelessJob {
  kind: 'stateless';
  expert: number;
  /** [B, P] */
  tokens: BigInt64Array;
  /** [B] */
  promptLen: BigInt64Array;
  /** [B, H] */
  h: Float32Array;
  batch: number;
  width: number;
}

export interface StatelessResult {
  kind: 'stateless';
  y: Float32Array;
}

export type Job = PrefillJob | StepJob | StatelessJob;
export type JobResult = PrefillResult | StepResult | StatelessResult;
export type ResultOf<J extends Job> = Extract<JobResult, { kind: J['kind'] }>;

export type WorkerReply =
  | { type: 'done'; id: number; result: JobResult; computeUs: number }
  | { type: 'failed'; id: number; error: { name: string; message: string } };

export interface WorkerRequest {
  type: 'job';
  id: number;
  job: Job;
}
