import { describe, it, expect, beforeEach } from 'vitest';
import type { ExpertCall } from '@switchyard/shared/interfaces';
import { promptDigest } from '@switchyard/shared/digest';
import { ReferenceExperts } from '@switchyard/shared/reference';
import { WireErrorCode } from '@switchyard/shared/protocol/index';
import { ExpertProtocolError, ExpertUnavailableError } from '../errors.ts';
import type { ExpertClientSettings } from '../settings.ts';
import { referenceModel } from '../test-utils.ts';
import { FakeTier } from './fake-tier.ts';
import { ExpertRouter, planShards, rendezvousOrder } from './router.ts';
import type { ShardSpec } from './shard-map.ts';

const A = 'http://a.test';
const B = 'http://b.test';
const C = 'http://c.test';
const H = referenceModel.H;
const PROMPT = [256, 104, 105, 10];
let digest: Uint8Array;
let sleeps: number[];
let clock: number;

beforeEach(async () => {
  digest = await promptDigest(PROMPT);
  sleeps = [];
  clock = 1_000_000;
});

/** A session id whose first replica is `url`. */
function firstOn(url: string, replicas: string[]): string {
  for (let i = 0; ; i++) if (rendezvousOrder(replicas, `s-${i}`)[0] === url) return `s-${i}`;
}

function shard(
  replicas: string[],
  experts = [0, 1, 2, 3],
  protocol: ShardSpec['protocol'] = 'native',
  index = 0,
): ShardSpec {
  return { index, experts, replicas, protocol };
}

function router(
  tier: FakeTier,
  shards: ShardSpec[],
  over: Partial<ExpertClientSettings> = {},
  fetchVia: typeof fetch = tier.fetch as typeof fetch,
): ExpertRouter {
  const settings: ExpertClientSettings = {
    shards,
    wireDtype: 'f32',
    timeoutMs: 50,
    retries: 2,
    breakerFailures: 3,
    breakerCooldownMs: 10_000,
    hmacSecret: null,
    ...over,
  };
  return new ExpertRouter(shards, referenceModel.config, settings, {
    fetch: fetchVia,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    now: () => clock,
    random: () => 0.5,
  });
}

function call(step: number, experts: number[], gates: number[], sessionId = 's1'): ExpertCall {
  const h = new Float32Array(H);
  for (let i = 0; i < H; i++) h[i] = Math.sin(i * 0.7 + step) * 0.5;
  return { sessionId, requestId: 'r1', step, prompt: { tokens: PROMPT, digest }, experts, gates, h };
}

async function reference(c: ExpertCall): Promise<Float32Array> {
  return (await new ReferenceExperts(referenceModel).runExperts(c)).mixture;
}

function expectClose(a: Float32Array, b: Float32Array, tol: number) {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++)
    expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(b[i])));
}

describe('ExpertRouter: one shard, native protocol', () => {
  it('returns the gated mixture, sending the prompt only when the replica lacks an expert’s cache', async () => {
    const tier = new FakeTier(referenceModel);
    const r = router(tier, [shard([A])]);
    const c1 = call(1, [0, 3], [0.6, 0.4]);
    const out = await r.runExperts(c1);
    // The tier receives the gates as f32, hence the tolerance.
    expectClose(out.mixture, await reference(c1), 1e-6);
    expect(out.timing).toEqual({ queueUs: 3, computeUs: 7 });
    await r.runExperts(call(2, [3, 0], [0.7, 0.3]));
    await r.runExperts(call(3, [1, 0], [0.5, 0.5]));
    expect(tier.seen.map((s) => [s.step, s.tokens, s.perExpert])).toEqual([
      [1, true, false],
      [2, false, false],
      [3, true, false], // expert 1 is new to the replica: tokens up front, no NEED_PROMPT round trip
    ]);
  });

  it('answers NEED_PROMPT by resending the same step with the tokens', async () => {
    const tier = new FakeTier(referenceModel);
    const r = router(tier, [shard([A])]);
    await r.runExperts(call(1, [0, 1], [0.5, 0.5]));
    tier.forget(); // the tier evicted the cache
    const c2 = call(2, [0, 1], [0.5, 0.5]);
    const out = await r.runExperts(c2);
    expectClose(out.mixture, await reference(c2), 1e-6);
    expect(tier.seen.map((s) => [s.step, s.tokens])).toEqual([
      [1, true],
      [2, false],
      [2, true],
    ]);
  });

  it('refuses an answer that belongs to another request (502)', async () => {
    const tier = new FakeTier(referenceModel);
    tier.set(A, { mismatch: true });
    const err = await router(tier, [shard([A])])
      .runExperts(call(1, [0, 1], [0.5, 0.5]))
      .catch((e) => e);
    expect(err).toBeInstanceOf(ExpertProtocolError);
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/does not match the request: expected session s1 request r1 step 1/);
  });
});

