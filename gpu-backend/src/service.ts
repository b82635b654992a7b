// What the endpoints ask of the tier: a session's step over its routed experts (prompt cache, prefill on a
// miss, batched step), a stateless run for KServe, dropping a session. Knows nothing of HTTP.
import {
  hex,
  promptDigest,
  type DecodeLimits,
  type ModelConfig,
  type NeedPrompt,
  type StepRequest,
  type StepResponse,
} from '@switchyard/shared';
import type { StepBatcher } from './batcher.ts';
import { InternalError, InvalidRequestError, OverloadedError } from './errors.ts';
import type { ServerMetrics } from './metrics.ts';
import type { PrefillBatcher } from './prefill-batcher.ts';
import type { PromptCache, PromptEntry } from './prompt-cache.ts';
import type { JobRunner } from './worker-pool.ts';
import type { JobResult } from './jobs.ts';

export interface ServiceOptions {
  config: ModelConfig;
  /** Expert ids this server hosts, ascending. */
  served: readonly number[];
  cache: PromptCache;
  batcher: StepBatcher;
  /** Prefills of one expert from several sessions run as one batch. */
  prefills: PrefillBatcher;
  runner: JobRunner;
  /** Shared with the batcher, which releases rows as it hands them to a worker. */
  admission: AdmissionQueue;
  metrics: ServerMetrics;
}

/**
 * Rows admitted and not yet handed to a worker. Admission is all or nothing per request, so a request is
 * either refused up front with 429 or carried through.
 */
export class AdmissionQueue {
  private depth = 0;
  constructor(readonly limit: number) {}

  get size(): number {
    return this.depth;
  }

  admit(rows: number): void {
    if (this.depth + rows > this.limit)
      throw new OverloadedError(
        `overloaded: ${this.depth} rows are queued and this request adds ${rows}; the queue limit is ${this.limit}. Retry after the Retry-After delay`,
        1,
      );
    this.depth += rows;
  }

  release(rows: number): void {
    this.depth = Math.max(0, this.depth - rows);
  }
}

const ms = (us: number) => us / 1e6;

export class ExpertService {
  readonly limits: DecodeLimits;
  private readonly served: Set<number>;
  private readonly prefilling = new Map<string, Promise<{ entry: PromptEntry; computeUs: number }>>();

  constructor(private readonly o: ServiceOptions) {
    this.served = new Set(o.served);
    this.limits = {
      maxExperts: o.config.experts.count,
      hidden: o.config.controller.hidden,
      vocab: o.config.vocab,
      maxPromptTokens: o.config.experts.max_prompt,
    };
  }

  get config(): ModelConfig {
    return this.o.config;
  }

  get servedExperts(): readonly number[] {
    return this.o.served;
  }

  serves(expert: number): boolean {
    return this.served.has(expert);
  }

  private checkServed(experts: readonly number[]): void {
    const missing = experts.filter((e) => !this.served.has(e));
    if (missing.length)
      throw new InvalidRequestError(
        `expert${missing.length > 1 ? 's' : ''} [${missing.join(', ')}] not served here: this server hosts experts [${this.o.served.join(', ')}]`,
      );
  }

