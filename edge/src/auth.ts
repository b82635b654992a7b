// API keys. The secret API_KEYS holds only SHA-256 digests of the keys, never the keys themselves:
//   a JSON list  [{"sha256": "<64 hex>", "tenant": "acme", "rpm": 120, "burst": 20}, "<64 hex>", ...]
//   or digests separated by commas / whitespace.
// A request presents `Authorization: Bearer <key>`; its digest is compared with every stored digest in
// constant time. The tenant (named, or derived from the digest) owns sessions and memory namespaces.
import { AuthenticationError, ServerConfigError } from './errors.ts';
import type { Settings } from './settings.ts';

export interface ApiKeyEntry {
  digest: Uint8Array; // 32 bytes
  tenant: string;
  rpm?: number;
  burst?: number;
}

export interface Tenant {
  id: string;
  rpm?: number;
  burst?: number;
}

/** Who a request is when API_KEYS checks are explicitly turned off (AUTH_DISABLED=true). */
export const ANONYMOUS_TENANT: Tenant = { id: 'anonymous' };

const HEX64 = /^[0-9a-f]{64}$/;
const TENANT_ID = /^[A-Za-z0-9_.-]{1,64}$/;

function hexToBytes(h: string): Uint8Array {
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

function digestEntry(d: unknown, what: string): Uint8Array {
  const h = typeof d === 'string' ? d.trim().toLowerCase() : d;
  if (typeof h !== 'string' || !HEX64.test(h))
    throw new ServerConfigError(
      `${what}: expected a SHA-256 digest (64 hex digits, e.g. from \`printf %s "$KEY" | sha256sum\`), found ${
        typeof d === 'string' ? `${d.length} characters` : JSON.stringify(d)
      }`,
    );
  return hexToBytes(h);
}

function optInt(v: unknown, what: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || (v as number) < min)
    throw new ServerConfigError(`${what}: expected an integer ≥ ${min}, found ${JSON.stringify(v)}`);
  return v as number;
}

export function parseApiKeys(raw: string): ApiKeyEntry[] {
  const text = raw.trim();
  let items: unknown[];
  if (text.startsWith('[')) {
    try {
      items = JSON.parse(text);
    } catch (e) {
      throw new ServerConfigError(
        `API_KEYS: expected a JSON list or comma-separated digests (${(e as Error).message})`,
      );
    }
  } else items = text.split(/[\s,]+/).filter(Boolean);
  const entries = items.map((item, i): ApiKeyEntry => {
    const what = `API_KEYS[${i}]`;
    if (typeof item === 'string') {
      const digest = digestEntry(item, what);
      return { digest, tenant: `key_${toHex(digest).slice(0, 16)}` };
    }
    if (item === null || typeof item !== 'object' || Array.isArray(item))
      throw new ServerConfigError(
        `${what}: expected a digest string or {"sha256", "tenant"?, "rpm"?, "burst"?}`,
      );
    const o = item as Record<string, unknown>;
    const unknown = Object.keys(o).filter((k) => !['sha256', 'tenant', 'rpm', 'burst'].includes(k));
    if (unknown.length)
      throw new ServerConfigError(
        `${what}: unknown field(s) ${unknown.join(', ')}; valid: sha256, tenant, rpm, burst`,
      );
    const digest = digestEntry(o.sha256, `${what}.sha256`);
    if (o.tenant !== undefined && (typeof o.tenant !== 'string' || !TENANT_ID.test(o.tenant)))
      throw new ServerConfigError(
        `${what}.tenant: expected 1-64 characters of A-Z a-z 0-9 _ . -, found ${JSON.stringify(o.tenant)}`,
      );
    return {
      digest,
      tenant: (o.tenant as string | undefined) ?? `key_${toHex(digest).slice(0, 16)}`,
      rpm: optInt(o.rpm, `${what}.rpm`, 0),
      burst: optInt(o.burst, `${what}.burst`, 1),
    };
  });
  if (entries.length === 0)
    throw new ServerConfigError('API_KEYS: expected at least one key digest, found none');
  return entries;
}

export async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
}

function equalConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** The tenant a request authenticates as; throws AuthenticationError (401) or ServerConfigError (500). */
export async function authenticate(request: Request, settings: Settings): Promise<Tenant> {
  if (settings.auth.disabled) return ANONYMOUS_TENANT;
  const keys = settings.auth.keys;
  if (!keys)
    throw new ServerConfigError(
      'API_KEYS is not set: the edge has no API keys to accept. Set the secret (wrangler secret put API_KEYS) or, for local development only, AUTH_DISABLED=true',
      'auth_not_configured',
    );
  const header = request.headers.get('authorization');
  if (!header)
    throw new AuthenticationError(
      'missing API key: expected an "Authorization: Bearer <key>" header, found no Authorization header',
    );
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!m)
    throw new AuthenticationError(
      `malformed Authorization header: expected "Bearer <key>", found a header starting ${JSON.stringify(header.slice(0, 7))}`,
    );
  const digest = await sha256(m[1]);
  let found: ApiKeyEntry | undefined;
  // Check every entry, so the time taken does not depend on which key matched.
  for (const k of keys) if (equalConstantTime(k.digest, digest) && !found) found = k;
  if (!found)
    throw new AuthenticationError('invalid API key: the key presented is not (or no longer) accepted');
  return { id: found.tenant, rpm: found.rpm, burst: found.burst };
}
