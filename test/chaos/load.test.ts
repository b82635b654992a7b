// The load run (bench/load.ts) as a test: its short form inside npm test (16 conversations for 15 s), the
// full one (64 conversations for 5 minutes, figures to bench/results/load.json) with SWITCHYARD_CHAOS=full.
import { describe, expect, it } from 'vitest';
import { FULL_LOAD, run } from '../../bench/load.ts';
import { FULL } from './harness.ts';

const SHORT = {
  sessions: 16,
  durationMs: 15_000,
  overloadMs: 4_000,
  overloadClients: 16,
  rateLimit: { rpm: 120, burst: 5 },
  write: false,
};

describe('load', () => {
  it(`${FULL ? FULL_LOAD.sessions : SHORT.sessions} concurrent conversations: nothing lost, no 5xx; past capacity 429s with Retry-After; then recovery`, async () => {
    const r = await run(FULL ? {} : SHORT);
    const reloads = r.workerReloads
      ? ` (wrangler dev reloaded the Worker ${r.workerReloads} time(s) during the run because a watched file changed)`
      : '';
    const u = r.underCapacity;
    // Under capacity: every turn answered, every session's stored state is what its client was told.
    expect(u.turns).toBeGreaterThan(0);
    expect(u.conversations).toBeGreaterThanOrEqual(r.options.sessions);
    expect(u.errors5xx, JSON.stringify(u.statuses) + reloads).toBe(0);
    expect(u.lostSessions, u.lost.join('\n') + reloads).toBe(0);
    expect(u.sessionsVerified).toBe(u.conversations);
    expect(u.turnLatencyMs.count).toBe(u.turns);

    // Past the key's rate limit: refusals, each with Retry-After, never a 5xx; about the allowed number served.
    const e = r.overload.edgeRateLimit;
    expect(e.rateLimited).toBeGreaterThan(0);
    expect(e.retryAfterMissing).toBe(0);
    expect(e.errors5xx + e.other, reloads).toBe(0);
    expect(e.ok).toBeLessThanOrEqual(e.allowed + 1);
    // Meanwhile another key was still served.
    expect(e.bystander.turns).toBeGreaterThan(0);
    expect(e.bystander.ok).toBe(e.bystander.turns);

    // Past the GPU tier's queue limit: 429 Overloaded with Retry-After, the queue bounded, never a 5xx.
    const g = r.overload.gpuBackpressure;
    expect(g.overloaded).toBeGreaterThan(0);
    expect(g.ok).toBeGreaterThan(0);
    expect(g.retryAfterMissing).toBe(0);
    expect(g.errors5xx + g.other).toBe(0);
    expect(g.maxQueueDepth).toBeLessThanOrEqual(r.options.gpuQueueLimit);

    // Once the load drops: all of it serves again.
    expect(r.recovery).toMatchObject({ edgeRateLimited: true, gpuTier: true, sessions: true });
  });
});
