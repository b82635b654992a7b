// Request bodies: bounded in size before they are buffered, strict UTF-8, JSON objects only.
import { InvalidRequestError, PayloadTooLargeError } from './errors.ts';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Offset of the first byte that breaks UTF-8 (overlongs, surrogates, truncation included), or -1. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (c >= 0xc2 && c <= 0xdf) [need, min] = [1, 0x80];
    else if (c >= 0xe0 && c <= 0xef) [need, min] = [2, 0x800];
    else if (c >= 0xf0 && c <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    if (i + need >= b.length) return i; // truncated sequence
    let cp = c & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const cc = b[i + k];
      if ((cc & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** Reads at most `maxBytes` of the body; more is a 413 without reading the rest. */
export async function readBodyBytes(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > maxBytes)
    throw new PayloadTooLargeError(
      `request body: expected at most ${maxBytes} bytes, found a Content-Length of ${declared}`,
    );
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      reader.releaseLock();
      throw new PayloadTooLargeError(`request body: expected at most ${maxBytes} bytes, found more`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

/**
 * The body as a JSON object: 413 past the limit, 400 for bad UTF-8, bad JSON or a non-object. With
 * `allowEmpty`, an empty body reads as {} (for endpoints whose fields are all optional).
 */
export async function readJsonObject(
  request: Request,
  maxBytes: number,
  allowEmpty = false,
): Promise<Record<string, unknown>> {
  const bytes = await readBodyBytes(request, maxBytes);
  if (bytes.length === 0 && allowEmpty) return {};
  if (bytes.length === 0)
    throw new InvalidRequestError(
      'request body: expected a JSON object, found an empty body',
      null,
      'invalid_json',
    );
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    throw new InvalidRequestError(
      `request body: expected UTF-8 text, found an invalid byte sequence at byte ${firstInvalidUtf8(bytes)}`,
      null,
      'invalid_encoding',
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InvalidRequestError(
      `request body: expected valid JSON, found a parse error (${(e as Error).message})`,
      null,
      'invalid_json',
    );
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new InvalidRequestError(
      `request body: expected a JSON object, found ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}`,
      null,
      'invalid_json',
    );
  return json as Record<string, unknown>;
}
