// The Worker's bindings and vars (wrangler.toml, secrets). Vars arrive as strings; settings.ts parses them.
import type { MemoryActor } from './memory-actor.ts';
import type { RateLimiter } from './rate-limit.ts';
import type { SessionActor } from './session-actor.ts';

export interface Env {
  SESSIONS: DurableObjectNamespace<SessionActor>;
  MEMORY: DurableObjectNamespace<MemoryActor>;
  RATE_LIMITER: DurableObjectNamespace<RateLimiter>;
  /** Holds large edge weights files (WEIGHTS_R2_KEY names the object). */
  WEIGHTS?: R2Bucket;

  MODEL_NAME?: string;
  COMPUTE_BACKEND?: string;
  WEIGHTS_R2_KEY?: string;

  EXPERT_SHARDS?: string;
  EXPERT_PROTOCOL?: string;
  EXPERT_WIRE_DTYPE?: string;
  EXPERT_TIMEOUT_MS?: string;
  EXPERT_RETRIES?: string;
  EXPERT_BREAKER_FAILURES?: string;
  EXPERT_BREAKER_COOLDOWN_MS?: string;
  /** Secret shared with the GPU tier for HMAC request signing. */
  EXPERT_HMAC_SECRET?: string;

  /** Secret: the SHA-256 digests of the accepted API keys (see settings.ts for the format). */
  API_KEYS?: string;
  /** "true" turns API-key checks off (local development only); anything else leaves them on. */
  AUTH_DISABLED?: string;
  RATE_LIMIT_RPM?: string;
  RATE_LIMIT_BURST?: string;

  MAX_BODY_BYTES?: string;
  MAX_TOKENS_LIMIT?: string;
  DEFAULT_MAX_TOKENS?: string;
  LTM_TOP_N?: string;
  LTM_MAX_ENTRIES?: string;
}
