import { describe, expect, it } from 'vitest';
import {
  decodeFrame,
  encodeErrorFrame,
  encodeNeedPrompt,
  encodeStepResponse,
  promptDigest,
  WireErrorCode,
  type DropSession,
  type StepRequest,
} from '@switchyard/shared';
import { RequestVerifier, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './auth.ts';
import { GpuExpertClient, GpuTierError } from './client.ts';

const SECRET = 's';
const H = 4;
/** Response wants bytes over a plain ArrayBuffer; the encoders' type does not say so. */
const bytes = (b: Uint8Array) => b as Uint8Array<ArrayBuffer>;

interface Seen {
  path: string;
  frame: StepRequest | DropSession;
}

/**
 * A fake tier behind fetch: verifies every signature (so a replayed stamp fails the test), keeps a
 * (session, expert, digest) set as its cache, and answers y_e = h · (e + 1).
 */
function fakeTier(o: { evictAfterEachStep?: boolean; overloadedTimes?: number } = {}) {
  const verifier = new RequestVerifier({ secret: SECRET });
  const cache = new Set<string>();
  const seen: Seen[] = [];
  let overloaded = o.overloadedTimes ?? 0;
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    const body = init!.body as Uint8Array;
    const headers = init!.headers as Record<string, string>;
    await verifier.verify(
      init!.method!,
      url.pathname,
      headers[TIMESTAMP_HEADER],
      headers[SIGNATURE_HEADER],
      body,
    );
    const frame = decodeFrame(body) as StepRequest | DropSession;
    seen.push({ path: url.pathname, frame });
    if (frame.type === 'drop-session') return new Response(null, { status: 204 });
    if (overloaded-- > 0)
      return new Response(
        bytes(
          encodeErrorFrame({ code: WireErrorCode.Overloaded, message: 'busy', requestId: frame.requestId }),
        ),
        {
          status: 429,
          headers: { 'retry-after': '0' },
        },
      );
    if (frame.experts.includes(9))
      return new Response(
        bytes(
          encodeErrorFrame({
            code: WireErrorCode.InvalidRequest,
            message: 'expert 9 not served here',
            requestId: frame.requestId,
          }),
        ),
        { status: 400 },
      );
    const key = (e: number) => `${frame.sessionId}/${e}/${frame.digest.join(',')}`;
    if (!frame.tokens && frame.experts.some((e) => !cache.has(key(e))))
      return new Response(
        bytes(
          encodeNeedPrompt({
            sessionId: frame.sessionId,
            requestId: frame.requestId,
            step: frame.step,
            digest: frame.digest,
          }),
        ),
      );
    for (const e of frame.experts) cache.add(key(e));
    const values = new Float32Array(H);
    frame.experts.forEach((e, i) => frame.h.forEach((x, j) => (values[j] += frame.gates[i] * x * (e + 1))));
    if (o.evictAfterEachStep) cache.clear();
    return new Response(
      bytes(
        encodeStepResponse({
          sessionId: frame.sessionId,
          requestId: frame.requestId,
          step: frame.step,
          experts: frame.experts,
          dtype: 'f32',
          perExpert: false,
          queueUs: 5,
          computeUs: 6,
          values,
        }),
      ),
    );
  }) as typeof fetch;
  return { fetchImpl, seen };
}

const prompt = [256, 1, 2, 3];

const call = async (step: number, experts: number[], gates: number[]) => ({
  sessionId: 'sess',
  requestId: `r${step}`,
  step,
  prompt: { tokens: prompt, digest: await promptDigest(prompt) },
  experts,
  gates,
  h: Float32Array.of(1, 2, 3, 4),
});

describe('GpuExpertClient', () => {
  it('sends tokens with the first step of a prompt and for newly routed experts only', async () => {
    const tier = fakeTier();
    const c = new GpuExpertClient({ url: 'http://tier.test/', secret: SECRET, fetch: tier.fetchImpl });
    const r = await c.runExperts(await call(1, [0, 1], [0.5, 0.5]));
    expect(Array.from(r.mixture)).toEqual([1.5, 3, 4.5, 6]);
    expect(r.timing).toEqual({ queueUs: 5, computeUs: 6 });
    await c.runExperts(await call(2, [1, 0], [0.5, 0.5]));
    await c.runExperts(await call(3, [1, 2], [0.5, 0.5]));
    const withTokens = tier.seen.map((s) => (s.frame as StepRequest).tokens !== undefined);
    expect(withTokens).toEqual([true, false, true]);
    expect(c.stats).toEqual({ requests: 3, needPrompt: 0, retries: 0 });
  });

  it('answers NEED_PROMPT by resending the same step with the tokens', async () => {
    const tier = fakeTier({ evictAfterEachStep: true });
    const c = new GpuExpertClient({
      url: 'http://tier.test',
      secret: SECRET,
      fetch: tier.fetchImpl,
      tokensUpFront: false,
    });
    for (let step = 1; step <= 3; step++) {
      const r = await c.runExperts(await call(step, [3], [1]));
      expect(Array.from(r.mixture)).toEqual([4, 8, 12, 16]);
    }
    expect(c.stats.needPrompt).toBe(3);
    expect(tier.seen.map((s) => (s.frame as StepRequest).tokens?.length ?? 0)).toEqual([0, 4, 0, 4, 0, 4]);
    expect(tier.seen.map((s) => (s.frame as StepRequest).requestId)).toEqual([
      'r1',
      'r1',
      'r2',
      'r2',
      'r3',
      'r3',
    ]);
  });

  it('retries after 429 and surfaces other errors as GpuTierError', async () => {
    const tier = fakeTier({ overloadedTimes: 2 });
    const c = new GpuExpertClient({ url: 'http://tier.test', secret: SECRET, fetch: tier.fetchImpl });
    await c.runExperts(await call(1, [0], [1]));
    expect(c.stats.retries).toBe(2);
    const err = await c.runExperts(await call(2, [9], [1])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuTierError);
    expect(err).toMatchObject({
      status: 400,
      code: WireErrorCode.InvalidRequest,
      requestId: 'r2',
      message: 'expert 9 not served here',
    });
    const busy = new GpuExpertClient({
      url: 'http://tier.test',
      secret: SECRET,
      fetch: fakeTier({ overloadedTimes: 5 }).fetchImpl,
      maxRetries: 1,
    });
    await expect(busy.runExperts(await call(1, [0], [1]))).rejects.toMatchObject({
      status: 429,
      code: WireErrorCode.Overloaded,
    });
  });

  it('drops sessions with a DROP_SESSION frame and forgets what it sent', async () => {
    const tier = fakeTier();
    const c = new GpuExpertClient({ url: 'http://tier.test', secret: SECRET, fetch: tier.fetchImpl });
    await c.runExperts(await call(1, [0], [1]));
    await c.dropSession('sess');
    await c.runExperts(await call(2, [0], [1]));
    expect(tier.seen.map((s) => [s.path, s.frame.type])).toEqual([
      ['/v1/step', 'step-request'],
      ['/v1/drop', 'drop-session'],
      ['/v1/step', 'step-request'],
    ]);
    expect((tier.seen[2].frame as StepRequest).tokens).toEqual(prompt);
  });

  it('reports a non-frame error body with its status', async () => {
    const fetchImpl = (async () => new Response('bad gateway', { status: 502 })) as typeof fetch;
    const c = new GpuExpertClient({ url: 'http://tier.test', fetch: fetchImpl });
    await expect(c.runExperts(await call(1, [0], [1]))).rejects.toThrow(
      'HTTP 502 without an ERROR frame: bad gateway',
    );
  });
});
