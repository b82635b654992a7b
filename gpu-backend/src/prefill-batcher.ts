// Prefills of the same expert, from any number of sessions, run as one padded batch. There is no waiting
// window: a lone prefill goes to the next free worker at once, and prompts that arrive while the workers are
// busy join the batch, which is cut when a worker takes it. A batch is bounded in padded tokens (prompts ×
// the longest), so that one long prompt does not make many short ones pay for its padding; a prompt longer
// than the bound runs alone.
import type { PromptKv } from './jobs.ts';
import type { Dispatch, JobRunner } from './worker-pool.ts';

export interface PrefillRowResult {
  cache: PromptKv;
  /** From submit to the batch being handed to a worker. */
  queueUs: number;
  /** The batch's run time in the worker. */
  computeUs: number;
  batchSize: number;
}

export interface PrefillBatcherOptions {
  /** Prompts × the longest prompt's length, at most, per batch. */
  maxTokens: number;
  /** A batch of `prompts` for `expert` finished (or failed). */
  onBatch?: (expert: number, prompts: number, computeUs: number, ok: boolean) => void;
}

interface Pending {
  tokens: Int32Array;
  at: number;
  resolve: (r: PrefillRowResult) => void;
  reject: (e: Error) => void;
}

interface ExpertQueue {
  prompts: Pending[];
  scheduled: boolean;
}

export class PrefillBatcher {
  private readonly queues = new Map<number, ExpertQueue>();
  private queuedPrompts = 0;

  constructor(
    private readonly runner: JobRunner,
    private readonly o: PrefillBatcherOptions,
  ) {
    if (!Number.isInteger(o.maxTokens) || o.maxTokens < 1)
      throw new RangeError(`prefill batch: expected maxTokens ≥ 1, found ${o.maxTokens}`);
  }

  /** Prompts waiting for a batch. */
  get queued(): number {
    return this.queuedPrompts;
  }

  submit(expert: number, tokens: Int32Array): Promise<PrefillRowResult> {
    if (tokens.length === 0)
      throw new RangeError('prefill: expected a prompt of at least one token, found none');
    let q = this.queues.get(expert);
    if (!q) this.queues.set(expert, (q = { prompts: [], scheduled: false }));
    const queue = q;
    return new Promise((resolve, reject) => {
      queue.prompts.push({ tokens, at: performance.now(), resolve, reject });
      this.queuedPrompts++;
      this.schedule(expert, queue);
    });
  }

  private schedule(expert: number, q: ExpertQueue): void {
    if (q.scheduled) return;
    q.scheduled = true;
    this.runner.schedule(() => this.take(expert, q));
  }

  /** The longest prefix of the queue whose padded size fits maxTokens (at least one prompt). */
  private cut(q: ExpertQueue): Pending[] {
    let n = 0;
    let longest = 0;
    for (const p of q.prompts) {
      const l = Math.max(longest, p.tokens.length);
      if (n > 0 && (n + 1) * l > this.o.maxTokens) break;
      longest = l;
      n++;
    }
    return q.prompts.splice(0, n);
  }

  private take(expert: number, q: ExpertQueue): Dispatch | undefined {
    q.scheduled = false;
    const batch = this.cut(q);
    if (batch.length === 0) return undefined;
    this.queuedPrompts -= batch.length;
    if (q.prompts.length) this.schedule(expert, q);
    const now = performance.now();
    return {
      job: { kind: 'prefill', expert, prompts: batch.map((p) => p.tokens) },
      settle: (o) => {
        this.o.onBatch?.(expert, batch.length, o.ok ? o.computeUs : 0, o.ok);
        if (!o.ok || o.result.kind !== 'prefill' || o.result.caches.length !== batch.length) {
          const err = o.ok
            ? new Error(
                `prefill batch: expected ${batch.length} caches, found ${o.result.kind === 'prefill' ? o.result.caches.length : `a ${o.result.kind} result`}`,
              )
            : o.error;
          for (const p of batch) p.reject(err);
          return;
        }
        const { caches } = o.result;
        batch.forEach((p, b) =>
          p.resolve({
            cache: caches[b],
            queueUs: Math.round((now - p.at) * 1000),
            computeUs: o.computeUs,
            batchSize: batch.length,
          }),
        );
      },
    };
  }
}
