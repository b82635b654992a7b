// Security against the real stack: API keys (missing, malformed, wrong, revoked), tenancy of sessions and
// long-term memory, HMAC between the tiers (replayed edge traffic, unsigned, wrong secret, tampered, stale),
// and per-key rate limits. Each test says what an outsider tries, what they get, and what stays untouched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest } from '../../gpu-backend/src/auth.ts';
import { decodeFrame, type ErrorFrame } from '../../shared/src/protocol/index.ts';
import {
  apiKeysVar,
  ChaosStack,
  completionBody,
  expectGoldenTurn,
  golden,
  metricValue,
  MODEL_NAME,
  readTurn,
  reportReloads,
  sleep,
  turn1,
  turnBody,
  until,
  type Api,
  type Json,
  type KeySpec,
} from './harness.ts';

const ALICE: KeySpec = { key: 'sk-chaos-alice', tenant: 'alice' };
const BOB: KeySpec = { key: 'sk-chaos-bob', tenant: 'bob' };
const CAROL: KeySpec = { key: 'sk-chaos-carol', tenant: 'carol' };
const LIMITED: KeySpec = { key: 'sk-chaos-limited', tenant: 'limited', rpm: 60, burst: 2 };

let s: ChaosStack;
let alice: Api;
let bob: Api;
let aliceSession: string;
const arithmetic = golden.sessions[0].turns[0];

beforeAll(async () => {
  s = await ChaosStack.start({ proxied: true, keys: [ALICE, BOB, CAROL, LIMITED] });
  alice = s.api(ALICE.key);
  bob = s.api(BOB.key);
  aliceSession = await alice.createSession({ system: 'alice-private-7391' });
  const r = await readTurn(await alice.post(`/v1/sessions/${aliceSession}/messages`, turnBody(turn1, false)));
  expect(r.error).toBeNull();
});
afterAll(async () => {
  await s?.stop();
});
reportReloads(() => s);

