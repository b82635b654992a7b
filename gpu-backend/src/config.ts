// The server's settings: command-line flags over SWITCHYARD_GPU_* environment variables over defaults,
// resolved and checked once at start so that nothing later has to guess.
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';

export const PROVIDERS = ['auto', 'cuda', 'webgpu', 'cpu'] as const;
export type Provider = (typeof PROVIDERS)[number];

/**
 * How the expert graphs multiply by their weights: f32 (int8 dequantized once at load), int8 (int8 weights
 * in the graph, dequantized on the fly; the same values as f32), or int8-dynamic (int8 weights times int8
 * activations quantized per tensor at run time: faster, about 1% off the reference).
 */
export const COMPUTE_MODES = ['f32', 'int8', 'int8-dynamic'] as const;
export type ComputeMode = (typeof COMPUTE_MODES)[number];

export interface ServerOptions {
  /** Path of the weights file (a full model or an expert shard). */
  model: string;
  /** Expert ids to serve; undefined serves every expert the file holds. */
  experts?: number[];
  port: number;
  host: string;
  provider: Provider;
  /** ORT worker threads; each holds every served expert. */
  workers: number;
  /** Intra-op threads per worker. */
  threads: number;
  /** Let ORT's intra-op threads busy-wait between ops (lower latency on a dedicated machine). */
  spin: boolean;
  compute: ComputeMode;
  /** Prompt-cache budget in bytes (K and V of every cached layer). */
  cacheBytes: number;
  /** Most rows one batched step run takes. */
  maxBatch: number;
  /** Longest a step waits for others to join its batch. */
  maxWaitMs: number;
  /** Prompts × the longest prompt's tokens, at most, per batched prefill of one expert. */
  maxPrefillTokens: number;
  /** Most expert rows admitted and not yet running; past it the server answers 429. */
  queueLimit: number;
  /** Largest request body accepted; past it the server answers 413. */
  maxBodyBytes: number;
  /** Shared HMAC secret; required unless insecureNoAuth. */
  secret?: string;
  insecureNoAuth: boolean;
  /** Allowed clock skew of a signed request, and how long its signature is remembered against replay. */
  authWindowMs: number;
  /** How long a shutdown waits for in-flight requests before giving up. */
  drainTimeoutMs: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const DEFAULTS = {
  port: 8700,
  host: '127.0.0.1',
  provider: 'auto' as Provider,
  workers: 1,
  compute: 'f32' as ComputeMode,
  cacheBytes: 1 << 30,
  maxBatch: 64,
  maxWaitMs: 2,
  maxPrefillTokens: 1024,
  queueLimit: 1024,
  maxBodyBytes: 8 << 20,
  authWindowMs: 60_000,
  drainTimeoutMs: 30_000,
};

interface Flag {
  env: string;
  type: 'string' | 'boolean';
  help: string;
}

const FLAGS: Record<string, Flag> = {
  model: { env: 'MODEL', type: 'string', help: 'weights file (full model or expert shard), required' },
  experts: {
    env: 'EXPERTS',
    type: 'string',
    help: 'expert ids to serve, e.g. 0-7 or 0,2,5 (default: all in the file)',
  },
  port: { env: 'PORT', type: 'string', help: `TCP port, 0 for any free one (default ${DEFAULTS.port})` },
  host: { env: 'HOST', type: 'string', help: `address to bind (default ${DEFAULTS.host})` },
  provider: {
    env: 'PROVIDER',
    type: 'string',
    help: `${PROVIDERS.join('|')} (default auto: CUDA, else CPU)`,
  },
  workers: { env: 'WORKERS', type: 'string', help: `ORT worker threads (default ${DEFAULTS.workers})` },
  threads: { env: 'THREADS', type: 'string', help: 'intra-op threads per worker (default: cores / workers)' },
  spin: {
    env: 'SPIN',
    type: 'boolean',
    help: 'let ORT threads busy-wait between ops: faster on a dedicated machine, wasteful on a shared one',
  },
  compute: {
    env: 'COMPUTE',
    type: 'string',
    help: `${COMPUTE_MODES.join('|')} matrix products in the graphs (default f32)`,
  },
  'cache-bytes': {
    env: 'CACHE_BYTES',
    type: 'string',
    help: 'prompt-cache budget, e.g. 512MiB (default 1GiB)',
  },
  'max-batch': {
    env: 'MAX_BATCH',
    type: 'string',
    help: `rows per batched run (default ${DEFAULTS.maxBatch})`,
  },
  'max-wait-ms': {
    env: 'MAX_WAIT_MS',
    type: 'string',
    help: `batching window (default ${DEFAULTS.maxWaitMs})`,
  },
  'max-prefill-tokens': {
    env: 'MAX_PREFILL_TOKENS',
    type: 'string',
    help: `padded prompt tokens per batched prefill; a longer prompt runs alone (default ${DEFAULTS.maxPrefillTokens})`,
  },
  'queue-limit': {
    env: 'QUEUE_LIMIT',
    type: 'string',
    help: `queued rows before 429 (default ${DEFAULTS.queueLimit})`,
  },
  'max-body-bytes': { env: 'MAX_BODY_BYTES', type: 'string', help: 'largest request body (default 8MiB)' },
  secret: { env: 'SECRET', type: 'string', help: 'shared HMAC secret for signed requests' },
  'insecure-no-auth': {
    env: 'INSECURE_NO_AUTH',
    type: 'boolean',
    help: 'accept unsigned requests (local dev only)',
  },
  'auth-window-ms': { env: 'AUTH_WINDOW_MS', type: 'string', help: 'allowed clock skew (default 60000)' },
  'drain-timeout-ms': {
    env: 'DRAIN_TIMEOUT_MS',
    type: 'string',
    help: 'shutdown grace period (default 30000)',
  },
  help: { env: '', type: 'boolean', help: 'print this help' },
};

export const ENV_PREFIX = 'SWITCHYARD_GPU_';

export function usage(): string {
  const w = Math.max(...Object.keys(FLAGS).map((k) => k.length)) + 2;
  const lines = Object.entries(FLAGS).map(([name, f]) => {
    const env = f.env ? ` [${ENV_PREFIX}${f.env}]` : '';
    return `  --${name.padEnd(w)}${f.help}${env}`;
  });
  return [
    'usage: switchyard-gpu --model FILE [options]',
    '',
    'options (environment variable):',
    ...lines,
  ].join('\n');
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
};

/** "512MiB", "1e9", "65536" → bytes. */
export function parseBytes(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new ConfigError(
      `${what}: expected a byte count such as 65536, 512MiB or 2GB (units ${Object.keys(UNITS).filter(Boolean).join(', ')}), found ${JSON.stringify(text)}`,
    );
  const n = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n)) throw new ConfigError(`${what}: expected a byte count, found ${text}`);
  return n;
}

