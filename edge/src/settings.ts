// Parses the Worker's vars once per env object. A bad var is the operator's mistake: it surfaces as a 500
// naming the var, what it expected and what it found, never as a silent default.
import type { Env } from './env.ts';
import { ServerConfigError } from './errors.ts';
import { parseApiKeys, type ApiKeyEntry } from './auth.ts';
import { parseShardMap, type ExpertProtocol, EXPERT_PROTOCOLS } from './experts/shard-map.ts';
import type { ExpertClientSettings } from './experts/shard-map.ts';

export type { ExpertClientSettings };

export interface RateLimitSettings {
  /** Sustained requests per minute per API key; 0 turns rate limiting off. */
  perMinute: number;
  /** Requests a key may make at once before the sustained rate applies. */
  burst: number;
}

export interface Settings {
  modelName: string;
  computeBackend: string | null;
  weightsR2Key: string | null;
  experts: ExpertClientSettings;
  auth: { disabled: true } | { disabled: false; keys: ApiKeyEntry[] | null };
  rateLimit: RateLimitSettings;
  maxBodyBytes: number;
  maxTokensLimit: number;
  defaultMaxTokens: number;
  ltmTopN: number;
  ltmMaxEntries: number;
}

export const DEFAULTS = {
  modelName: 'switchyard-tiny',
  expertProtocol: 'native' as ExpertProtocol,
  wireDtype: 'f32' as const,
  timeoutMs: 15_000,
  retries: 2,
  breakerFailures: 5,
  breakerCooldownMs: 10_000,
  rateLimitPerMinute: 600,
  maxBodyBytes: 1 << 20,
  maxTokensLimit: 4096,
  defaultMaxTokens: 256,
  ltmTopN: 4,
  ltmMaxEntries: 10_000,
};

function int(name: string, raw: string | undefined, def: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return def;
  const v = Number(raw.trim());
  if (!Number.isInteger(v) || v < min || v > max)
    throw new ServerConfigError(
      `${name}: expected an integer in [${min}, ${max}], found ${JSON.stringify(raw)}`,
    );
  return v;
}

function oneOf<T extends string>(name: string, raw: string | undefined, valid: readonly T[], def: T): T {
  if (raw === undefined || raw === '') return def;
  if (!(valid as readonly string[]).includes(raw))
    throw new ServerConfigError(`${name}: expected one of ${valid.join(', ')}, found ${JSON.stringify(raw)}`);
  return raw as T;
}

export function parseSettings(env: Env): Settings {
  const disabled = env.AUTH_DISABLED === 'true';
  if (
    env.AUTH_DISABLED !== undefined &&
    !disabled &&
    env.AUTH_DISABLED !== 'false' &&
    env.AUTH_DISABLED !== ''
  )
    throw new ServerConfigError(
      `AUTH_DISABLED: expected "true" or "false", found ${JSON.stringify(env.AUTH_DISABLED)}`,
    );
  const perMinute = int('RATE_LIMIT_RPM', env.RATE_LIMIT_RPM, DEFAULTS.rateLimitPerMinute, 0, 1_000_000);
  const maxTokensLimit = int('MAX_TOKENS_LIMIT', env.MAX_TOKENS_LIMIT, DEFAULTS.maxTokensLimit, 1, 1 << 20);
  return {
    modelName: env.MODEL_NAME || DEFAULTS.modelName,
    computeBackend: env.COMPUTE_BACKEND || null,
    weightsR2Key: env.WEIGHTS_R2_KEY || null,
    experts: {
      shards: parseShardMap(
        env.EXPERT_SHARDS,
        oneOf('EXPERT_PROTOCOL', env.EXPERT_PROTOCOL, EXPERT_PROTOCOLS, DEFAULTS.expertProtocol),
      ),
      wireDtype: oneOf('EXPERT_WIRE_DTYPE', env.EXPERT_WIRE_DTYPE, ['f32', 'f16'], DEFAULTS.wireDtype),
      timeoutMs: int('EXPERT_TIMEOUT_MS', env.EXPERT_TIMEOUT_MS, DEFAULTS.timeoutMs, 1, 600_000),
      retries: int('EXPERT_RETRIES', env.EXPERT_RETRIES, DEFAULTS.retries, 0, 10),
      breakerFailures: int(
        'EXPERT_BREAKER_FAILURES',
        env.EXPERT_BREAKER_FAILURES,
        DEFAULTS.breakerFailures,
        1,
        1000,
      ),
      breakerCooldownMs: int(
        'EXPERT_BREAKER_COOLDOWN_MS',
        env.EXPERT_BREAKER_COOLDOWN_MS,
        DEFAULTS.breakerCooldownMs,
        1,
        3_600_000,
      ),
      hmacSecret: env.EXPERT_HMAC_SECRET || null,
    },
    auth: disabled
      ? { disabled: true }
      : { disabled: false, keys: env.API_KEYS ? parseApiKeys(env.API_KEYS) : null },
    rateLimit: {
      perMinute,
      burst: int(
        'RATE_LIMIT_BURST',
        env.RATE_LIMIT_BURST,
        Math.max(1, Math.ceil(perMinute / 6)),
        1,
        1_000_000,
      ),
    },
    maxBodyBytes: int('MAX_BODY_BYTES', env.MAX_BODY_BYTES, DEFAULTS.maxBodyBytes, 1024, 100 << 20),
    maxTokensLimit,
    defaultMaxTokens: int(
      'DEFAULT_MAX_TOKENS',
      env.DEFAULT_MAX_TOKENS,
      Math.min(DEFAULTS.defaultMaxTokens, maxTokensLimit),
      1,
      maxTokensLimit,
    ),
    ltmTopN: int('LTM_TOP_N', env.LTM_TOP_N, DEFAULTS.ltmTopN, 0, 64),
    ltmMaxEntries: int('LTM_MAX_ENTRIES', env.LTM_MAX_ENTRIES, DEFAULTS.ltmMaxEntries, 1, 10_000_000),
  };
}

const cache = new WeakMap<object, Settings>();

/** Settings for this env, parsed once per env object (per isolate, in practice). */
export function settingsFor(env: Env): Settings {
  let s = cache.get(env);
  if (!s) {
    s = parseSettings(env);
    cache.set(env, s);
  }
  return s;
}
