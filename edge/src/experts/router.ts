// The expert tier as one ExpertBackend: splits a step's routed experts over the shards that serve them, calls
// the shards in parallel, and mixes. Within a shard it keeps a session on one replica (the one holding its
// prompt cache), retries with backoff, fails over to the other replicas, and skips replicas whose circuit
// breaker is open.
import type { ModelConfig } from '@switchyard/shared/config';
import type { ExpertBackend, ExpertCall, ExpertResult } from '@switchyard/shared/interfaces';
export { rendezvousOrder } from './rendezvous.ts';
import { ExpertProtocolError, ExpertUnavailableError } from '../errors.ts';
import { CircuitBreaker, type BreakerState } from './breaker.ts';
import { rendezvousOrder } from './rendezvous.ts';
import type { ExpertClientSettings, ShardSpec } from './shard-map.ts';
import {
  afterCalls,
  AttemptError,
  KServeTransport,
  NativeTransport,
  type ReplicaTransport,
  type ShardResult,
  type TransportDeps,
} from './transport.ts';

export interface RouterDeps {
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  random?: () => number;
}

export interface ReplicaHealth {
  replica: number;
  ready: boolean;
  breaker: BreakerState;
}

export interface ShardHealth {
  shard: number;
  experts: number[];
  protocol: string;
  replicas: ReplicaHealth[];
}

/** Which shard runs which routed expert: the fewest shards (greedy cover), ties to the lower shard index. */
export function planShards(
  experts: readonly number[],
  shards: readonly ShardSpec[],
): { shard: ShardSpec; idx: number[] }[] {
  const left = new Set(experts.map((_, i) => i));
  const plan: { shard: ShardSpec; idx: number[] }[] = [];
  while (left.size) {
    let best: { shard: ShardSpec; idx: number[] } | null = null;
    for (const s of shards) {
      const idx = [...left].filter((i) => s.experts.includes(experts[i]));
      if (idx.length && (!best || idx.length > best.idx.length)) best = { shard: s, idx };
    }
    if (!best)
      throw new ExpertProtocolError(
        `no shard serves expert(s) ${[...left].map((i) => experts[i]).join(', ')}; check EXPERT_SHARDS`,
      );
    best.idx.sort((a, b) => a - b);
    for (const i of best.idx) left.delete(i);
    plan.push(best);
  }
  return plan;
}

const STICKY_LIMIT = 10_000;

