// A one-worker JobRunner that unit tests drive by hand, so that what joins a batch does not depend on timing.
import type { Job, JobResult } from '../src/jobs.ts';
import type { Dispatch, JobRunner } from '../src/worker-pool.ts';

export class ManualRunner<J extends Job = Job> implements JobRunner {
  queue: (() => Dispatch | undefined)[] = [];
  running?: Dispatch;
  jobs: J[] = [];

  /** `result` computes what the worker answers for a job. */
  constructor(private readonly result: (job: J) => JobResult) {}

  schedule(take: () => Dispatch | undefined): void {
    this.queue.push(take);
  }

  /** The worker takes the next queued item that has work; returns its job. */
  free(): J | undefined {
    while (this.queue.length) {
      const d = this.queue.shift()!();
      if (d) {
        this.running = d;
        this.jobs.push(d.job as J);
        return d.job as J;
      }
    }
    return undefined;
  }

  /** Completes the running job, or fails it with `fail`. */
  finish(fail?: Error): void {
    const d = this.running!;
    this.running = undefined;
    if (fail) return d.settle({ ok: false, error: fail });
    d.settle({ ok: true, computeUs: 42, result: this.result(d.job as J) });
  }
}
