// Bad input against the real stack: a table of malformed requests to the edge's API and to the GPU tier's
// native and KServe endpoints, each with the status and the message it must get; then generated inputs
// (fast-check, a bounded number of runs). Throughout, a probe session must keep exactly its state, the
// processes must stay up, and nothing may answer 5xx.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TierHttp } from '../../gpu-backend/src/client.ts';
import {
  decodeFrame,
  encodeStepRequest,
  ProtocolError,
  WireErrorCode,
  type ErrorFrame,
} from '../../shared/src/protocol/index.ts';
import { promptDigest } from '../../shared/src/digest.ts';
import {
  ChaosStack,
  completionBody,
  expectGoldenTurn,
  expectSessionAfter,
  golden,
  MODEL_NAME,
  NO_MEMORY,
  readTurn,
  reportReloads,
  scaled,
  turn1,
  turn2,
  turnBody,
  type Api,
  type Json,
} from './harness.ts';
import {
  bytes,
  chat,
  EDGE_CASES,
  good,
  INFER,
  LIMITS,
  MAX_BODY,
  MAX_TOKENS,
  TIER_CASES,
  validStep,
} from './bad-input-cases.ts';

const KEY = 'sk-chaos-bad-input';
const RUNS = scaled(40, 400);

let s: ChaosStack;
let api: Api;
let tier: TierHttp;
let probe: string;
let probeState: Json;

beforeAll(async () => {
  s = await ChaosStack.start({
    keys: [{ key: KEY, tenant: 'bad-input' }],
    vars: {
      MAX_BODY_BYTES: String(MAX_BODY),
      MAX_TOKENS_LIMIT: String(MAX_TOKENS),
      DEFAULT_MAX_TOKENS: '8',
    },
  });
  api = s.api(KEY);
  tier = new TierHttp(s.replicas[0].gpu.url, s.secret);
  probe = await api.createSession();
  expectGoldenTurn(
    await readTurn(await api.post(`/v1/sessions/${probe}/messages`, turnBody(turn1, false))),
    turn1,
    'probe',
  );
  probeState = await api.session(probe);
});

afterAll(async () => {
  await s?.stop();
});
reportReloads(() => s);

/** The probe session is exactly as it was, and still answers its next turn as the reference does. */
async function expectProbeUnchanged(): Promise<void> {
  expect(await api.session(probe)).toEqual(probeState);
}

describe('bad input to the edge API', () => {
  it.each(EDGE_CASES.map((c) => [c.kind, c] as const))('%s', async (_, c) => {
    const path = (c.path ?? '/v1/chat/completions').replace('probe', probe);
    const r = await api.call(c.method ?? 'POST', path, c.body, c.headers);
    expect(r.status, r.text).toBe(c.status);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.body.error.code).toBe(c.code);
    expect(r.body.error.message).toMatch(c.message);
    expect(r.body.error.type).toBe(
      c.status === 404 && c.code !== 'model_not_found' ? 'not_found_error' : 'invalid_request_error',
    );
  });

  it('a refused streaming request is a plain JSON error, not an event stream', async () => {
    const r = await api.call('POST', '/v1/chat/completions', chat({ stream: true, temperature: 9 }));
    expect(r.status, r.text).toBe(400);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.body.error.param).toBe('temperature');
  });

  it('left the probe session exactly as it was', expectProbeUnchanged);
});

describe('bad input to the GPU tier', () => {
  it.each(TIER_CASES.map((c) => [c.kind, c] as const))('%s', async (_, c) => {
    const made = await c.body();
    const body = typeof made === 'string' || made instanceof Uint8Array ? made : made.bytes;
    const headers: Record<string, string> = {
      'content-type': c.path?.startsWith('/v2') ? 'application/json' : 'application/octet-stream',
      ...(typeof made === 'string' || made instanceof Uint8Array ? {} : made.headers),
    };
    const res = await tier.request(
      c.method ?? 'POST',
      c.path ?? '/v1/step',
      c.method === 'GET' ? undefined : body,
      headers,
    );
    const raw = new Uint8Array(await res.arrayBuffer());
    expect(res.status, new TextDecoder().decode(raw).slice(0, 300)).toBe(c.status);
    let message: string;
    if (res.headers.get('content-type') === 'application/octet-stream') {
      const f = decodeFrame(raw) as ErrorFrame;
      expect(f.type).toBe('error');
      if (c.wire !== undefined) expect(f.code).toBe(c.wire);
      message = f.message;
    } else message = (JSON.parse(new TextDecoder().decode(raw)) as { error: string }).error;
    expect(message).toMatch(c.message);
  });

  it('still serves a good step afterwards, and the process is up', async () => {
    const res = await tier.request('POST', '/v1/step', await good(), {
      'content-type': 'application/octet-stream',
    });
    expect(res.status).toBe(200);
    expect(decodeFrame(new Uint8Array(await res.arrayBuffer())).type).toBe('step-response');
    expect(s.replicas[0].gpu.child.exitCode).toBeNull();
  });
});