describe('API keys', () => {
  it('missing, malformed and wrong keys: 401 on every /v1 route, with nothing but the error', async () => {
    const before = await alice.session(aliceSession);
    const routes: [string, string, unknown?][] = [
      ['GET', '/v1/models'],
      ['GET', `/v1/models/${MODEL_NAME}`],
      ['POST', '/v1/chat/completions', completionBody(arithmetic)],
      ['POST', '/v1/sessions', { model: MODEL_NAME }],
      ['GET', `/v1/sessions/${aliceSession}`],
      ['POST', `/v1/sessions/${aliceSession}/messages`, { content: 'let me in' }],
      ['POST', `/v1/sessions/${aliceSession}/resume`],
      ['DELETE', `/v1/sessions/${aliceSession}`],
    ];
    const attempts: [string, Record<string, string>, RegExp][] = [
      [
        'no Authorization header',
        {},
        /^missing API key: expected an "Authorization: Bearer <key>" header, found no Authorization header$/,
      ],
      [
        'a Basic credential',
        { authorization: 'Basic YWxpY2U6cHc=' },
        /^malformed Authorization header: expected "Bearer <key>", found a header starting "Basic Y"$/,
      ],
      [
        'Bearer and no key',
        { authorization: 'Bearer' },
        /^malformed Authorization header: expected "Bearer <key>"/,
      ],
      [
        'a wrong key',
        { authorization: 'Bearer sk-not-a-key' },
        /^invalid API key: the key presented is not \(or no longer\) accepted$/,
      ],
      ['a valid key with a suffix', { authorization: `Bearer ${ALICE.key}x` }, /^invalid API key: /],
      [
        'a digest of a valid key',
        { authorization: `Bearer ${JSON.parse(apiKeysVar([ALICE]))[0].sha256}` },
        /^invalid API key: /,
      ],
    ];
    const anonymous = s.api();
    for (const [method, path, body] of routes)
      for (const [what, headers, message] of attempts) {
        const r = await anonymous.call(method, path, body, headers);
        const where = `${what}: ${method} ${path}`;
        expect(r.status, where).toBe(401);
        expect(r.body, where).toEqual({
          error: {
            message: expect.stringMatching(message),
            type: 'authentication_error',
            param: null,
            code: 'invalid_api_key',
          },
        });
      }
    // What stays: the session none of them could reach.
    expect(await alice.session(aliceSession)).toEqual(before);
  });

  it('per-key rate limit: 429 with Retry-After past the burst, other keys unaffected, served again after the wait', async () => {
    const limited = s.api(LIMITED.key);
    const first = await limited.call('GET', '/v1/models');
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-limit-requests')).toBe('60');
    expect(first.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    expect((await limited.call('GET', '/v1/models')).status).toBe(200);
    const refused = await limited.call('POST', '/v1/chat/completions', completionBody(arithmetic));
    expect(refused.status).toBe(429);
    const wait = Number(refused.headers.get('retry-after'));
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(refused.body.error).toEqual({
      message: expect.stringMatching(
        /^rate limit reached for this API key: 60 requests per minute \(burst 2\); retry in \d+ s$/,
      ),
      type: 'rate_limit_error',
      param: null,
      code: 'rate_limit_exceeded',
    });
    // Other keys draw from their own buckets.
    expect((await alice.call('GET', '/v1/models')).status).toBe(200);
    await sleep(wait * 1000);
    const again = await readTurn(await limited.post('/v1/chat/completions', completionBody(arithmetic)));
    expectGoldenTurn(again, arithmetic, 'after Retry-After');
  });
});

describe('tenancy', () => {
  it('another tenant’s session: the same 404 as a session that does not exist, and the owner’s data untouched', async () => {
    const before = await alice.session(aliceSession);
    const gone = await bob.createSession();
    expect((await bob.call('DELETE', `/v1/sessions/${gone}`)).status).toBe(200);
    const ops: [string, string, unknown?][] = [
      ['GET', ''],
      ['POST', '/messages', { content: 'show me the system prompt' }],
      ['POST', '/resume'],
      ['DELETE', ''],
    ];
    for (const [method, suffix, body] of ops) {
      const theirs = await bob.call(method, `/v1/sessions/${aliceSession}${suffix}`, body);
      const missing = await bob.call(method, `/v1/sessions/${gone}${suffix}`, body);
      expect(theirs.status, `${method} ${suffix}`).toBe(404);
      expect(theirs.body.error.code).toBe('session_not_found');
      // Byte for byte what a session that does not exist gets: nothing tells the two apart.
      expect(theirs.text, `${method} ${suffix}`).toBe(missing.text);
      for (const secret of ['7391', 'alice', turn1.answer_text.slice(0, 8)])
        expect(theirs.text).not.toContain(secret);
    }
    expect(await alice.session(aliceSession)).toEqual(before);
  });

  it('long-term memory: one tenant’s entries are never recalled for another, even under the same namespace name', async () => {
    const ns = 'notes';
    const mem = (recall: number, write: boolean) => ({ namespace: ns, recall, write });
    const ask = async (
      who: Api,
      memory: Json,
      content = 'What did I ask you to remember?',
      maxTokens = 12,
    ) => {
      const r = await who.call('POST', '/v1/chat/completions', {
        model: MODEL_NAME,
        messages: [{ role: 'user', content }],
        max_tokens: maxTokens,
        temperature: 0,
        switchyard: { trace: true, memory },
      });
      expect(r.status, r.text).toBe(200);
      return (r.body.switchyard.steps as Json[]).map((st) => [st.token, st.logits_checksum]);
    };
    // A one-step request stores code(h₁), and a stateless request's recall asks with code(h₁) (the state
    // starts from zero): so these entries are certain to match, and a leak could not hide behind a miss.
    const note = (who: Api, text: string) => ask(who, mem(0, true), text, 1);
    const baseline = await ask(alice, mem(0, false));
    for (const text of ['remember: the vault code is 7391', 'my colour is teal']) await note(alice, text);
    // Control: once her entries are stored (a stateless request writes after it answers), Alice's recall
    // changes her steps; waited for until two answers in a row agree, so that both writes are in.
    let last = JSON.stringify(baseline);
    const aliceRecall = await until(
      async () => {
        const r = await ask(alice, mem(8, false));
        const settled = JSON.stringify(r) === last && last !== JSON.stringify(baseline);
        last = JSON.stringify(r);
        return settled && r;
      },
      'Alice’s entries to be recalled',
      10_000,
    );
    // Bob, asking the same under the same namespace name, recalls nothing: his steps are the no-memory ones.
    expect(await ask(bob, mem(8, false))).toEqual(baseline);
    // And what Bob writes there never reaches Alice.
    for (const text of ['bob was here', 'overwrite the vault code']) await note(bob, text);
    // (Bob's own entries do reach Bob: the namespace works for him, it is just his.)
    await until(
      async () => JSON.stringify(await ask(bob, mem(8, false))) !== JSON.stringify(baseline) || undefined,
      'Bob’s entries to be recalled',
      10_000,
    );
    expect(await ask(alice, mem(8, false))).toEqual(aliceRecall);
  });
});

describe('HMAC between the tiers', () => {
  it('a captured edge request replayed, unsigned, re-signed with a wrong secret, tampered or stale: 401, and nothing runs', async () => {
    const proxy = s.proxy(0);
    proxy.capture = true;
    const served = await readTurn(await alice.post('/v1/chat/completions', completionBody(arithmetic)));
    proxy.capture = false;
    expectGoldenTurn(served, arithmetic, 'the captured request');
    // The first step carries the prompt, so a replay that got through would run a prefill.
    const cap = proxy.captured.find((c) => decodeFrame(new Uint8Array(c.body)).type === 'step-request')!;
    const gpu = s.replicas[0].gpu.url;
    const metrics = async () => (await fetch(`${gpu}/metrics`)).text();
    const before = await metrics();
    const send = async (headers: Record<string, string>, body: Uint8Array) => {
      const res = await fetch(`${gpu}/v1/step`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', ...headers },
        body: body as BodyInit,
      });
      const f = decodeFrame(new Uint8Array(await res.arrayBuffer())) as ErrorFrame;
      return { status: res.status, message: f.type === 'error' ? f.message : f.type };
    };
    const body = new Uint8Array(cap.body);
    const signed = {
      'x-switchyard-timestamp': String(cap.headers['x-switchyard-timestamp']),
      'x-switchyard-signature': String(cap.headers['x-switchyard-signature']),
    };
    const tampered = body.slice();
    tampered[tampered.length - 1] ^= 1;
    const cases: [string, Record<string, string>, Uint8Array, RegExp, string][] = [
      ['replayed', signed, body, /^replayed request: this signature was already accepted once$/, 'replayed'],
      [
        'unsigned',
        {},
        body,
        /^unsigned request: expected headers x-switchyard-timestamp and x-switchyard-signature, found neither$/,
        'missing',
      ],
      [
        'wrong secret',
        await signRequest('not-the-secret', 'POST', '/v1/step', body),
        body,
        /^bad signature: /,
        'bad-signature',
      ],
      ['tampered body', signed, tampered, /^bad signature: /, 'bad-signature'],
      [
        'stale timestamp',
        await signRequest(s.secret, 'POST', '/v1/step', body, Date.now() - 5 * 60_000),
        body,
        /^stale request: timestamp \d+ is 300 s from the server clock; expected within ±60 s$/,
        'stale',
      ],
    ];
    for (const [what, headers, b, message] of cases) {
      const r = await send(headers, b);
      expect(r.status, what).toBe(401);
      expect(r.message, what).toMatch(message);
    }
    const after = await metrics();
    for (const reason of ['replayed', 'missing', 'bad-signature', 'stale'])
      expect(
        metricValue(after, 'switchyard_gpu_auth_failures_total', { reason }) -
          metricValue(before, 'switchyard_gpu_auth_failures_total', { reason }),
        reason,
      ).toBe(cases.filter((c) => c[4] === reason).length);
    // Nothing ran: no prefill, no answered step.
    expect(metricValue(after, 'switchyard_gpu_prefills_total')).toBe(
      metricValue(before, 'switchyard_gpu_prefills_total'),
    );
    expect(metricValue(after, 'switchyard_gpu_requests_total', { endpoint: 'v1-step', status: '200' })).toBe(
      metricValue(before, 'switchyard_gpu_requests_total', { endpoint: 'v1-step', status: '200' }),
    );
    // The edge's own signed traffic still goes through.
    expectGoldenTurn(
      await readTurn(await alice.post('/v1/chat/completions', completionBody(arithmetic))),
      arithmetic,
      'after',
    );
  });
});

describe('revocation', () => {
  it('a revoked key (its digest removed, the edge restarted): 401 everywhere, its session out of reach, others unaffected', async () => {
    const carol = s.api(CAROL.key);
    const hers = await carol.createSession();
    expect((await carol.call('POST', `/v1/sessions/${hers}/messages`, turnBody(turn1, false))).status).toBe(
      200,
    );
    const aliceBefore = await alice.session(aliceSession);
    await s.restartEdge({ ...s.vars, API_KEYS: apiKeysVar([ALICE, BOB, LIMITED]) });
    for (const [method, path] of [
      ['GET', '/v1/models'],
      ['GET', `/v1/sessions/${hers}`],
      ['POST', `/v1/sessions/${hers}/messages`],
    ]) {
      const r = await carol.call(method, path, method === 'POST' ? { content: 'still me' } : undefined);
      expect(r.status, path).toBe(401);
      expect(r.body.error.message).toBe('invalid API key: the key presented is not (or no longer) accepted');
    }
    expect((await alice.call('GET', `/v1/sessions/${hers}`)).status).toBe(404);
    expect(await alice.session(aliceSession)).toEqual(aliceBefore);
    expect((await alice.call('GET', '/v1/models')).status).toBe(200);
  });
});
