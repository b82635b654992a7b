// The shard map: which expert-tier servers serve which experts. EXPERT_SHARDS is a JSON list of
//   { "url": "http://gpu-a:8700", "experts": "0-7" }                       one server
//   { "replicas": ["http://gpu-a:8700", "http://gpu-b:8700"], "experts": "0-3,6", "protocol": "kserve" }
// Every entry's replicas hold the same experts; a step goes to one replica of each shard it needs.
import { ServerConfigError } from '../errors.ts';

export const EXPERT_PROTOCOLS = ['native', 'kserve'] as const;
export type ExpertProtocol = (typeof EXPERT_PROTOCOLS)[number];

export interface ShardSpec {
  index: number;
  experts: number[]; // ascending, distinct
  replicas: string[]; // base URLs without a trailing slash
  protocol: ExpertProtocol;
}

const where = (i: number, field: string) => `EXPERT_SHARDS[${i}].${field}`;

/** "0-3,6" or [0, 1, 2, 3, 6] → [0, 1, 2, 3, 6]. */
export function parseExpertSet(spec: unknown, what: string): number[] {
  const out = new Set<number>();
  const add = (n: number) => {
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new ServerConfigError(`${what}: expected expert ids in [0, 65535], found ${JSON.stringify(n)}`);
    out.add(n);
  };
  if (Array.isArray(spec)) spec.forEach((n) => add(n));
  else if (typeof spec === 'string' && spec.trim() !== '') {
    for (const part of spec.split(',')) {
      const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
      if (!m)
        throw new ServerConfigError(
          `${what}: expected ids and ranges like "0-3,6", found ${JSON.stringify(spec)} (bad part ${JSON.stringify(part)})`,
        );
      const a = Number(m[1]);
      const b = m[2] === undefined ? a : Number(m[2]);
      if (b < a) throw new ServerConfigError(`${what}: range ${JSON.stringify(part.trim())} runs backwards`);
      for (let n = a; n <= b; n++) add(n);
    }
  } else
    throw new ServerConfigError(
      `${what}: expected a string like "0-3,6" or an array of ids, found ${JSON.stringify(spec)}`,
    );
  return [...out].sort((x, y) => x - y);
}

function normalizeUrl(u: unknown, what: string): string {
  if (typeof u !== 'string')
    throw new ServerConfigError(`${what}: expected an http(s) URL string, found ${JSON.stringify(u)}`);
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new ServerConfigError(`${what}: expected an http(s) URL, found ${JSON.stringify(u)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ServerConfigError(`${what}: expected an http: or https: URL, found ${JSON.stringify(u)}`);
  if (url.search || url.hash)
    throw new ServerConfigError(
      `${what}: expected a base URL without query or fragment, found ${JSON.stringify(u)}`,
    );
  return url.href.replace(/\/+$/, '');
}

/** Parses EXPERT_SHARDS; an unset var gives an empty map (the edge then refuses to generate, saying why). */
export function parseShardMap(
  raw: string | undefined,
  defaultProtocol: ExpertProtocol = 'native',
): ShardSpec[] {
  if (raw === undefined || raw.trim() === '') return [];
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new ServerConfigError(
      `EXPERT_SHARDS: expected JSON, found ${JSON.stringify(raw.slice(0, 80))} (${(e as Error).message})`,
    );
  }
  if (!Array.isArray(json) || json.length === 0)
    throw new ServerConfigError(
      `EXPERT_SHARDS: expected a non-empty JSON array of {"url" or "replicas", "experts"}, found ${JSON.stringify(raw.slice(0, 80))}`,
    );
  return json.map((entry, i): ShardSpec => {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
      throw new ServerConfigError(`EXPERT_SHARDS[${i}]: expected an object, found ${JSON.stringify(entry)}`);
    const e = entry as Record<string, unknown>;
    const known = ['url', 'replicas', 'experts', 'protocol'];
    const unknown = Object.keys(e).filter((k) => !known.includes(k));
    if (unknown.length)
      throw new ServerConfigError(
        `EXPERT_SHARDS[${i}]: unknown field(s) ${unknown.join(', ')}; valid fields: ${known.join(', ')}`,
      );
    const urls: string[] = [];
    if (e.url !== undefined) urls.push(normalizeUrl(e.url, where(i, 'url')));
    if (e.replicas !== undefined) {
      if (!Array.isArray(e.replicas))
        throw new ServerConfigError(
          `${where(i, 'replicas')}: expected an array of URLs, found ${JSON.stringify(e.replicas)}`,
        );
      e.replicas.forEach((u, j) => urls.push(normalizeUrl(u, `${where(i, 'replicas')}[${j}]`)));
    }
    if (urls.length === 0)
      throw new ServerConfigError(
        `EXPERT_SHARDS[${i}]: expected "url" or a non-empty "replicas" list, found neither`,
      );
    if (new Set(urls).size !== urls.length)
      throw new ServerConfigError(`EXPERT_SHARDS[${i}]: the same URL is listed twice: ${urls.join(', ')}`);
    const protocol = e.protocol ?? defaultProtocol;
    if (!(EXPERT_PROTOCOLS as readonly unknown[]).includes(protocol))
      throw new ServerConfigError(
        `${where(i, 'protocol')}: expected one of ${EXPERT_PROTOCOLS.join(', ')}, found ${JSON.stringify(protocol)}`,
      );
    return {
      index: i,
      experts: parseExpertSet(e.experts, where(i, 'experts')),
      replicas: urls,
      protocol: protocol as ExpertProtocol,
    };
  });
}

/** Checks the map against the model: every expert served somewhere, none beyond E. */
export function checkShardCoverage(shards: readonly ShardSpec[], expertCount: number): void {
  if (shards.length === 0)
    throw new ServerConfigError(
      'EXPERT_SHARDS: not set; expected a JSON list like [{"url": "http://127.0.0.1:8700", "experts": "0-' +
        (expertCount - 1) +
        '"}] naming the expert tier',
      'expert_tier_not_configured',
    );
  for (const s of shards)
    for (const e of s.experts)
      if (e >= expertCount)
        throw new ServerConfigError(
          `EXPERT_SHARDS[${s.index}].experts: expert ${e} does not exist; the model has experts 0-${expertCount - 1}`,
        );
  const served = new Set(shards.flatMap((s) => s.experts));
  const missing = Array.from({ length: expertCount }, (_, e) => e).filter((e) => !served.has(e));
  if (missing.length)
    throw new ServerConfigError(
      `EXPERT_SHARDS: no shard serves expert(s) ${missing.join(', ')}; every expert 0-${expertCount - 1} needs at least one`,
    );
}

/** How the edge talks to the expert tier (EXPERT_* vars, parsed by settings.ts). */
export interface ExpertClientSettings {
  shards: ShardSpec[];
  wireDtype: 'f32' | 'f16';
  /** Per attempt. */
  timeoutMs: number;
  /** Attempts after the first, across replicas. */
  retries: number;
  breakerFailures: number;
  breakerCooldownMs: number;
  hmacSecret: string | null;
}
