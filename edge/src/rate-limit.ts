// Per-key rate limits: a token bucket in a Durable Object, one per tenant. A Durable Object rather than a
// bucket in isolate memory because a Worker runs in many isolates at once (and in many locations): a
// per-isolate bucket would let a key multiply its limit by the number of isolates it lands on. The object
// serializes every decision for its key, and keeps the bucket in its SQLite storage so that an eviction
// does not hand out a fresh burst. Its cost is one round trip per request, small next to a generation.
import { DurableObject } from 'cloudflare:workers';
import type { Env } from './env.ts';
import { RateLimitError } from './errors.ts';
import type { Tenant } from './auth.ts';
import type { RateLimitSettings } from './settings.ts';

export interface RateDecision {
  allowed: boolean;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Seconds until one token is available (0 when allowed). */
  retryAfter: number;
}

/** Pure token-bucket arithmetic: `tokens` refills at perMinute/60 per second up to `burst`. */
export function takeToken(
  bucket: { tokens: number; at: number },
  limit: RateLimitSettings,
  nowMs: number,
): { bucket: { tokens: number; at: number }; decision: RateDecision } {
  const rate = limit.perMinute / 60_000; // tokens per ms
  const elapsed = Math.max(0, nowMs - bucket.at);
  let tokens = Math.min(limit.burst, bucket.tokens + elapsed * rate);
  if (tokens >= 1) {
    tokens -= 1;
    return {
      bucket: { tokens, at: nowMs },
      decision: { allowed: true, remaining: Math.floor(tokens), retryAfter: 0 },
    };
  }
  return {
    bucket: { tokens, at: nowMs },
    decision: { allowed: false, remaining: 0, retryAfter: (1 - tokens) / rate / 1000 },
  };
}

export class RateLimiter extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(
      'CREATE TABLE IF NOT EXISTS bucket (id INTEGER PRIMARY KEY CHECK (id = 1), tokens REAL, at REAL)',
    );
  }

  async take(limit: RateLimitSettings): Promise<RateDecision> {
    const sql = this.ctx.storage.sql;
    const row = sql
      .exec<{ tokens: number; at: number }>('SELECT tokens, at FROM bucket WHERE id = 1')
      .toArray()[0];
    const now = Date.now();
    const { bucket, decision } = takeToken(row ?? { tokens: limit.burst, at: now }, limit, now);
    sql.exec('INSERT OR REPLACE INTO bucket (id, tokens, at) VALUES (1, ?, ?)', bucket.tokens, bucket.at);
    return decision;
  }
}

/** Charges one request to the tenant's bucket; throws RateLimitError (429) when it is empty. */
export async function enforceRateLimit(
  env: Env,
  tenant: Tenant,
  defaults: RateLimitSettings,
): Promise<{ limit: number; remaining: number } | null> {
  const perMinute = tenant.rpm ?? defaults.perMinute;
  if (perMinute === 0) return null;
  const limit: RateLimitSettings = {
    perMinute,
    burst:
      tenant.burst ?? (tenant.rpm !== undefined ? Math.max(1, Math.ceil(perMinute / 6)) : defaults.burst),
  };
  const stub = env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(tenant.id));
  const d = await stub.take(limit);
  if (!d.allowed)
    throw new RateLimitError(
      `rate limit reached for this API key: ${limit.perMinute} requests per minute (burst ${limit.burst}); retry in ${Math.max(1, Math.ceil(d.retryAfter))} s`,
      d.retryAfter,
    );
  return { limit: limit.perMinute, remaining: d.remaining };
}