export function parseInteger(text: string, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new ConfigError(`${what}: expected an integer in ${min}..${max}, found ${JSON.stringify(text)}`);
  return n;
}

/** "0-3,6" → [0, 1, 2, 3, 6], checked to be distinct. */
export function parseExpertList(text: string, what = '--experts'): number[] {
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m)
      throw new ConfigError(
        `${what}: expected expert ids or ranges such as 0-7 or 0,2,5, found ${JSON.stringify(part)} in ${JSON.stringify(text)}`,
      );
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new ConfigError(`${what}: range ${a}-${b} is empty; write the lower id first`);
    for (let e = a; e <= b; e++) {
      if (out.includes(e))
        throw new ConfigError(`${what}: expert ${e} is listed more than once in "${text}"`);
      out.push(e);
    }
  }
  return out.sort((x, y) => x - y);
}

function parseBool(text: string, what: string): boolean {
  const t = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(t)) return false;
  throw new ConfigError(
    `${what}: expected one of 1, true, yes, on, 0, false, no, off, found ${JSON.stringify(text)}`,
  );
}

function oneOf<T extends string>(text: string, valid: readonly T[], what: string): T {
  if (!(valid as readonly string[]).includes(text))
    throw new ConfigError(`${what}: expected one of ${valid.join(', ')}, found ${JSON.stringify(text)}`);
  return text as T;
}

