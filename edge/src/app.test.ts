import { env } from 'cloudflare:workers';
import { createExecutionContext } from 'cloudflare:test';
import { describe, it, expect, afterEach } from 'vitest';
import { createApp } from './app.ts';
import type { Env } from './env.ts';
import { setExpertFactory } from './services.ts';
import { api, KEYS, MODEL, useTestExperts, type Json } from './test-utils.ts';

const app = createApp();
const call = (vars: Partial<Env>, path: string, init: RequestInit = {}) =>
  app.fetch(
    new Request(`http://edge.test${path}`, {
      ...init,
      headers: { authorization: `Bearer ${KEYS.alice}`, 'content-type': 'application/json', ...init.headers },
    }),
    { ...(env as unknown as Env), ...vars },
    createExecutionContext(),
  );

afterEach(() => setExpertFactory(null));

describe('readiness', () => {
  it('is not ready, with a reason, when no replica of a shard answers', async () => {
    setExpertFactory(null); // the real client, pointed at a closed port (127.0.0.1:9) by the test config
    const res = await api('/health/ready', { key: null });
    const body = (await res.json()) as Json;
    expect(res.status).toBe(503);
    expect(body).toMatchObject({
      status: 'not_ready',
      reason: 'no ready replica for shard(s) 0',
      shards: [
        { shard: 0, experts: [0, 1, 2, 3], replicas: [{ replica: 0, ready: false, breaker: 'closed' }] },
      ],
    });
    expect(JSON.stringify(body)).not.toContain('127.0.0.1:9');
  });

  it('is not ready when the shard map is missing, saying so', async () => {
    setExpertFactory(null);
    const res = await call({ EXPERT_SHARDS: undefined }, '/health/ready');
    expect(res.status).toBe(503);
    expect(((await res.json()) as Json).reason).toMatch(/EXPERT_SHARDS: not set/);
  });

  it('is ready when the expert tier is', async () => {
    useTestExperts();
    expect((await api('/health/ready', { key: null })).status).toBe(200);
  });

  it('a dead expert tier makes generation a 503 with Retry-After, not a hang', async () => {
    setExpertFactory(null);
    const res = await call({ EXPERT_TIMEOUT_MS: '200', EXPERT_RETRIES: '0' }, '/v1/chat/completions', {
      method: 'POST',
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
    });
    expect(res.status).toBe(503);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const body = (await res.json()) as Json;
    expect(body.error.code).toBe('expert_tier_unavailable');
    expect(body.error.message).not.toContain('127.0.0.1:9');
  });
});

describe('configuration errors reach the operator, not a silent default', () => {
  it.each([
    [{ RATE_LIMIT_RPM: 'lots' }, 'RATE_LIMIT_RPM: expected an integer in [0, 1000000], found "lots"'],
    [{ EXPERT_PROTOCOL: 'grpc' }, 'EXPERT_PROTOCOL: expected one of native, kserve, found "grpc"'],
    [{ MAX_TOKENS_LIMIT: '0' }, 'MAX_TOKENS_LIMIT: expected an integer in [1, 1048576], found "0"'],
    [
      { COMPUTE_BACKEND: 'cuda' },
      'COMPUTE_BACKEND: expected one of wasm-simd, ort-web, reference, found "cuda"',
    ],
  ] as [Partial<Env>, string][])('%o', async (vars, message) => {
    useTestExperts();
    const res = await call(vars, '/v1/models');
    expect(res.status).toBe(500);
    const body = (await res.json()) as Json;
    expect(body.error.type).toBe('server_error');
    expect(body.error.message).toBe(message);
  });
});