describe('ExpertRouter: several shards', () => {
  it('fans out to the shards of the routed experts and mixes per-expert outputs in routed order, exactly', async () => {
    const tier = new FakeTier(referenceModel);
    tier.set(A, { experts: [0, 1] });
    tier.set(B, { experts: [2, 3] });
    const r = router(tier, [shard([A], [0, 1], 'native', 0), shard([B], [2, 3], 'native', 1)]);
    const c = call(1, [2, 0], [0.55, 0.45]);
    const out = await r.runExperts(c);
    expect(Array.from(out.mixture)).toEqual(Array.from(await reference(c)));
    expect(tier.seen.map((s) => [s.replica, s.experts, s.perExpert]).sort()).toEqual([
      [A, [0], true],
      [B, [2], true],
    ]);
  });

  it('reports the call sent once every shard’s request (each expert’s, for KServe) is handed to fetch, before any answer', async () => {
    for (const [shards, experts, requests] of [
      [[shard([A], [0, 1], 'native', 0), shard([B], [2, 3], 'native', 1)], [2, 0], 2],
      [[shard([A], [0, 1, 2, 3], 'kserve')], [1, 3], 2],
    ] as const) {
      const tier = new FakeTier(referenceModel);
      tier.set(A, { experts: [0, 1, 2, 3] });
      tier.set(B, { experts: [0, 1, 2, 3] });
      const log: string[] = [];
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      // Answers wait until released, so "sent" can only come from the requests leaving.
      const r = router(tier, [...shards], {}, (async (input: string, init?: RequestInit) => {
        log.push('fetch');
        await held;
        return tier.fetch(input, init);
      }) as typeof fetch);
      const c = { ...call(1, [...experts], [0.5, 0.5]), onSent: () => log.push('sent') };
      const out = r.runExperts(c);
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect(log).toEqual([...Array(requests).fill('fetch'), 'sent']);
      release();
      expect(Array.from((await out).mixture)).toEqual(Array.from(await reference(c)));
      expect(log.filter((x) => x === 'sent')).toHaveLength(1);
    }
  });

  it('plans the fewest shards when shards overlap', () => {
    const s0 = shard([A], [0, 1], 'native', 0);
    const s1 = shard([B], [1, 2, 3], 'native', 1);
    expect(planShards([1, 2], [s0, s1]).map((p) => [p.shard.index, p.idx])).toEqual([[1, [0, 1]]]);
    expect(planShards([0, 3], [s0, s1]).map((p) => [p.shard.index, p.idx])).toEqual([
      [0, [0]],
      [1, [1]],
    ]);
    expect(() => planShards([5], [s0, s1])).toThrow(/no shard serves expert\(s\) 5/);
  });

  it('speaks KServe V2 to a kserve shard: one stateless call per expert, tokens every time, mixed at the edge', async () => {
    const tier = new FakeTier(referenceModel);
    const r = router(tier, [shard([A], [0, 1, 2, 3], 'kserve')]);
    for (const step of [1, 2]) {
      const c = call(step, [1, 3], [0.8, 0.2]);
      expect(Array.from((await r.runExperts(c)).mixture)).toEqual(Array.from(await reference(c)));
    }
    expect(tier.seen.map((s) => s.path)).toEqual([
      '/v2/models/expert-1/infer',
      '/v2/models/expert-3/infer',
      '/v2/models/expert-1/infer',
      '/v2/models/expert-3/infer',
    ]);
  });

  it('treats a KServe 5xx as retryable and a 400 as final', async () => {
    const tier = new FakeTier(referenceModel);
    tier.set(A, { errorCode: WireErrorCode.Internal });
    const r = router(tier, [shard([A], [0, 1, 2, 3], 'kserve')]);
    await expect(r.runExperts(call(1, [0, 1], [0.5, 0.5]))).rejects.toBeInstanceOf(ExpertUnavailableError);
    tier.set(A, { errorCode: WireErrorCode.BadFrame });
    const fresh = router(tier, [shard([A], [0, 1, 2, 3], 'kserve')]);
    await expect(fresh.runExperts(call(1, [0, 1], [0.5, 0.5]))).rejects.toThrow(/expert-0: HTTP 400/);
  });
});

