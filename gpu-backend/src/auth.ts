// Request signing between the tiers: HMAC-SHA256 over timestamp, method, path and body with a shared secret.
// Runtime-free (WebCrypto only) so that the edge Worker signs with the same code the server verifies with.
//
//   X-Switchyard-Timestamp: <milliseconds since the epoch>
//   X-Switchyard-Signature: v1=<64 lowercase hex digits>
//   signed bytes: UTF-8(timestamp + '\n' + METHOD + '\n' + path + '\n') followed by the raw body

export const TIMESTAMP_HEADER = 'x-switchyard-timestamp';
export const SIGNATURE_HEADER = 'x-switchyard-signature';
const SCHEME = 'v1=';
export const DEFAULT_AUTH_WINDOW_MS = 60_000;

export type AuthFailure = 'missing' | 'malformed' | 'stale' | 'bad-signature' | 'replayed';

export class AuthError extends Error {
  override name = 'AuthError';
  constructor(
    readonly reason: AuthFailure,
    message: string,
  ) {
    super(message);
  }
}

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let k = keys.get(secret);
  if (!k) {
    k = crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
      'verify',
    ]);
    // A process talks to a handful of peers; the map stays as small as the number of secrets in use.
    keys.set(secret, k);
  }
  return k;
}

function signedBytes(timestamp: string, method: string, path: string, body: Uint8Array | string): Uint8Array {
  const head = encoder.encode(`${timestamp}\n${method.toUpperCase()}\n${path}\n`);
  const b = typeof body === 'string' ? encoder.encode(body) : body;
  const out = new Uint8Array(head.length + b.length);
  out.set(head, 0);
  out.set(b, head.length);
  return out;
}

function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

function fromHex(text: string): Uint8Array | undefined {
  if (!/^[0-9a-f]{64}$/.test(text)) return undefined;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The signature header's value for these request parts. */
export async function computeSignature(
  secret: string,
  timestamp: string,
  method: string,
  path: string,
  body: Uint8Array | string,
): Promise<string> {
  const data = signedBytes(timestamp, method, path, body);
  const mac = await crypto.subtle.sign('HMAC', await hmacKey(secret), data as Uint8Array<ArrayBuffer>);
  return SCHEME + toHex(new Uint8Array(mac));
}

/**
 * The headers that sign one request. `path` is the request target as sent (path and query); `now` is in
 * milliseconds since the epoch. Two requests with identical parts and timestamps are the same request to
 * the verifier, so a client that may send the same body twice within a millisecond should pass increasing
 * `now` values (GpuExpertClient does).
 */
export async function signRequest(
  secret: string,
  method: string,
  path: string,
  body: Uint8Array | string,
  now: number = Date.now(),
): Promise<Record<string, string>> {
  const timestamp = String(Math.floor(now));
  return {
    [TIMESTAMP_HEADER]: timestamp,
    [SIGNATURE_HEADER]: await computeSignature(secret, timestamp, method, path, body),
  };
}

export interface VerifierOptions {
  secret: string;
  windowMs?: number;
  now?: () => number;
}

/**
 * Checks signed requests: present, well formed, within the clock-skew window, correctly signed, and not
 * seen before. A signature is remembered until its timestamp leaves the window, after which the staleness
 * check rejects it anyway, so the memory holds at most one window of traffic.
 */
export class RequestVerifier {
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly seen = new Map<string, number>(); // signature → when it may be forgotten
  private nextSweep = 0;

  constructor(private readonly options: VerifierOptions) {
    this.windowMs = options.windowMs ?? DEFAULT_AUTH_WINDOW_MS;
    this.now = options.now ?? Date.now;
  }

  get remembered(): number {
    return this.seen.size;
  }

  async verify(
    method: string,
    path: string,
    timestamp: string | undefined,
    signature: string | undefined,
    body: Uint8Array | string,
  ): Promise<void> {
    if (timestamp === undefined || signature === undefined)
      throw new AuthError(
        'missing',
        `unsigned request: expected headers ${TIMESTAMP_HEADER} and ${SIGNATURE_HEADER}, found ${
          timestamp === undefined && signature === undefined
            ? 'neither'
            : `only ${timestamp === undefined ? SIGNATURE_HEADER : TIMESTAMP_HEADER}`
        }`,
      );
    if (!/^\d{1,16}$/.test(timestamp))
      throw new AuthError(
        'malformed',
        `${TIMESTAMP_HEADER}: expected milliseconds since the epoch as digits, found ${JSON.stringify(timestamp.slice(0, 40))}`,
      );
    const mac = signature.startsWith(SCHEME) ? fromHex(signature.slice(SCHEME.length)) : undefined;
    if (!mac)
      throw new AuthError(
        'malformed',
        `${SIGNATURE_HEADER}: expected "${SCHEME}" followed by 64 lowercase hex digits, found ${JSON.stringify(signature.slice(0, 80))}`,
      );
    const now = this.now();
    const skew = now - Number(timestamp);
    if (Math.abs(skew) > this.windowMs)
      throw new AuthError(
        'stale',
        `stale request: timestamp ${timestamp} is ${Math.round(skew / 1000)} s from the server clock; expected within ±${this.windowMs / 1000} s`,
      );
    const ok = await crypto.subtle.verify(
      'HMAC',
      await hmacKey(this.options.secret),
      mac as Uint8Array<ArrayBuffer>,
      signedBytes(timestamp, method, path, body) as Uint8Array<ArrayBuffer>,
    );
    if (!ok)
      throw new AuthError(
        'bad-signature',
        'bad signature: the HMAC does not match this request (wrong secret, or the method, path, body or timestamp changed in transit)',
      );
    this.sweep(now);
    if (this.seen.has(signature))
      throw new AuthError('replayed', 'replayed request: this signature was already accepted once');
    this.seen.set(signature, Number(timestamp) + this.windowMs);
  }

  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + Math.min(1000, this.windowMs);
    for (const [sig, until] of this.seen) if (until < now) this.seen.delete(sig);
  }
}