// ------------------------------------------------------------------------------------------------ generated

/** JSON values that tend to break validators: wrong types, edge numbers, odd strings. */
const oddValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, -1, 0, 1e308, -0, 2 ** 53, '', '\u0000', '\ud800', 'x'.repeat(300), [], {}, true),
);

const genMessage = fc.record(
  {
    role: fc.oneof(fc.constantFrom('system', 'developer', 'user', 'assistant'), oddValue),
    content: fc.oneof(fc.string({ maxLength: 40 }), oddValue),
    name: oddValue,
  },
  { requiredKeys: [] },
);

const genChatBody = fc.record(
  {
    model: fc.oneof(fc.constant(MODEL_NAME), oddValue),
    messages: fc.oneof(fc.array(genMessage, { maxLength: 3 }), oddValue),
    max_tokens: fc.oneof(fc.integer({ min: 1, max: 6 }), oddValue),
    temperature: fc.oneof(fc.double({ min: 0, max: 2, noNaN: true }), oddValue),
    top_p: fc.oneof(fc.double({ min: 0.01, max: 1, noNaN: true }), oddValue),
    seed: fc.oneof(fc.integer(), oddValue),
    stream: fc.oneof(fc.boolean(), oddValue),
    stream_options: fc.oneof(fc.record({ include_usage: fc.boolean() }), oddValue),
    stop: fc.oneof(fc.string({ minLength: 1, maxLength: 4 }), oddValue),
    n: fc.oneof(fc.constant(1), oddValue),
    user: oddValue,
    switchyard: fc.oneof(fc.record({ trace: fc.boolean(), memory: fc.constant(NO_MEMORY) }), oddValue),
    x_extra: oddValue,
  },
  { requiredKeys: [] },
);

/** One change that no session turn may accept, whatever else the body holds. */
const genInvalidTurnField = fc.oneof(
  fc.record({
    max_tokens: fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: MAX_TOKENS + 1 }), fc.string()),
  }),
  fc.record({
    temperature: fc.oneof(
      fc.double({ min: 2.001, noNaN: true, noDefaultInfinity: true }),
      fc.double({ max: -0.001, noNaN: true, noDefaultInfinity: true }),
      fc.string(),
    ),
  }),
  fc.record({
    top_p: fc.oneof(
      fc.double({ min: 1.001, noNaN: true, noDefaultInfinity: true }),
      fc.constant(0),
      fc.boolean(),
    ),
  }),
  fc.record({ stream: fc.oneof(fc.string(), fc.integer(), fc.constant([])) }),
  fc.record({ seed: fc.double({ min: 0.1, max: 1e6, noInteger: true, noNaN: true }) }),
  fc.record({ content: fc.oneof(fc.integer(), fc.boolean(), fc.object()) }),
  fc.record({ role: fc.string().filter((r) => r !== 'user') }),
  fc.record({ stop: fc.array(fc.string({ minLength: 1, maxLength: 3 }), { minLength: 5, maxLength: 7 }) }),
  fc.string({ minLength: 1, maxLength: 12 }).map((k) => ({ [`zz_${k}`]: 1 })),
);

const genTurnBody = fc
  .tuple(
    fc.record(
      {
        content: fc.string({ maxLength: 30 }),
        stream: fc.boolean(),
        max_tokens: fc.integer({ min: 1, max: 4 }),
      },
      { requiredKeys: [] },
    ),
    genInvalidTurnField,
  )
  .map(([base, bad]) => ({ ...base, ...bad }));

/** A 4xx is an OpenAI error with a message; a 200 is a whole answer. Never a 5xx. */
async function expectSaneAnswer(res: Response, what: string): Promise<void> {
  expect(res.status, what).toBeLessThan(500);
  if (res.status === 200) {
    const r = await readTurn(res);
    expect(r.error, what).toBeNull();
    expect(r.done, what).toBe(true);
    return;
  }
  expect([400, 404, 413], what).toContain(res.status);
  const body = (await res.json()) as Json;
  expect(typeof body.error.message, what).toBe('string');
  expect(body.error.message.length, what).toBeGreaterThan(0);
  expect(body.error.type, what).toMatch(/^(invalid_request_error|not_found_error)$/);
}

