import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  AuthError,
  computeSignature,
  RequestVerifier,
  SIGNATURE_HEADER,
  signRequest,
  TIMESTAMP_HEADER,
  type AuthFailure,
} from './auth.ts';

const SECRET = 'shared-secret';
const body = new Uint8Array([0, 1, 2, 250, 255]);

async function failure(p: Promise<unknown>): Promise<AuthFailure | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    expect(e).toBeInstanceOf(AuthError);
    return (e as AuthError).reason;
  }
}

describe('request signing', () => {
  it('is HMAC-SHA256 over timestamp, method, path and body, as node:crypto computes it', async () => {
    const sig = await computeSignature(SECRET, '1700000000000', 'post', '/v1/step?x=1', body);
    const mac = createHmac('sha256', SECRET)
      .update('1700000000000\nPOST\n/v1/step?x=1\n')
      .update(body)
      .digest('hex');
    expect(sig).toBe(`v1=${mac}`);
    const text = await computeSignature(SECRET, '5', 'GET', '/', 'héllo');
    expect(text).toBe(`v1=${createHmac('sha256', SECRET).update('5\nGET\n/\nhéllo').digest('hex')}`);
  });

  it('signRequest returns both headers for the given time', async () => {
    const h = await signRequest(SECRET, 'POST', '/v1/drop', body, 1234.9);
    expect(h[TIMESTAMP_HEADER]).toBe('1234');
    expect(h[SIGNATURE_HEADER]).toBe(await computeSignature(SECRET, '1234', 'POST', '/v1/drop', body));
  });
});

describe('RequestVerifier', () => {
  const now = 1_700_000_000_000;
  const verifier = () => new RequestVerifier({ secret: SECRET, windowMs: 60_000, now: () => now });
  const verify = async (
    v: RequestVerifier,
    h: Record<string, string>,
    method = 'POST',
    path = '/v1/step',
    b: Uint8Array | string = body,
  ) => v.verify(method, path, h[TIMESTAMP_HEADER], h[SIGNATURE_HEADER], b);

  it('accepts a correctly signed request once, then refuses the replay', async () => {
    const v = verifier();
    const h = await signRequest(SECRET, 'POST', '/v1/step', body, now);
    expect(await failure(verify(v, h))).toBe('ok');
    expect(await failure(verify(v, h))).toBe('replayed');
    expect(v.remembered).toBe(1);
  });

  it('refuses changed parts, the wrong secret, and clock skew past the window either way', async () => {
    const v = verifier();
    const h = await signRequest(SECRET, 'POST', '/v1/step', body, now);
    expect(await failure(verify(v, h, 'GET'))).toBe('bad-signature');
    expect(await failure(verify(v, h, 'POST', '/v1/drop'))).toBe('bad-signature');
    expect(await failure(verify(v, h, 'POST', '/v1/step', new Uint8Array([0, 1, 2, 250, 254])))).toBe(
      'bad-signature',
    );
    expect(await failure(verify(v, await signRequest('other', 'POST', '/v1/step', body, now)))).toBe(
      'bad-signature',
    );
    expect(await failure(verify(v, await signRequest(SECRET, 'POST', '/v1/step', body, now - 60_001)))).toBe(
      'stale',
    );
    expect(await failure(verify(v, await signRequest(SECRET, 'POST', '/v1/step', body, now + 60_001)))).toBe(
      'stale',
    );
    expect(await failure(verify(v, await signRequest(SECRET, 'POST', '/v1/step', body, now - 59_000)))).toBe(
      'ok',
    );
  });

  it('refuses missing and malformed headers with messages that name them', async () => {
    const v = verifier();
    await expect(v.verify('POST', '/', undefined, undefined, body)).rejects.toThrow(/found neither/);
    await expect(v.verify('POST', '/', '1', undefined, body)).rejects.toThrow(
      `found only ${TIMESTAMP_HEADER}`,
    );
    expect(await failure(v.verify('POST', '/', 'soon', 'v1=' + '0'.repeat(64), body))).toBe('malformed');
    expect(await failure(v.verify('POST', '/', String(now), 'v1=' + '0'.repeat(63), body))).toBe('malformed');
    expect(await failure(v.verify('POST', '/', String(now), 'v2=' + '0'.repeat(64), body))).toBe('malformed');
  });

  it('forgets signatures once they are past the window', async () => {
    let t = now;
    const v = new RequestVerifier({ secret: SECRET, windowMs: 1000, now: () => t });
    await verify(v, await signRequest(SECRET, 'POST', '/v1/step', body, t));
    t += 5000;
    await verify(v, await signRequest(SECRET, 'POST', '/v1/step', body, t));
    expect(v.remembered).toBe(1);
  });
});
