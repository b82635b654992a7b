import { describe, it, expect } from 'vitest';
import { nextTimestamp, SIGNATURE_HEADER, signRequest, TIMESTAMP_HEADER } from './hmac.ts';

async function hmacHex(secret: string, data: Uint8Array<ArrayBuffer>): Promise<string> {
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  return Array.from(new Uint8Array(await crypto.subtle.sign('HMAC', key, data)), (b) =>
    b.toString(16).padStart(2, '0'),
  ).join('');
}

describe('signRequest', () => {
  it('HMAC-SHA256 agrees with RFC 4231 test case 2 (the primitive)', async () => {
    expect(await hmacHex('Jefe', new TextEncoder().encode('what do ya want for nothing?'))).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });

  it('signs "timestamp\\nMETHOD\\npath\\n" followed by the raw body bytes', async () => {
    const body = new Uint8Array([0, 255, 10, 83]);
    const h = await signRequest('s3cret', 'post', '/v1/step', body, 1700000000123);
    expect(h[TIMESTAMP_HEADER]).toBe('1700000000123');
    const head = new TextEncoder().encode('1700000000123\nPOST\n/v1/step\n');
    const data = new Uint8Array([...head, ...body]);
    expect(h[SIGNATURE_HEADER]).toBe(`v1=${await hmacHex('s3cret', data)}`);
  });

  it('gives a string body the same signature as its UTF-8 bytes', async () => {
    const a = await signRequest('k', 'POST', '/v2/models/expert-1/infer', '{"é":1}', 5);
    const b = await signRequest(
      'k',
      'POST',
      '/v2/models/expert-1/infer',
      new TextEncoder().encode('{"é":1}'),
      5,
    );
    expect(a).toEqual(b);
  });

  it('changes with the secret, the path and the body', async () => {
    const base = await signRequest('k', 'POST', '/v1/step', 'x', 1);
    expect(await signRequest('k2', 'POST', '/v1/step', 'x', 1)).not.toEqual(base);
    expect(await signRequest('k', 'POST', '/v1/drop', 'x', 1)).not.toEqual(base);
    expect(await signRequest('k', 'POST', '/v1/step', 'y', 1)).not.toEqual(base);
  });

  it('never repeats a timestamp, so a retried request is not taken for a replay', () => {
    const a = nextTimestamp(1000);
    const b = nextTimestamp(1000);
    const c = nextTimestamp(900);
    expect(b).toBeGreaterThan(a);
    expect(c).toBeGreaterThan(b);
  });
});
