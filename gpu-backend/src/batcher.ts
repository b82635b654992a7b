// Dynamic batching per expert: steps for the same expert, from any number of sessions, wait up to maxWaitMs
// (or until maxBatch rows are there) and then run as one batched step. The batch is cut when a worker
// actually takes it, so rows that arrive while the workers are busy join it.
import type { StepJob } from './jobs.ts';
import type { Dispatch, JobRunner } from './worker-pool.ts';

export interface RowCache {
  k: Float32Array;
  v: Float32Array;
  length: number;
}

export interface StepRowResult {
  /** [H] this row's expert output. */
  y: Float32Array;
  /** From submit to the batch being handed to a worker. */
  queueUs: number;
  /** The batch's run time in the worker. */
  computeUs: number;
  batchSize: number;
}

export interface BatcherOptions {
  maxBatch: number;
  maxWaitMs: number;
  hidden: number;
  /** A batch of `rows` for `expert` was handed to a worker (the rows left the queue). */
  onDispatch?: (expert: number, rows: number) => void;
  /** A batch finished (or failed). */
  onBatch?: (expert: number, rows: number, computeUs: number, ok: boolean) => void;
}

interface Pending {
  h: Float32Array;
  cache: RowCache;
  at: number;
  resolve: (r: StepRowResult) => void;
  reject: (e: Error) => void;
}

interface ExpertQueue {
  rows: Pending[];
  timer?: ReturnType<typeof setTimeout>;
  scheduled: boolean;
}

export class StepBatcher {
  private readonly queues = new Map<number, ExpertQueue>();
  private queuedRows = 0;

  constructor(
    private readonly runner: JobRunner,
    private readonly o: BatcherOptions,
  ) {}

  /** Rows waiting for a batch. */
  get queued(): number {
    return this.queuedRows;
  }

  submit(expert: number, h: Float32Array, cache: RowCache): Promise<StepRowResult> {
    if (h.length !== this.o.hidden)
      throw new RangeError(`step row: expected h of length ${this.o.hidden}, found ${h.length}`);
    let q = this.queues.get(expert);
    if (!q) this.queues.set(expert, (q = { rows: [], scheduled: false }));
    const queue = q;
    return new Promise((resolve, reject) => {
      queue.rows.push({ h, cache, at: performance.now(), resolve, reject });
      this.queuedRows++;
      if (queue.scheduled) return;
      if (queue.rows.length >= this.o.maxBatch || this.o.maxWaitMs === 0) this.scheduleNow(expert, queue);
      else queue.timer ??= setTimeout(() => this.scheduleNow(expert, queue), this.o.maxWaitMs);
    });
  }

  private scheduleNow(expert: number, q: ExpertQueue): void {
    clearTimeout(q.timer);
    q.timer = undefined;
    if (q.scheduled) return;
    q.scheduled = true;
    this.runner.schedule(() => this.take(expert, q));
  }

  private take(expert: number, q: ExpertQueue): Dispatch | undefined {
    q.scheduled = false;
    const rows = q.rows.splice(0, this.o.maxBatch);
    if (rows.length === 0) return undefined;
    this.queuedRows -= rows.length;
    const now = performance.now();
    if (q.rows.length) {
      const waited = now - q.rows[0].at;
      if (q.rows.length >= this.o.maxBatch || waited >= this.o.maxWaitMs) this.scheduleNow(expert, q);
      else q.timer ??= setTimeout(() => this.scheduleNow(expert, q), this.o.maxWaitMs - waited);
    }
    this.o.onDispatch?.(expert, rows.length);
    const H = this.o.hidden;
    const h = new Float32Array(rows.length * H);
    rows.forEach((r, b) => h.set(r.h, b * H));
    const job: StepJob = { kind: 'step', expert, h, rows: rows.map((r) => r.cache) };
    return {
      job,
      settle: (o) => {
        this.o.onBatch?.(expert, rows.length, o.ok ? o.computeUs : 0, o.ok);
        if (!o.ok || o.result.kind !== 'step') {
          const err = o.ok
            ? new Error(`step batch: expected a step result, found ${o.result.kind}`)
            : o.error;
          for (const r of rows) r.reject(err);
          return;
        }
        const y = o.result.y;
        rows.forEach((r, b) =>
          r.resolve({
            y: y.subarray(b * H, (b + 1) * H),
            queueUs: Math.round((now - r.at) * 1000),
            computeUs: o.computeUs,
            batchSize: rows.length,
          }),
        );
      },
    };
  }
}
