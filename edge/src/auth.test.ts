import { env } from 'cloudflare:workers';
import { createExecutionContext } from 'cloudflare:test';
import { describe, it, expect, beforeEach } from 'vitest';
import { createApp } from './app.ts';
import { parseApiKeys, sha256, toHex } from './auth.ts';
import type { Env } from './env.ts';
import { ServerConfigError } from './errors.ts';
import { api, KEYS, MODEL, useTestExperts, type Json } from './test-utils.ts';

beforeEach(() => {
  useTestExperts();
});

const app = createApp();
const call = (e: Partial<Env>, path: string, init: RequestInit = {}) =>
  app.fetch(
    new Request(`http://edge.test${path}`, init),
    { ...(env as unknown as Env), ...e },
    createExecutionContext(),
  );

describe('API keys', () => {
  it('refuses a request without a key, naming the header it expects', async () => {
    const res = await api('/v1/models', { key: null });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: {
        message:
          'missing API key: expected an "Authorization: Bearer <key>" header, found no Authorization header',
        type: 'authentication_error',
        param: null,
        code: 'invalid_api_key',
      },
    });
  });

  it('refuses a wrong key and a malformed header', async () => {
    const wrong = await api('/v1/models', { key: 'sk-test-mallory' });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as Json).error.message).toMatch(/invalid API key/);
    const basic = await api('/v1/models', { key: null, headers: { authorization: 'Basic abc' } });
    expect(basic.status).toBe(401);
    expect(((await basic.json()) as Json).error.message).toMatch(
      /expected "Bearer <key>", found a header starting "Basic a"/,
    );
  });

  it('accepts every configured key', async () => {
    for (const key of [KEYS.alice, KEYS.bob]) expect((await api('/v1/models', { key })).status).toBe(200);
  });

  it('refuses everything with a clear 500 when no keys are configured and auth is not disabled', async () => {
    const res = await call({ API_KEYS: undefined }, '/v1/models');
    expect(res.status).toBe(500);
    const body = (await res.json()) as Json;
    expect(body.error.code).toBe('auth_not_configured');
    expect(body.error.message).toMatch(/AUTH_DISABLED=true/);
  });

  it('lets everyone in only when AUTH_DISABLED is exactly "true"', async () => {
    const open = await call({ API_KEYS: undefined, AUTH_DISABLED: 'true' }, '/v1/models');
    expect(open.status).toBe(200);
    const typo = await call({ AUTH_DISABLED: 'yes' }, '/v1/models');
    expect(typo.status).toBe(500);
    expect(((await typo.json()) as Json).error.message).toBe(
      'AUTH_DISABLED: expected "true" or "false", found "yes"',
    );
    const off = await call({ AUTH_DISABLED: 'false' }, '/v1/models');
    expect(off.status).toBe(401);
  });

  it('keeps health public', async () => {
    expect((await call({ API_KEYS: undefined }, '/health')).status).toBe(200);
  });
});

describe('parseApiKeys', () => {
  it('reads digests as a list, and entries with tenants and limits as JSON', async () => {
    const d1 = toHex(await sha256('k1'));
    const d2 = toHex(await sha256('k2'));
    const list = parseApiKeys(`${d1}, ${d2.toUpperCase()}\n`);
    expect(list.map((k) => toHex(k.digest))).toEqual([d1, d2]);
    expect(list[0].tenant).toBe(`key_${d1.slice(0, 16)}`);
    const json = parseApiKeys(JSON.stringify([{ sha256: d1, tenant: 'acme', rpm: 10, burst: 3 }, d2]));
    expect(json[0]).toMatchObject({ tenant: 'acme', rpm: 10, burst: 3 });
    expect(json[1].tenant).toBe(`key_${d2.slice(0, 16)}`);
  });

  it.each([
    [
      'a raw key instead of a digest',
      'sk-live-123',
      /API_KEYS\[0\]: expected a SHA-256 digest .* found 11 characters/,
    ],
    ['bad JSON', '[{"sha256": ', /API_KEYS: expected a JSON list/],
    [
      'an unknown field',
      JSON.stringify([{ sha256: 'a'.repeat(64), role: 'admin' }]),
      /unknown field\(s\) role/,
    ],
    [
      'a bad tenant',
      JSON.stringify([{ sha256: 'a'.repeat(64), tenant: 'a/b' }]),
      /API_KEYS\[0\].tenant: expected 1-64 characters/,
    ],
    ['no keys', '  ', /expected at least one key digest/],
  ])('refuses %s', (_, raw, message) => {
    expect(() => parseApiKeys(raw)).toThrow(ServerConfigError);
    expect(() => parseApiKeys(raw)).toThrow(message);
  });
});

describe('a model name check happens after auth', () => {
  it('an unauthenticated request for an unknown model is a 401, not a 404', async () => {
    const res = await api('/v1/chat/completions', { key: null, json: { model: 'x', messages: [] } });
    expect(res.status).toBe(401);
  });
  it('an authenticated one is a 404', async () => {
    const res = await api('/v1/chat/completions', {
      json: { model: 'x', messages: [{ role: 'user', content: 'a' }] },
    });
    expect(res.status).toBe(404);
    expect(((await res.json()) as Json).error.message).toContain(MODEL);
  });
});
