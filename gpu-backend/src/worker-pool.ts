// The ORT worker threads and the one queue in front of them. Work is handed out lazily: a queued item is a
// `take` function called only when a worker is free, so a step batch is cut at the last moment and picks up
// every row that arrived while the workers were busy.
import { Worker } from 'node:worker_threads';
import type { Provider, ComputeMode } from './config.ts';
import { InternalError } from './errors.ts';
import type { Job, JobResult, ResolvedProvider, WorkerInit, WorkerReady, WorkerReply } from './jobs.ts';

export interface Dispatch {
  job: Job;
  /** Called once with the outcome. */
  settle(outcome: JobOutcome): void;
}

export type JobOutcome = { ok: true; result: JobResult; computeUs: number } | { ok: false; error: Error };

/** What the batcher and the service need from the pool (tests substitute a fake). */
export interface JobRunner {
  /** Queues `take`; it is called when a worker is free and returns the job to run, or nothing. */
  schedule(take: () => Dispatch | undefined): void;
}

export interface PoolOptions {
  size: number;
  weights: Uint8Array;
  experts: number[];
  provider: Provider;
  threads: number;
  /** Default false: ORT threads sleep between ops instead of spinning. */
  spin?: boolean;
  compute: ComputeMode;
  log?: (line: string) => void;
}

export class WorkerStartError extends Error {
  override name = 'WorkerStartError';
}

interface Slot {
  worker: Worker;
  current?: { id: number; dispatch: Dispatch };
  detach?: () => void;
}

const WORKER_URL = new URL('./ort-worker.mjs', import.meta.url);

function spawn(
  init: WorkerInit,
): Promise<{ worker: Worker; ready: Extract<WorkerReady, { type: 'ready' }> }> {
  const weights = init.weights;
  if (!(weights.buffer instanceof SharedArrayBuffer))
    throw new TypeError(
      'worker pool: expected the weights in a SharedArrayBuffer, found a plain ArrayBuffer',
    );
  const worker = new Worker(WORKER_URL, { workerData: init });
  return new Promise((resolve, reject) => {
    const onMessage = (m: WorkerReady) => {
      off();
      if (m.type === 'ready') resolve({ worker, ready: m });
      else fail(new WorkerStartError(`ORT worker failed to start: ${m.error.name}: ${m.error.message}`));
    };
    const onError = (e: Error) => fail(new WorkerStartError(`ORT worker failed to start: ${e.message}`));
    const onExit = (code: number) =>
      fail(new WorkerStartError(`ORT worker exited with code ${code} while starting`));
    // Only our own listeners: Worker keeps internal ones that removeAllListeners would take too.
    const off = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    const fail = (e: Error) => {
      off();
      void worker.terminate();
      reject(e);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

export class WorkerPool implements JobRunner {
  private readonly queue: (() => Dispatch | undefined)[] = [];
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private closing = false;
  private pumping = false;
  private idleWaiters: (() => void)[] = [];

  private constructor(
    private readonly init: WorkerInit,
    readonly provider: ResolvedProvider,
    /** Why 'auto' did not get CUDA, when it did not. */
    readonly fallback: string | undefined,
    private readonly log: (line: string) => void,
  ) {}

  /** Starts the workers one after the other: the first settles the provider, the rest are told it. */
  static async start(o: PoolOptions): Promise<WorkerPool> {
    const base: WorkerInit = {
      weights: o.weights,
      experts: o.experts,
      provider: o.provider,
      threads: o.threads,
      spin: o.spin ?? false,
      compute: o.compute,
    };
    const first = await spawn(base);
    const init: WorkerInit = { ...base, provider: first.ready.provider };
    const pool = new WorkerPool(init, first.ready.provider, first.ready.fallback, o.log ?? (() => {}));
    pool.attach(first.worker);
    try {
      for (let i = 1; i < o.size; i++) pool.attach((await spawn(init)).worker);
    } catch (e) {
      await pool.terminate();
      throw e;
    }
    return pool;
  }

  get size(): number {
    return this.slots.length;
  }

  get busy(): number {
    return this.slots.filter((s) => s.current).length;
  }

  /** Items waiting for a free worker. */
  get waiting(): number {
    return this.queue.length;
  }

  schedule(take: () => Dispatch | undefined): void {
    if (this.closing) {
      const d = take();
      d?.settle({ ok: false, error: new InternalError('worker pool: closed; no more jobs run') });
      return;
    }
    this.queue.push(take);
    this.pump();
  }

  /** Runs one job as soon as a worker is free. */
  run(job: Job): Promise<{ result: JobResult; computeUs: number }> {
    return new Promise((resolve, reject) => {
      this.schedule(() => ({
        job,
        settle: (o) => (o.ok ? resolve({ result: o.result, computeUs: o.computeUs }) : reject(o.error)),
      }));
    });
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.busy === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Lets queued and running work finish, then stops the workers. */
  async close(): Promise<void> {
    await this.idle();
    this.closing = true;
    await this.terminate();
  }

  private async terminate(): Promise<void> {
    this.closing = true;
    const slots = this.slots.splice(0);
    for (const s of slots) s.detach?.();
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private attach(worker: Worker): void {
    const slot: Slot = { worker };
    const onMessage = (m: WorkerReply) => this.onReply(slot, m);
    const onError = (e: Error) => this.onDeath(slot, `ORT worker crashed: ${e.message}`);
    const onExit = (code: number) => this.onDeath(slot, `ORT worker exited with code ${code}`);
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
    slot.detach = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    this.slots.push(slot);
    this.pump();
  }

  private onReply(slot: Slot, m: WorkerReply): void {
    const cur = slot.current;
    if (!cur || cur.id !== m.id) return;
    slot.current = undefined;
    if (m.type === 'done') cur.dispatch.settle({ ok: true, result: m.result, computeUs: m.computeUs });
    else
      cur.dispatch.settle({
        ok: false,
        error: new InternalError(`inference failed: ${m.error.name}: ${m.error.message}`),
      });
    this.pump();
  }

  /** A dead worker fails its job and is replaced, so one bad run does not take the server's capacity. */
  private onDeath(slot: Slot, why: string): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    slot.detach?.();
    slot.current?.dispatch.settle({ ok: false, error: new InternalError(why) });
    slot.current = undefined;
    if (this.closing) return;
    this.log(`${why}; starting a replacement`);
    spawn(this.init).then(
      ({ worker }) => (this.closing ? void worker.terminate() : this.attach(worker)),
      (e: Error) => this.log(`could not replace the ORT worker: ${e.message}`),
    );
    this.pump();
  }

  private pump(): void {
    // A take() may schedule more work (a batcher with rows left over), which calls back into pump(); the
    // loop below already picks that up, and a nested pass would hand a slot two jobs.
    if (this.pumping) return;
    this.pumping = true;
    try {
      this.pumpLoop();
    } finally {
      this.pumping = false;
    }
    if (this.queue.length === 0 && this.busy === 0) for (const r of this.idleWaiters.splice(0)) r();
  }

  private pumpLoop(): void {
    let slot: Slot | undefined;
    while (this.queue.length && (slot = this.slots.find((s) => !s.current))) {
      const d = this.queue.shift()!();
      if (!d) continue;
      const id = this.nextId++;
      try {
        slot.worker.postMessage({ type: 'job', id, job: d.job });
        slot.current = { id, dispatch: d };
      } catch (e) {
        d.settle({
          ok: false,
          error: new InternalError(`could not hand the job to a worker: ${(e as Error).message}`),
        });
      }
    }
  }
}