function hexOf(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

export class ExpertRouter implements ExpertBackend {
  readonly name = 'expert-tier';
  private readonly transports: Record<string, ReplicaTransport>;
  private readonly breakers = new Map<string, CircuitBreaker>();
  /**
   * (shard, session) → the replica that last served it (so its prompt cache is used) and which experts it has
   * prefilled for which prompt, so that a step routed to a new expert carries the tokens up front instead of
   * costing a NEED_PROMPT round trip. LRU by insertion order.
   */
  private readonly sticky = new Map<string, { url: string; digest: string; experts: Set<number> }>();
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly random: () => number;
  /** Attempts made, failovers taken: for tests and the readiness report. */
  readonly stats = { attempts: 0, failures: 0, failovers: 0 };

  constructor(
    private readonly shards: readonly ShardSpec[],
    private readonly config: ModelConfig,
    private readonly settings: ExpertClientSettings,
    deps: RouterDeps = {},
  ) {
    const t: TransportDeps = {
      fetch: deps.fetch ?? ((input, init) => fetch(input, init)),
      hmacSecret: settings.hmacSecret,
      wireDtype: settings.wireDtype,
      hidden: config.controller.hidden,
      expertCount: config.experts.count,
    };
    this.transports = { native: new NativeTransport(t), kserve: new KServeTransport(t) };
    this.sleep = deps.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
  }

  private breaker(url: string): CircuitBreaker {
    let b = this.breakers.get(url);
    if (!b) {
      b = new CircuitBreaker({
        failures: this.settings.breakerFailures,
        cooldownMs: this.settings.breakerCooldownMs,
        now: this.now,
      });
      this.breakers.set(url, b);
    }
    return b;
  }

  private stickyKey(shard: ShardSpec, sessionId: string): string {
    return `${shard.index}\u0000${sessionId}`;
  }

  private remember(key: string, url: string, digest: string, experts: readonly number[]): void {
    const prev = this.sticky.get(key);
    const known = prev && prev.url === url && prev.digest === digest ? prev.experts : new Set<number>();
    for (const e of experts) known.add(e);
    this.sticky.delete(key);
    this.sticky.set(key, { url, digest, experts: known });
    if (this.sticky.size > STICKY_LIMIT) this.sticky.delete(this.sticky.keys().next().value!);
  }

  /** Whether `url` is known to hold the prompt caches this call needs. */
  private holdsCache(key: string, url: string, digest: string, experts: readonly number[]): boolean {
    const k = this.sticky.get(key);
    return !!k && k.url === url && k.digest === digest && experts.every((e) => k.experts.has(e));
  }

  /** The session's replica first (where its cache is), then the rest in rendezvous order. */
  replicaOrder(shard: ShardSpec, sessionId: string): string[] {
    const order = rendezvousOrder(shard.replicas, sessionId);
    const s = this.sticky.get(this.stickyKey(shard, sessionId))?.url;
    return s && order.includes(s) ? [s, ...order.filter((r) => r !== s)] : order;
  }

  async runExperts(call: ExpertCall): Promise<ExpertResult> {
    const H = this.config.controller.hidden;
    if (call.h.length !== H)
      throw new ExpertProtocolError(
        `h: expected ${H} values (the model's hidden size), found ${call.h.length}`,
      );
    const plan = planShards(call.experts, this.shards);
    const perExpert = plan.length > 1;
    const sent = afterCalls(plan.length, call.onSent);
    const results = await Promise.all(
      plan.map((p) =>
        this.callShard(p.shard, {
          sent,
          sessionId: call.sessionId,
          requestId: call.requestId,
          step: call.step,
          prompt: call.prompt,
          experts: p.idx.map((i) => call.experts[i]),
          gates: p.idx.map((i) => call.gates[i]),
          h: call.h,
          perExpert,
        }),
      ),
    );
    const timing = {
      queueUs: Math.max(...results.map((r) => r.queueUs)),
      computeUs: Math.max(...results.map((r) => r.computeUs)),
    };
    if (!perExpert) return { mixture: results[0].values, timing };
    // Mix in routed order, as the reference does, whichever shard each output came from.
    const rows = new Map<number, Float32Array>();
    plan.forEach((p, g) =>
      p.idx.forEach((i, k) => rows.set(i, results[g].values.subarray(k * H, (k + 1) * H))),
    );
    const mixture = new Float32Array(H);
    call.experts.forEach((_, i) => {
      const y = rows.get(i)!;
      for (let j = 0; j < H; j++) mixture[j] += call.gates[i] * y[j];
    });
    return { mixture, timing };
  }

  private backoffMs(round: number): number {
    const base = Math.min(1000, 50 * 2 ** round);
    return base / 2 + this.random() * (base / 2);
  }

  private async callShard(
    shard: ShardSpec,
    c: Omit<Parameters<ReplicaTransport['call']>[1], 'withTokens'>,
  ): Promise<ShardResult> {
    const transport = this.transports[shard.protocol];
    const key = this.stickyKey(shard, c.sessionId);
    const digest = hexOf(c.prompt.digest);
    const order = this.replicaOrder(shard, c.sessionId);
    const attempts = Math.max(1 + this.settings.retries, order.length);
    const failures: string[] = [];
    let overloaded = false;
    let next = 0;
    for (let a = 0; a < attempts; a++) {
      // The next replica, in order, whose breaker lets a request through.
      let url: string | null = null;
      for (let k = 0; k < order.length && !url; k++) {
        const candidate = order[(next + k) % order.length];
        if (this.breaker(candidate).tryAcquire()) {
          url = candidate;
          next = (next + k + 1) % order.length;
        }
      }
      if (!url) break;
      if (a > 0 && url !== order[0]) this.stats.failovers++;
      const replica = shard.replicas.indexOf(url);
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), this.settings.timeoutMs);
      this.stats.attempts++;
      try {
        const r = await transport.call(
          url,
          // Unless this replica is known to hold every routed expert's cache, the prompt goes up front.
          { ...c, withTokens: !this.holdsCache(key, url, digest, c.experts) },
          controller.signal,
        );
        this.breaker(url).success();
        this.remember(key, url, digest, c.experts);
        return r;
      } catch (e) {
        if (!(e instanceof AttemptError)) throw e;
        this.stats.failures++;
        if (!e.retryable) {
          // The replica answered: it is alive, the request is what is wrong.
          this.breaker(url).success();
          console.error(`expert tier: shard ${shard.index} replica ${url}: ${e.message}`);
          throw new ExpertProtocolError(
            `expert tier: shard ${shard.index} replica ${replica} refused the step: ${e.message}`,
          );
        }
        this.breaker(url).failure();
        overloaded ||= e.overloaded;
        failures.push(`replica ${replica}: ${e.message}`);
        console.warn(`expert tier: shard ${shard.index} replica ${url} attempt ${a + 1}: ${e.message}`);
        // Failing over to a fresh replica needs no pause; coming back around to one already tried does.
        if (a + 1 < attempts && (a + 1) % order.length === 0) await this.sleep(this.backoffMs(a));
        else if (order.length === 1 && a + 1 < attempts) await this.sleep(this.backoffMs(a));
      } finally {
        clearTimeout(timer);
      }
    }
    const wait = Math.min(...order.map((u) => this.breaker(u).retryInMs));
    const retryAfter = Math.max(1, Math.ceil((overloaded ? Math.max(wait, 1000) : wait || 1000) / 1000));
    const tried = failures.length
      ? `after ${failures.length} attempt${failures.length > 1 ? 's' : ''} (${failures.join('; ')})`
      : `: every replica's circuit is open after repeated failures`;
    throw new ExpertUnavailableError(
      `expert tier unavailable: shard ${shard.index} (experts ${shard.experts.join(', ')}) did not answer ${tried}; retry in ${retryAfter} s`,
      retryAfter,
    );
  }

  async dropSession(sessionId: string): Promise<void> {
    await Promise.all(
      this.shards.map(async (shard) => {
        const key = this.stickyKey(shard, sessionId);
        const url = this.sticky.get(key)?.url ?? rendezvousOrder(shard.replicas, sessionId)[0];
        this.sticky.delete(key);
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(), Math.min(this.settings.timeoutMs, 5000));
        try {
          await this.transports[shard.protocol].drop(url, sessionId, controller.signal);
        } catch {
          // Best effort: the tier's cache evicts on its own.
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }

  async health(timeoutMs = 2000): Promise<ShardHealth[]> {
    return Promise.all(
      this.shards.map(async (shard) => ({
        shard: shard.index,
        experts: shard.experts,
        protocol: shard.protocol,
        replicas: await Promise.all(
          shard.replicas.map(async (url, replica) => {
            const controller = new AbortController();
            const timer = setTimeout(() => controller.abort(), timeoutMs);
            try {
              const ready = await this.transports[shard.protocol].ready(url, controller.signal);
              return { replica, ready, breaker: this.breaker(url).state };
            } finally {
              clearTimeout(timer);
            }
          }),
        ),
      })),
    );
  }
}
