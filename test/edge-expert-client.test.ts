// The edge's expert client (edge/src/experts) in Node against the real GPU tier: both protocols, a model split
// over two shards, an evicted prompt cache, and request signing checked by the GPU tier's own verifier.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promptDigest } from '../shared/src/digest.ts';
import type { ExpertCall } from '../shared/src/interfaces.ts';
import { ReferenceExperts, ReferenceModel } from '../shared/src/reference.ts';
import { readWeights } from '../shared/src/weights/index.ts';
import { RequestVerifier } from '../gpu-backend/src/auth.ts';
import { ExpertRouter } from '../edge/src/experts/router.ts';
import { signRequest } from '../edge/src/experts/hmac.ts';
import type { ShardSpec } from '../edge/src/experts/shard-map.ts';
import { readFileSync } from 'node:fs';
import { GOLDEN_MODEL, startGpuTier, type Proc } from './edge-harness.ts';

const SECRET = 'client-test-secret';
const file = readWeights(new Uint8Array(readFileSync(GOLDEN_MODEL)));
const model = new ReferenceModel(file.config, file.params());
const H = model.H;
const PROMPT = [256, ...new TextEncoder().encode('user: What is 2 + 2?\n')];

let full: Proc; // all experts, signed
let half: Proc; // experts 0-1 only, signed

beforeAll(async () => {
  [full, half] = await Promise.all([
    startGpuTier(['--secret', SECRET]),
    startGpuTier(['--secret', SECRET, '--experts', '0-1']),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([full?.stop(), half?.stop()]);
});

function router(shards: ShardSpec[], secret: string | null = SECRET): ExpertRouter {
  return new ExpertRouter(shards, file.config, {
    shards,
    wireDtype: 'f32',
    timeoutMs: 10_000,
    retries: 1,
    breakerFailures: 5,
    breakerCooldownMs: 10_000,
    hmacSecret: secret,
  });
}

async function call(
  step: number,
  experts: number[],
  gates: number[],
  sessionId: string,
): Promise<ExpertCall> {
  const h = new Float32Array(H);
  for (let i = 0; i < H; i++) h[i] = Math.cos(i * 0.37 + step) * 0.6;
  return {
    sessionId,
    requestId: `${sessionId}-r`,
    step,
    prompt: { tokens: PROMPT, digest: await promptDigest(PROMPT) },
    experts,
    gates,
    h,
  };
}

async function needPrompts(gpu: Proc): Promise<number> {
  const text = await (await fetch(`${gpu.url}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n'))
    if (line.startsWith('switchyard_gpu_need_prompt_total')) n += Number(line.split(' ').at(-1));
  return n;
}

/** The GPU tier computes in ONNX Runtime float32: a different summation order than the reference. */
function expectClose(a: Float32Array, b: Float32Array) {
  let worst = 0;
  for (let i = 0; i < a.length; i++)
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  expect(worst).toBeLessThan(1e-4);
}

describe('edge expert client against switchyard-gpu', () => {
  it('native protocol: mixtures match the reference over a turn, NEED_PROMPT avoided, caches reused', async () => {
    const r = router([{ index: 0, experts: [0, 1, 2, 3], replicas: [full.url], protocol: 'native' }]);
    const ref = new ReferenceExperts(model);
    for (const [step, experts] of [
      [1, [0, 3]],
      [2, [3, 0]],
      [3, [2, 0]],
    ] as const) {
      const c = await call(step, [...experts], [0.6, 0.4], 'native-1');
      expectClose((await r.runExperts(c)).mixture, (await ref.runExperts(c)).mixture);
    }
    expect(r.stats).toMatchObject({ attempts: 3, failures: 0 });
  });

  it('native protocol: a dropped cache costs a NEED_PROMPT round trip, never a failure', async () => {
    const r = router([{ index: 0, experts: [0, 1, 2, 3], replicas: [full.url], protocol: 'native' }]);
    const ref = new ReferenceExperts(model);
    await r.runExperts(await call(1, [1, 2], [0.5, 0.5], 'evicted'));
    // The tier forgets the prompt behind this client's back (another client drops it, as an eviction would).
    await router([{ index: 0, experts: [0, 1, 2, 3], replicas: [full.url], protocol: 'native' }]).dropSession(
      'evicted',
    );
    const before = await needPrompts(full);
    const c = await call(2, [1, 2], [0.5, 0.5], 'evicted');
    expectClose((await r.runExperts(c)).mixture, (await ref.runExperts(c)).mixture);
    expect(await needPrompts(full)).toBe(before + 1);
    expect(r.stats.failures).toBe(0);
  });

  it('KServe V2: the stateless expert-{e} models give the same mixtures', async () => {
    const r = router([{ index: 0, experts: [0, 1, 2, 3], replicas: [full.url], protocol: 'kserve' }]);
    const ref = new ReferenceExperts(model);
    const c = await call(1, [2, 1], [0.7, 0.3], 'kserve-1');
    expectClose((await r.runExperts(c)).mixture, (await ref.runExperts(c)).mixture);
  });

  it('a model split over two servers: fan-out, per-expert outputs, mixed at the edge', async () => {
    const r = router([
      { index: 0, experts: [0, 1], replicas: [half.url], protocol: 'native' },
      { index: 1, experts: [2, 3], replicas: [full.url], protocol: 'native' },
    ]);
    const ref = new ReferenceExperts(model);
    const c = await call(1, [3, 1], [0.45, 0.55], 'split-1');
    expectClose((await r.runExperts(c)).mixture, (await ref.runExperts(c)).mixture);
  });

  it('a wrong secret is refused by the tier, and reported as such (502)', async () => {
    const r = router(
      [{ index: 0, experts: [0, 1, 2, 3], replicas: [full.url], protocol: 'native' }],
      'not-the-secret',
    );
    const err = await r.runExperts(await call(1, [0, 1], [0.5, 0.5], 'badsig')).catch((e) => e);
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/EXPERT_HMAC_SECRET must match/);
  });

  it('signatures made by the edge verify with the GPU tier’s verifier, and a replay is refused', async () => {
    const v = new RequestVerifier({ secret: SECRET });
    const body = new Uint8Array([1, 2, 3, 250]);
    const h = await signRequest(SECRET, 'POST', '/v1/step', body);
    await v.verify('POST', '/v1/step', h['x-switchyard-timestamp'], h['x-switchyard-signature'], body);
    await expect(
      v.verify('POST', '/v1/step', h['x-switchyard-timestamp'], h['x-switchyard-signature'], body),
    ).rejects.toThrow(/replayed/);
    const again = await signRequest(SECRET, 'POST', '/v1/step', body);
    await v.verify(
      'POST',
      '/v1/step',
      again['x-switchyard-timestamp'],
      again['x-switchyard-signature'],
      body,
    );
  });
});