  /** One session-step over the routed experts: a STEP_RESPONSE, or NEED_PROMPT when the cache lacks it. */
  async step(req: StepRequest): Promise<StepResponse | NeedPrompt> {
    this.checkServed(req.experts);
    const digest = hex(req.digest);
    if (req.tokens) {
      const actual = await promptDigest(req.tokens);
      if (hex(actual) !== digest)
        throw new InvalidRequestError(
          `prompt digest mismatch: the ${req.tokens.length} tokens hash to ${hex(actual)}, the request names ${digest}; ` +
            'expected SHA-256 of the tokens as little-endian u16 (promptDigest)',
        );
    }
    const { cache, metrics } = this.o;
    const hits = req.experts.map((e) => cache.get(req.sessionId, e, digest));
    if (!req.tokens && hits.some((h) => !h)) {
      metrics.needPrompt.inc();
      return {
        type: 'need-prompt',
        sessionId: req.sessionId,
        requestId: req.requestId,
        step: req.step,
        digest: req.digest,
      };
    }
    const K = req.experts.length;
    // The rows leave the admission queue when their batch goes to a worker (the batcher's onDispatch).
    this.o.admission.admit(K);
    const run = async (e: number, i: number) => {
      let prefillUs = 0;
      let entry = hits[i];
      if (!entry) {
        try {
          const p = await this.prefill(req.sessionId, e, digest, req.tokens!);
          entry = p.entry;
          prefillUs = p.computeUs;
        } catch (err) {
          this.o.admission.release(1);
          throw err;
        }
      }
      const r = await this.o.batcher.submit(e, req.h, entry);
      metrics.expertSeconds.observe({ expert: e, phase: 'step' }, ms(r.queueUs + r.computeUs));
      return { ...r, computeUs: r.computeUs + prefillUs };
    };
    const rows = await Promise.all(req.experts.map(run));
    const H = this.o.config.controller.hidden;
    let values: Float32Array;
    if (req.perExpert) {
      values = new Float32Array(K * H);
      rows.forEach((r, i) => values.set(r.y, i * H));
    } else {
      // Same order and float32 accumulation as the reference: m += g_i · y_i, expert by expert.
      values = new Float32Array(H);
      rows.forEach((r, i) => {
        const g = req.gates[i];
        for (let j = 0; j < H; j++) values[j] += g * r.y[j];
      });
    }
    return {
      type: 'step-response',
      sessionId: req.sessionId,
      requestId: req.requestId,
      step: req.step,
      dtype: req.responseDtype,
      perExpert: req.perExpert,
      experts: req.experts,
      queueUs: clampU32(Math.max(...rows.map((r) => r.queueUs))),
      computeUs: clampU32(Math.max(...rows.map((r) => r.computeUs))),
      values,
    };
  }

  /** Prefills (session, expert) once even when several requests miss at the same time. */
  private prefill(
    sessionId: string,
    expert: number,
    digest: string,
    tokens: readonly number[],
  ): Promise<{ entry: PromptEntry; computeUs: number }> {
    const key = `${expert}\u0000${digest}\u0000${sessionId}`;
    let p = this.prefilling.get(key);
    if (!p) {
      const t0 = performance.now();
      p = this.o.prefills
        .submit(expert, Int32Array.from(tokens))
        .then(({ cache: kv, computeUs }) => {
          const entry: PromptEntry = { sessionId, expert, digest, ...kv };
          // Cached for later steps; this request uses the entry directly, so an eviction cannot fail it.
          this.o.cache.set(entry);
          this.o.metrics.prefills.inc({ expert });
          this.o.metrics.expertSeconds.observe({ expert, phase: 'prefill' }, (performance.now() - t0) / 1000);
          return { entry, computeUs };
        })
        .finally(() => this.prefilling.delete(key));
      this.prefilling.set(key, p);
    }
    return p;
  }

  /** The stateless expert-{e} model for B padded prompts: y [B, H]. Inputs are already validated. */
  async stateless(
    expert: number,
    tokens: BigInt64Array,
    promptLen: BigInt64Array,
    h: Float32Array,
  ): Promise<Float32Array> {
    this.checkServed([expert]);
    const batch = promptLen.length;
    this.o.admission.admit(batch);
    const t0 = performance.now();
    let released = false;
    try {
      const { result } = await new Promise<{ result: JobResult }>((resolve, reject) =>
        this.o.runner.schedule(() => {
          released = true;
          this.o.admission.release(batch);
          return {
            job: { kind: 'stateless', expert, tokens, promptLen, h, batch, width: tokens.length / batch },
            settle: (o) => (o.ok ? resolve({ result: o.result }) : reject(o.error)),
          };
        }),
      );
      if (result.kind !== 'stateless')
        throw new InternalError(`stateless: expected its result, found ${result.kind}`);
      this.o.metrics.expertSeconds.observe({ expert, phase: 'stateless' }, (performance.now() - t0) / 1000);
      return result.y;
    } finally {
      if (!released) this.o.admission.release(batch);
    }
  }

  /** Frees a session's prompt caches; returns how many entries went. */
  drop(sessionId: string): number {
    return this.o.cache.dropSession(sessionId);
  }
}

function clampU32(x: number): number {
  return Math.min(0xffffffff, Math.max(0, Math.round(x)));
}