describe('generated input (fast-check)', () => {
  it(`edge: ${RUNS} generated chat bodies never get a 5xx`, async () => {
    await fc.assert(
      fc.asyncProperty(genChatBody, async (body) => {
        const res = await api.post('/v1/chat/completions', body);
        await expectSaneAnswer(res, JSON.stringify(body).slice(0, 300));
      }),
      { numRuns: RUNS },
    );
  });

  it(`edge: ${RUNS} generated byte strings as bodies get a 4xx`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.string({ maxLength: 200 }).map((t) => `{${t}`),
        ),
        async (body) => {
          const res = await api.post('/v1/chat/completions', body);
          expect(res.status).toBeGreaterThanOrEqual(400);
          await expectSaneAnswer(res, String(body).slice(0, 200));
        },
      ),
      { numRuns: RUNS },
    );
  });

  it(`edge: ${RUNS} generated invalid turns to the probe session get a 4xx and change nothing`, async () => {
    await fc.assert(
      fc.asyncProperty(genTurnBody, async (body) => {
        const res = await api.post(`/v1/sessions/${probe}/messages`, body);
        const text = await res.text();
        expect(res.status, `${JSON.stringify(body).slice(0, 200)} → ${text.slice(0, 200)}`).toBe(400);
      }),
      { numRuns: RUNS },
    );
    await expectProbeUnchanged();
  });

  it(`GPU tier: ${RUNS * 4} generated and mutated frames: exactly what the decoder refuses is refused, never a 5xx`, async () => {
    const bases = [
      await good(),
      encodeStepRequest(await validStep({ perExpert: true, hDtype: 'f16' }, null)),
      encodeStepRequest(await validStep({ responseDtype: 'f16', experts: [3], gates: [1] })),
    ];
    // Mostly small damage to a valid frame, so that some still decode and the accepting side is tested too.
    const mutated = fc
      .tuple(
        fc.constantFrom(...bases),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }),
        fc.option(fc.nat(), { nil: undefined, freq: 3 }),
        fc.option(fc.uint8Array({ minLength: 1, maxLength: 6 }), { nil: undefined, freq: 2 }),
      )
      .map(([base, edits, cut, tail]) => {
        const b = base.slice();
        for (const [at, v] of edits) b[at % b.length] = v;
        const kept = cut === undefined ? b : b.subarray(0, cut % (b.length + 1));
        return tail ? bytes([...kept], [...tail]) : kept;
      });
    const magic = fc.uint8Array({ maxLength: 120 }).map((b) => bytes('SWYD', [1, 0, 1, 0], [...b]));
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof({ arbitrary: mutated, weight: 3 }, magic, fc.uint8Array({ maxLength: 64 })),
        async (frame) => {
          let expected: { status: number; code?: number; message?: string };
          try {
            const f = decodeFrame(frame, LIMITS);
            if (f.type !== 'step-request') expected = { status: 400, code: WireErrorCode.BadFrame };
            else if (f.tokens && Buffer.compare(await promptDigest(f.tokens), f.digest) !== 0)
              expected = { status: 400, code: WireErrorCode.InvalidRequest };
            else expected = { status: 200 };
          } catch (e) {
            if (!(e instanceof ProtocolError)) throw e;
            expected = { status: 400, code: WireErrorCode.BadFrame, message: e.message };
          }
          const res = await tier.request('POST', '/v1/step', frame, {
            'content-type': 'application/octet-stream',
          });
          const out = decodeFrame(new Uint8Array(await res.arrayBuffer()));
          expect(res.status).toBe(expected.status);
          if (expected.status === 200) {
            accepted++;
            expect(['step-response', 'need-prompt']).toContain(out.type);
          } else {
            expect(out.type).toBe('error');
            expect((out as ErrorFrame).code).toBe(expected.code);
            if (expected.message) expect((out as ErrorFrame).message).toBe(expected.message);
          }
        },
      ),
      { numRuns: RUNS * 4 },
    );
    expect(accepted).toBeGreaterThan(0);
  });

  it(`GPU tier: ${RUNS} generated KServe bodies get a 4xx, never a 5xx`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
          fc
            .record({
              inputs: fc.array(
                fc.record(
                  {
                    name: fc.constantFrom('tokens', 'prompt_len', 'h'),
                    datatype: fc.constantFrom('INT64', 'FP32', 'BYTES'),
                    shape: fc.array(fc.integer({ min: -1, max: 70 }), { maxLength: 3 }),
                    data: fc.array(fc.oneof(fc.integer(), fc.double()), { maxLength: 8 }),
                  },
                  { requiredKeys: [] },
                ),
                { maxLength: 4 },
              ),
            })
            .map((v) => JSON.stringify(v)),
        ),
        async (body) => {
          const res = await tier.request('POST', INFER, body, { 'content-type': 'application/json' });
          expect(res.status, body.slice(0, 200)).toBeGreaterThanOrEqual(400);
          expect(res.status, body.slice(0, 200)).toBeLessThan(500);
          expect(typeof ((await res.json()) as { error: string }).error).toBe('string');
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('afterwards: both processes are up, and the probe session continues exactly as the reference', async () => {
    expect(s.replicas[0].gpu.child.exitCode).toBeNull();
    expect((await fetch(`${s.url}/health/ready`)).status).toBe(200);
    await expectProbeUnchanged();
    const next = await readTurn(await api.post(`/v1/sessions/${probe}/messages`, turnBody(turn2, true)));
    expectGoldenTurn(next, turn2, 'the probe session’s next turn');
    expectSessionAfter(await api.session(probe), [turn1, turn2], 'the probe session');
    const stateless = await readTurn(
      await api.post('/v1/chat/completions', completionBody(golden.sessions[0].turns[0])),
    );
    expectGoldenTurn(stateless, golden.sessions[0].turns[0], 'a stateless request');
  });
});