export type ParsedArgs = { help: true } | { help: false; options: ServerOptions };

/** Flags win over the environment; `cores` sets the default intra-op thread count. */
export function parseOptions(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
  cores: number = availableParallelism(),
): ParsedArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    const parsed = parseArgs({
      args: [...argv],
      options: Object.fromEntries(Object.entries(FLAGS).map(([k, f]) => [k, { type: f.type }])),
      strict: true,
      allowPositionals: false,
    });
    values = parsed.values;
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}\n\n${usage()}`);
  }
  if (values.help) return { help: true };
  /** The flag's text, else its environment variable's, with the name to blame in messages. */
  const get = (name: string): { text: string; what: string } | undefined => {
    const v = values[name];
    if (typeof v === 'string') return { text: v, what: `--${name}` };
    if (v === true) return { text: '1', what: `--${name}` };
    const key = ENV_PREFIX + FLAGS[name].env;
    const e = env[key];
    return e === undefined ? undefined : { text: e, what: key };
  };
  const int = (name: string, def: number, min: number, max?: number) => {
    const v = get(name);
    return v ? parseInteger(v.text, v.what, min, max) : def;
  };
  const bytes = (name: string, def: number, min: number) => {
    const v = get(name);
    if (!v) return def;
    const n = parseBytes(v.text, v.what);
    if (n < min) throw new ConfigError(`${v.what}: expected at least ${min} bytes, found ${n}`);
    return n;
  };

  const model = get('model');
  if (!model || !model.text) throw new ConfigError(`--model: a weights file is required\n\n${usage()}`);
  const experts = get('experts');
  const provider = get('provider');
  const compute = get('compute');
  const workers = int('workers', DEFAULTS.workers, 1, 64);
  const secret = get('secret');
  const noAuth = get('insecure-no-auth');
  const insecureNoAuth = noAuth ? parseBool(noAuth.text, noAuth.what) : false;
  if (!insecureNoAuth && !secret?.text)
    throw new ConfigError(
      `authentication: expected --secret S (or ${ENV_PREFIX}SECRET) so that requests between tiers are signed, found neither; ` +
        'for local development without auth, pass --insecure-no-auth explicitly',
    );
  if (insecureNoAuth && secret?.text)
    throw new ConfigError('authentication: found both a secret and --insecure-no-auth; expected one of them');
  return {
    help: false,
    options: {
      model: model.text,
      experts: experts ? parseExpertList(experts.text, experts.what) : undefined,
      port: int('port', DEFAULTS.port, 0, 65535),
      host: get('host')?.text || DEFAULTS.host,
      provider: provider ? oneOf(provider.text, PROVIDERS, provider.what) : DEFAULTS.provider,
      workers,
      threads: int('threads', Math.max(1, Math.floor(cores / workers)), 1, 1024),
      spin: (() => {
        const v = get('spin');
        return v ? parseBool(v.text, v.what) : false;
      })(),
      compute: compute ? oneOf(compute.text, COMPUTE_MODES, compute.what) : DEFAULTS.compute,
      cacheBytes: bytes('cache-bytes', DEFAULTS.cacheBytes, 0),
      maxBatch: int('max-batch', DEFAULTS.maxBatch, 1, 4096),
      maxWaitMs: int('max-wait-ms', DEFAULTS.maxWaitMs, 0, 60_000),
      maxPrefillTokens: int('max-prefill-tokens', DEFAULTS.maxPrefillTokens, 1, 1 << 20),
      queueLimit: int('queue-limit', DEFAULTS.queueLimit, 1),
      maxBodyBytes: bytes('max-body-bytes', DEFAULTS.maxBodyBytes, 1024),
      secret: secret?.text || undefined,
      insecureNoAuth,
      authWindowMs: int('auth-window-ms', DEFAULTS.authWindowMs, 1000),
      drainTimeoutMs: int('drain-timeout-ms', DEFAULTS.drainTimeoutMs, 0),
    },
  };
}
