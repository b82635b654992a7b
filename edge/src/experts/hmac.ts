// Signs requests to the expert tier the way the GPU tier verifies them (gpu-backend/src/auth.ts):
//   x-switchyard-timestamp: milliseconds since the epoch
//   x-switchyard-signature: "v1=" + hex(HMAC-SHA256(secret, UTF-8(timestamp \n METHOD \n path \n) ‖ body))
// The edge keeps its own copy so that it deploys without the GPU tier's package; a cross-tier test checks
// that the GPU tier's verifier accepts what this signs.

export const TIMESTAMP_HEADER = 'x-switchyard-timestamp';
export const SIGNATURE_HEADER = 'x-switchyard-signature';

const encoder = new TextEncoder();
const keyCache = new Map<string, Promise<CryptoKey>>();

function keyFor(secret: string): Promise<CryptoKey> {
  let k = keyCache.get(secret);
  if (!k) {
    k = crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
    ]);
    keyCache.set(secret, k);
  }
  return k;
}

function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

let lastTimestamp = 0;

/**
 * A timestamp for the next signature. The verifier refuses a signature it has seen, and a retried request
 * has the same bytes, so timestamps from one isolate strictly increase (workerd's clock stands still between
 * I/O events, so Date.now() alone would repeat).
 */
export function nextTimestamp(now = Date.now()): number {
  lastTimestamp = Math.max(Math.floor(now), lastTimestamp + 1);
  return lastTimestamp;
}

export async function signRequest(
  secret: string,
  method: string,
  path: string,
  body: Uint8Array | string,
  now: number = nextTimestamp(),
): Promise<Record<string, string>> {
  const timestamp = String(Math.floor(now));
  const head = encoder.encode(`${timestamp}\n${method.toUpperCase()}\n${path}\n`);
  const b = typeof body === 'string' ? encoder.encode(body) : body;
  const data = new Uint8Array(head.length + b.length);
  data.set(head, 0);
  data.set(b, head.length);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', await keyFor(secret), data));
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: `v1=${hex(mac)}` };
}