describe('ExpertRouter: replicas', () => {
  it('keeps each session on one replica, and spreads sessions over replicas', async () => {
    const tier = new FakeTier(referenceModel);
    const r = router(tier, [shard([A, B, C])]);
    const used = new Map<string, Set<string>>();
    for (let s = 0; s < 12; s++)
      for (let step = 1; step <= 3; step++) await r.runExperts(call(step, [0, 1], [0.5, 0.5], `sess-${s}`));
    tier.seen.forEach((x, i) => {
      const sid = `sess-${Math.floor(i / 3)}`;
      if (!used.has(sid)) used.set(sid, new Set());
      used.get(sid)!.add(x.replica);
    });
    for (const [sid, replicas] of used) {
      expect(replicas.size).toBe(1);
      expect([...replicas][0]).toBe(rendezvousOrder([A, B, C], sid)[0]);
    }
    expect(new Set([...used.values()].map((s) => [...s][0])).size).toBeGreaterThan(1);
  });

  it('fails over to the next replica with the prompt, without a pause, and stays there', async () => {
    const tier = new FakeTier(referenceModel);
    const [primary, secondary] = rendezvousOrder([A, B], 's1');
    const r = router(tier, [shard([A, B])]);
    await r.runExperts(call(1, [0, 1], [0.5, 0.5]));
    tier.set(primary, { down: true });
    const c2 = call(2, [0, 1], [0.5, 0.5]);
    expectClose((await r.runExperts(c2)).mixture, await reference(c2), 1e-6);
    await r.runExperts(call(3, [0, 1], [0.5, 0.5]));
    expect(tier.seen.map((s) => [s.replica, s.step, s.tokens])).toEqual([
      [primary, 1, true],
      [secondary, 2, true],
      [secondary, 3, false],
    ]);
    expect(sleeps).toEqual([]);
    expect(r.stats.failovers).toBe(1);
  });

  it('retries one replica with growing backoff, then answers 503 naming the failures', async () => {
    const tier = new FakeTier(referenceModel);
    tier.set(A, { errorCode: WireErrorCode.Overloaded });
    const err = await router(tier, [shard([A])], { retries: 3, breakerFailures: 10 })
      .runExperts(call(1, [0, 1], [0.5, 0.5]))
      .catch((e) => e);
    expect(err).toBeInstanceOf(ExpertUnavailableError);
    expect(err.status).toBe(503);
    expect(err.message).toMatch(
      /shard 0 \(experts 0, 1, 2, 3\) did not answer after 4 attempts \(replica 0: error 3 \(HTTP 429\): injected error 3/,
    );
    expect(err.retryAfter).toBeGreaterThanOrEqual(1);
    expect(tier.seen.length).toBe(4);
    expect(sleeps.length).toBe(3);
    expect(sleeps[1]).toBeGreaterThan(sleeps[0]);
    expect(sleeps[2]).toBeGreaterThan(sleeps[1]);
  });

  it('does not retry what the tier refuses outright (BadFrame, InvalidRequest): 502 at once, no failover', async () => {
    const tier = new FakeTier(referenceModel);
    tier.set(A, { errorCode: WireErrorCode.InvalidRequest });
    const session = firstOn(A, [A, B]);
    const err = await router(tier, [shard([A, B])])
      .runExperts(call(1, [0, 1], [0.5, 0.5], session))
      .catch((e) => e);
    expect(err).toBeInstanceOf(ExpertProtocolError);
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/shard 0 replica 0 refused the step: error 2 \(HTTP 400\): injected error 2/);
    expect(tier.seen.map((s) => s.replica)).toEqual([A]);
  });

  it('gives up on a replica that does not answer within the timeout', async () => {
    const tier = new FakeTier(referenceModel);
    tier.set(A, { stall: true });
    const err = await router(tier, [shard([A])], { retries: 1, timeoutMs: 5 })
      .runExperts(call(1, [0, 1], [0.5, 0.5]))
      .catch((e) => e);
    expect(err).toBeInstanceOf(ExpertUnavailableError);
    expect(err.message).toMatch(/no answer before the timeout/);
  });

  it('opens the circuit after repeated failures: the dead replica is skipped, then tried again after the cooldown', async () => {
    const attempts: string[] = [];
    const counting = new FakeTier(referenceModel);
    const fetchSpy = (async (input: RequestInfo | URL, init?: RequestInit) => {
      attempts.push(new URL(String(input)).origin);
      return counting.fetch(input, init);
    }) as typeof fetch;
    counting.set(A, { down: true });
    const settings: ExpertClientSettings = {
      shards: [shard([A, B])],
      wireDtype: 'f32',
      timeoutMs: 50,
      retries: 1,
      breakerFailures: 2,
      breakerCooldownMs: 1000,
      hmacSecret: null,
    };
    const r = new ExpertRouter(settings.shards, referenceModel.config, settings, {
      fetch: fetchSpy,
      sleep: async () => undefined,
      now: () => clock,
    });
    // Sessions whose first choice is A, so that each call tries A first until its circuit opens.
    const sessions = Array.from({ length: 40 }, (_, i) => `s${i}`).filter(
      (s) => rendezvousOrder([A, B], s)[0] === A,
    );
    for (const s of sessions.slice(0, 4)) await r.runExperts(call(1, [0, 1], [0.5, 0.5], s));
    expect(attempts.filter((u) => u === A).length).toBe(2);
    clock += 1001; // half-open: one trial goes to A again
    await r.runExperts(call(1, [0, 1], [0.5, 0.5], sessions[4]));
    expect(attempts.filter((u) => u === A).length).toBe(3);
  });

  it('answers 503 at once, with the cooldown as Retry-After, when every replica’s circuit is open', async () => {
    const tier = new FakeTier(referenceModel);
    tier.set(A, { down: true });
    const r = router(tier, [shard([A])], { retries: 0, breakerFailures: 1, breakerCooldownMs: 7000 });
    await expect(r.runExperts(call(1, [0, 1], [0.5, 0.5]))).rejects.toBeInstanceOf(ExpertUnavailableError);
    clock += 2000;
    const err = await r.runExperts(call(2, [0, 1], [0.5, 0.5])).catch((e) => e);
    expect(err.message).toMatch(/every replica's circuit is open/);
    expect(err.retryAfter).toBe(5);
  });

  it('drops a session on the replica that served it', async () => {
    const tier = new FakeTier(referenceModel);
    const r = router(tier, [shard([A, B])]);
    await r.runExperts(call(1, [0, 1], [0.5, 0.5], 'to-drop'));
    await r.dropSession('to-drop');
    const served = tier.seen[0].replica;
    expect(tier.seen.map((s) => [s.replica, s.path])).toEqual([
      [served, '/v1/step'],
      [served, '/v1/drop'],
    ]);
  });

  it('reports each replica’s readiness and breaker state', async () => {
    const tier = new FakeTier(referenceModel);
    tier.set(B, { down: true });
    const health = await router(tier, [shard([A, B])]).health();
    expect(health).toEqual([
      {
        shard: 0,
        experts: [0, 1, 2, 3],
        protocol: 'native',
        replicas: [
          { replica: 0, ready: true, breaker: 'closed' },
          { replica: 1, ready: false, breaker: 'closed' },
        ],
      },
    ]);
  });
});

describe('ExpertRouter: signing', () => {
  it('signs every request so the tier accepts it', async () => {
    const tier = new FakeTier(referenceModel, 'sekrit');
    const r = router(tier, [shard([A])], { hmacSecret: 'sekrit' });
    await r.runExperts(call(1, [0, 1], [0.5, 0.5]));
    await r.runExperts(call(2, [0, 1], [0.5, 0.5]));
    expect(tier.seen.map((s) => s.signed)).toEqual([true, true]);
  });

  it('reports a refused signature as a 502 that names the setting to fix', async () => {
    const tier = new FakeTier(referenceModel, 'sekrit');
    const err = await router(tier, [shard([A])], { hmacSecret: 'wrong' })
      .runExperts(call(1, [0, 1], [0.5, 0.5]))
      .catch((e) => e);
    expect(err).toBeInstanceOf(ExpertProtocolError);
    expect(err.message).toMatch(/EXPERT_HMAC_SECRET must match/);
  });
});
