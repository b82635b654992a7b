import { describe, it, expect, beforeEach } from 'vitest';
import { takeToken } from './rate-limit.ts';
import { api, KEYS, MODEL, sseEvents, useTestExperts, type Json } from './test-utils.ts';

beforeEach(() => {
  useTestExperts();
});

describe('token bucket', () => {
  const limit = { perMinute: 60, burst: 3 };
  it('allows a burst, then refuses with the time until the next token', () => {
    let bucket = { tokens: 3, at: 0 };
    const decisions = [];
    for (let i = 0; i < 4; i++) {
      const r = takeToken(bucket, limit, 0);
      bucket = r.bucket;
      decisions.push(r.decision);
    }
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false]);
    expect(decisions.map((d) => d.remaining)).toEqual([2, 1, 0, 0]);
    expect(decisions[3].retryAfter).toBeCloseTo(1, 9); // 60/min: one token per second
  });

  it('refills at the sustained rate, never above the burst', () => {
    const empty = { tokens: 0, at: 0 };
    expect(takeToken(empty, limit, 500).decision.allowed).toBe(false);
    expect(takeToken(empty, limit, 500).decision.retryAfter).toBeCloseTo(0.5, 9);
    expect(takeToken(empty, limit, 1000).decision.allowed).toBe(true);
    expect(takeToken(empty, limit, 3_600_000).decision.remaining).toBe(2);
  });
});

describe('per-key rate limits', () => {
  it('answers 429 with Retry-After past a key’s limit, and leaves other keys alone', async () => {
    // The "limited" key allows 6 requests per minute with a burst of 2.
    const first = await api('/v1/models', { key: KEYS.limited });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-limit-requests')).toBe('6');
    expect(first.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    expect((await api('/v1/models', { key: KEYS.limited })).status).toBe(200);
    const refused = await api('/v1/models', { key: KEYS.limited });
    expect(refused.status).toBe(429);
    const retry = Number(refused.headers.get('retry-after'));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(10);
    const body = (await refused.json()) as Json;
    expect(body.error.type).toBe('rate_limit_error');
    expect(body.error.code).toBe('rate_limit_exceeded');
    expect(body.error.message).toMatch(/6 requests per minute \(burst 2\); retry in \d+ s/);
    expect((await api('/v1/models', { key: KEYS.bob })).status).toBe(200);
  });

  it('puts the limit headers on a session turn, which the SessionActor answers itself', async () => {
    const created = await api('/v1/sessions', { key: KEYS.metered, json: { model: MODEL } });
    expect(created.status).toBe(200);
    const { id } = (await created.json()) as Json;
    const turn = await api(`/v1/sessions/${id}/messages`, {
      key: KEYS.metered,
      json: { content: 'hi', max_tokens: 3, stream: true },
    });
    expect(turn.status).toBe(200);
    expect(turn.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(turn.headers.get('x-ratelimit-limit-requests')).toBe('60');
    expect(turn.headers.get('x-ratelimit-remaining-requests')).toBe('3');
    expect((await sseEvents(turn)).at(-1)).toBe('[DONE]');
  });
});
