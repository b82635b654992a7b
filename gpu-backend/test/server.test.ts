// The real server process over HTTP: golden parity, batching across sessions, the NEED_PROMPT flow, KServe
// V2 in both forms, request signing, and bad input that must not disturb anyone else.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compareGolden,
  decodeFrame,
  encodeDropSession,
  encodeFrame,
  f16BitsToF32,
  f32ToF16Bits,
  GOLDEN_SESSIONS,
  promptDigest,
  ReferenceEdge,
  runGoldenSession,
  WireErrorCode,
  type ErrorFrame,
  type StepResponse,
} from '@switchyard/shared';
import { computeSignature, SIGNATURE_HEADER, signRequest, TIMESTAMP_HEADER } from '../src/auth.ts';
import { GpuExpertClient, GpuTierError, TierHttp } from '../src/client.ts';
import { INFERENCE_HEADER } from '../src/kserve.ts';
import {
  loadGolden,
  maxAbsDiff,
  metricValue,
  referenceExpert,
  sampleH,
  samplePrompt,
  SECRET,
  startServer,
  stepRequest,
  TOL,
  type ServerProcess,
} from './helpers.ts';

const { file, model, golden } = loadGolden();
const H = file.config.controller.hidden;
const OCTET = { 'content-type': 'application/octet-stream' };

let server: ServerProcess;
let http: TierHttp;

beforeAll(async () => {
  server = await startServer(['--secret', SECRET, '--max-wait-ms', '15', '--max-body-bytes', '64KiB']);
  http = new TierHttp(server.url, SECRET);
});
afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

const client = (o: Partial<ConstructorParameters<typeof GpuExpertClient>[0]> = {}) =>
  new GpuExpertClient({ url: server.url, secret: SECRET, ...o });

async function post(path: string, body: Uint8Array | string, headers: Record<string, string> = OCTET) {
  const res = await http.request('POST', path, body, headers);
  return { res, bytes: new Uint8Array(await res.arrayBuffer()) };
}

async function metrics(): Promise<string> {
  return (await fetch(`${server.url}/metrics`)).text();
}

async function expectErrorFrame(
  path: string,
  body: Uint8Array,
  status: number,
  code: number,
  message: RegExp,
): Promise<ErrorFrame> {
  const { res, bytes } = await post(path, body);
  expect(res.status).toBe(status);
  const f = decodeFrame(bytes) as ErrorFrame;
  expect(f.type).toBe('error');
  expect(f.code).toBe(code);
  expect(f.message).toMatch(message);
  return f;
}

/** A request every test can fire afterwards to show the server still serves. */
async function goodStep(session: string): Promise<void> {
  const prompt = samplePrompt(77, 9);
  const h = sampleH(77, H);
  const req = await stepRequest({ sessionId: session, prompt, tokens: prompt, experts: [1], gates: [1], h });
  const { res, bytes } = await post('/v1/step', encodeFrame(req));
  expect(res.status).toBe(200);
  const f = decodeFrame(bytes) as StepResponse;
  expect(maxAbsDiff(f.values, referenceExpert(model, 1, prompt, h))).toBeLessThan(TOL);
}

describe('switchyard-gpu server', () => {
  it('prints a ready line with the setup, and reports ready', async () => {
    expect(server.readyLine).toMatch(/experts 0-3, provider (cpu|cuda),/);
    expect(server.readyLine).toMatch(/auth hmac/);
    if (/provider cpu/.test(server.readyLine))
      expect(server.stderr()).toMatch(/CUDA unavailable .*; using CPU/);
    const r = await fetch(`${server.url}/v2/health/ready`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ ready: true });
    expect((await fetch(`${server.url}/v2/health/live`)).status).toBe(200);
  });

  it('reproduces every golden session with the reference edge', async () => {
    for (const [i, spec] of GOLDEN_SESSIONS.entries()) {
      const run = await runGoldenSession(
        file.config,
        new ReferenceEdge(model),
        client(),
        spec,
        model.initialState(),
      );
      expect(compareGolden(golden.sessions[i], run, golden.tolerances)).toEqual([]);
    }
  });

  it('batches concurrent sessions into shared runs and gives each its own result', async () => {
    const before = await metrics();
    const batchesBefore = metricValue(before, 'switchyard_gpu_batch_size_count');
    const singlesBefore = metricValue(before, 'switchyard_gpu_batch_size_bucket', { le: '1' });
    const delta = (after: string, name: string, labels?: Record<string, string>) =>
      metricValue(after, name, labels) - metricValue(before, name, labels);
    const c = client();
    const sessions = Array.from({ length: 8 }, (_, s) => ({
      id: `batch-${s}`,
      prompt: samplePrompt(s, 6 + 5 * s),
    }));
    const digests = await Promise.all(sessions.map((s) => promptDigest(s.prompt)));
    const STEPS = 4;
    for (let step = 1; step <= STEPS; step++) {
      const results = await Promise.all(
        sessions.map(async (s, i) => {
          const h = sampleH(100 * i + step, H);
          const experts = [step % 4, (step + i) % 4 === step % 4 ? (step + 1) % 4 : (step + i) % 4];
          const r = await c.step(
            {
              sessionId: s.id,
              requestId: `step-${step}`,
              step,
              prompt: { tokens: s.prompt, digest: digests[i] },
              experts,
              gates: [0.7, 0.3],
              h,
            },
            { perExpert: true },
          );
          return { r, h, experts, prompt: s.prompt };
        }),
      );
      for (const { r, h, experts, prompt } of results) {
        expect(r.experts).toEqual(experts);
        experts.forEach((e, k) => {
          const want = referenceExpert(model, e, prompt, h);
          expect(maxAbsDiff(r.values.subarray(k * H, (k + 1) * H), want)).toBeLessThan(TOL);
        });
      }
    }
    const after = await metrics();
    const batches = metricValue(after, 'switchyard_gpu_batch_size_count') - batchesBefore;
    const singles = metricValue(after, 'switchyard_gpu_batch_size_bucket', { le: '1' }) - singlesBefore;
    // 8 sessions × 2 experts × 4 steps = 64 rows; some of them must have shared a run.
    expect(
      metricValue(after, 'switchyard_gpu_batch_size_sum') -
        metricValue(before, 'switchyard_gpu_batch_size_sum'),
    ).toBe(64);
    expect(batches - singles).toBeGreaterThan(0);
    // Prefills (prompts of 6 to 41 tokens, each session's experts on first use) are batched across sessions
    // too, and every one of them went through a batch: the results above matched the reference.
    const prefills = delta(after, 'switchyard_gpu_prefills_total');
    expect(prefills).toBeGreaterThan(0);
    expect(delta(after, 'switchyard_gpu_prefill_batch_size_sum')).toBe(prefills);
    expect(
      delta(after, 'switchyard_gpu_prefill_batch_size_count') -
        delta(after, 'switchyard_gpu_prefill_batch_size_bucket', { le: '1' }),
    ).toBeGreaterThan(0);
    expect(metricValue(after, 'switchyard_gpu_prefill_queued_prompts')).toBe(0);
  });

  it('answers NEED_PROMPT without a cache, steps after the tokens come, and again after a drop', async () => {
    const prompt = samplePrompt(5, 17);
    const h = sampleH(5, H);
    const base = await stepRequest({
      sessionId: 'np-1',
      requestId: 'q1',
      step: 3,
      prompt,
      experts: [2, 0],
      gates: [0.6, 0.4],
      h,
    });
    let { res, bytes } = await post('/v1/step', encodeFrame(base));
    expect(res.status).toBe(200);
    const need = decodeFrame(bytes);
    expect(need).toEqual({
      type: 'need-prompt',
      sessionId: 'np-1',
      requestId: 'q1',
      step: 3,
      digest: base.digest,
    });

    ({ res, bytes } = await post('/v1/step', encodeFrame({ ...base, tokens: prompt })));
    const withTokens = decodeFrame(bytes) as StepResponse;
    expect(withTokens.type).toBe('step-response');
    const y2 = referenceExpert(model, 2, prompt, h);
    const y0 = referenceExpert(model, 0, prompt, h);
    const mix = y2.map((v, j) => 0.6 * v + 0.4 * y0[j]);
    expect(maxAbsDiff(withTokens.values, mix)).toBeLessThan(TOL);
    expect([withTokens.sessionId, withTokens.requestId, withTokens.step]).toEqual(['np-1', 'q1', 3]);

    // Cached now: the same request without tokens is served, here as f16.
    ({ res, bytes } = await post('/v1/step', encodeFrame({ ...base, responseDtype: 'f16', hDtype: 'f16' })));
    const cached = decodeFrame(bytes) as StepResponse;
    expect(cached.dtype).toBe('f16');
    const h16 = h.map((x) => f16BitsToF32(f32ToF16Bits(x)));
    const y2h = referenceExpert(model, 2, prompt, h16);
    const y0h = referenceExpert(model, 0, prompt, h16);
    // f16 output: relative error below 2^-11 on each value.
    y2h.forEach((v, j) => {
      const want = 0.6 * v + 0.4 * y0h[j];
      expect(Math.abs(cached.values[j] - want)).toBeLessThan(TOL + Math.abs(want) * 2 ** -10);
    });

    ({ res } = await post('/v1/drop', encodeDropSession({ sessionId: 'np-1' })));
    expect(res.status).toBe(204);
    expect(res.headers.get('x-switchyard-dropped')).toBe('2');
    ({ bytes } = await post('/v1/step', encodeFrame(base)));
    expect(decodeFrame(bytes).type).toBe('need-prompt');
    // Dropping an unknown session is not an error.
    ({ res } = await post('/v1/drop', encodeDropSession({ sessionId: 'never-seen' })));
    expect(res.status).toBe(204);
  });

  it('refuses tokens that do not hash to the digest', async () => {
    const prompt = samplePrompt(6, 8);
    const req = await stepRequest({
      sessionId: 'np-2',
      prompt,
      tokens: [...prompt.slice(0, -1), 7],
      experts: [1],
      h: sampleH(6, H),
    });
    const f = await expectErrorFrame(
      '/v1/step',
      encodeFrame(req),
      400,
      WireErrorCode.InvalidRequest,
      /digest mismatch/,
    );
    expect(f.requestId).toBe('r');
  });

  describe('KServe V2', () => {
    const rows = [samplePrompt(11, 5), samplePrompt(12, 12)];
    const P = 12;
    const padded = rows.flatMap((p) => [...p, ...Array(P - p.length).fill(0)]);
    const hs = [sampleH(11, H), sampleH(12, H)];
    const want = rows.map((p, b) => referenceExpert(model, 3, p, hs[b]));
    const inputs = [
      { name: 'tokens', datatype: 'INT64', shape: [2, P], data: padded },
      { name: 'prompt_len', datatype: 'INT64', shape: [2], data: rows.map((r) => r.length) },
      { name: 'h', datatype: 'FP32', shape: [2, H], data: hs.flatMap((h) => Array.from(h)) },
    ];
    const infer = (body: string | Uint8Array, headers: Record<string, string>, model = 'expert-3') =>
      http.request('POST', `/v2/models/${model}/infer`, body, headers);

    it('serves model metadata and readiness', async () => {
      const meta = await (await http.request('GET', '/v2/models/expert-3')).json();
      expect(meta.name).toBe('expert-3');
      expect(meta.inputs.map((i: { name: string }) => i.name)).toEqual(['tokens', 'prompt_len', 'h']);
      expect(meta.outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [-1, H] }]);
      const ready = await fetch(`${server.url}/v2/models/expert-3/ready`);
      expect(await ready.json()).toEqual({ name: 'expert-3', ready: true });
    });

    it('infers in the JSON form', async () => {
      const res = await infer(JSON.stringify({ id: 'j1', inputs }), { 'content-type': 'application/json' });
      expect(res.status).toBe(200);
      const out = await res.json();
      expect(out.id).toBe('j1');
      expect(out.outputs[0].shape).toEqual([2, H]);
      const y = Float32Array.from(out.outputs[0].data as number[]);
      want.forEach((w, b) => expect(maxAbsDiff(y.subarray(b * H, (b + 1) * H), w)).toBeLessThan(TOL));
    });

    it('infers with the binary tensor extension, in and out', async () => {
      const tok = new BigInt64Array(padded.map(BigInt));
      const len = new BigInt64Array(rows.map((r) => BigInt(r.length)));
      const h = new Float32Array(2 * H);
      hs.forEach((x, b) => h.set(x, b * H));
      const head = {
        inputs: inputs.map((t, i) => ({
          name: t.name,
          datatype: t.datatype,
          shape: t.shape,
          parameters: { binary_data_size: [tok, len, h][i].byteLength },
        })),
        outputs: [{ name: 'y', parameters: { binary_data: true } }],
      };
      const json = new TextEncoder().encode(JSON.stringify(head));
      const parts = [json, ...[tok, len, h].map((a) => new Uint8Array(a.buffer))];
      const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      parts.reduce((at, p) => (body.set(p, at), at + p.length), 0);
      const res = await infer(body, { ...OCTET, [INFERENCE_HEADER]: String(json.length) });
      expect(res.status).toBe(200);
      const n = Number(res.headers.get(INFERENCE_HEADER));
      const bytes = new Uint8Array(await res.arrayBuffer());
      const outHead = JSON.parse(new TextDecoder().decode(bytes.subarray(0, n)));
      expect(outHead.outputs[0].parameters.binary_data_size).toBe(2 * H * 4);
      const y = new Float32Array(bytes.slice(n).buffer);
      want.forEach((w, b) => expect(maxAbsDiff(y.subarray(b * H, (b + 1) * H), w)).toBeLessThan(TOL));
    });

    it.each([
      [
        'a wrong shape',
        { ...inputs[2], shape: [2, H + 1], data: Array(2 * (H + 1)).fill(0) },
        2,
        /input "h": expected shape \[2, 64\]/,
      ],
      [
        'a wrong datatype',
        { ...inputs[0], datatype: 'FP32' },
        0,
        /input "tokens": expected datatype INT64, found "FP32"/,
      ],
      ['too few values', { ...inputs[1], data: [5] }, 1, /input "prompt_len": expected 2 values/],
      [
        'a prompt length past the width',
        { ...inputs[1], data: [5, 13] },
        1,
        /row 1 expected a length in 1\.\.12/,
      ],
      [
        'a token outside the vocab',
        { ...inputs[0], data: [...padded.slice(0, -1), 999] },
        0,
        /token id in \[0, 260\)/,
      ],
    ])('answers 400 for %s', async (_what, replacement, at, message) => {
      const bad = inputs.map((t, i) => (i === at ? replacement : t));
      const res = await infer(JSON.stringify({ inputs: bad }), { 'content-type': 'application/json' });
      expect(res.status).toBe(400);
      expect((await res.json()).error).toMatch(message);
    });

    it('answers 404 for unknown models and 400 for bad JSON', async () => {
      for (const name of ['expert-9', 'nope']) {
        const res = await infer(JSON.stringify({ inputs }), { 'content-type': 'application/json' }, name);
        expect(res.status).toBe(404);
        expect((await res.json()).error).toMatch(
          /not found: this server serves expert-0, expert-1, expert-2, expert-3/,
        );
      }
      expect((await http.request('GET', '/v2/models/expert-7')).status).toBe(404);
      const res = await infer('{"inputs": [', { 'content-type': 'application/json' });
      expect(res.status).toBe(400);
      expect((await res.json()).error).toMatch(/invalid JSON/);
      await goodStep('after-kserve');
    });
  });

  describe('auth', () => {
    const body = encodeDropSession({ sessionId: 'auth-probe' });
    const send = (headers: Record<string, string>) =>
      fetch(`${server.url}/v1/drop`, {
        method: 'POST',
        headers: { ...OCTET, ...headers },
        body: body as Uint8Array<ArrayBuffer>,
      });

    it('refuses unsigned requests', async () => {
      const res = await send({});
      expect(res.status).toBe(401);
      const f = decodeFrame(new Uint8Array(await res.arrayBuffer())) as ErrorFrame;
      expect(f.message).toMatch(/unsigned request/);
    });

    it('refuses a wrong secret, a tampered body and a stale timestamp', async () => {
      expect((await send(await signRequest('wrong-secret', 'POST', '/v1/drop', body))).status).toBe(401);
      const other = encodeDropSession({ sessionId: 'other' });
      expect((await send(await signRequest(SECRET, 'POST', '/v1/drop', other))).status).toBe(401);
      expect((await send(await signRequest(SECRET, 'POST', '/v1/step', body))).status).toBe(401);
      const stale = await send(await signRequest(SECRET, 'POST', '/v1/drop', body, Date.now() - 120_000));
      expect(stale.status).toBe(401);
      expect(decodeFrame(new Uint8Array(await stale.arrayBuffer()))).toMatchObject({
        message: /stale request/,
      });
      const ts = String(Date.now());
      const garbled = { [TIMESTAMP_HEADER]: ts, [SIGNATURE_HEADER]: 'v1=xyz' };
      expect((await send(garbled)).status).toBe(401);
    });

    it('accepts a signed request once and refuses its replay', async () => {
      const headers = await signRequest(SECRET, 'POST', '/v1/drop', body);
      expect((await send(headers)).status).toBe(204);
      const again = await send(headers);
      expect(again.status).toBe(401);
      expect(decodeFrame(new Uint8Array(await again.arrayBuffer()))).toMatchObject({ message: /replayed/ });
    });

    it('leaves health and metrics open, and counts refusals by reason', async () => {
      const text = await metrics();
      expect(metricValue(text, 'switchyard_gpu_auth_failures_total', { reason: 'replayed' })).toBeGreaterThan(
        0,
      );
      expect(metricValue(text, 'switchyard_gpu_auth_failures_total', { reason: 'missing' })).toBeGreaterThan(
        0,
      );
      expect(metricValue(text, 'switchyard_gpu_auth_failures_total', { reason: 'stale' })).toBeGreaterThan(0);
      expect(
        metricValue(text, 'switchyard_gpu_auth_failures_total', { reason: 'bad-signature' }),
      ).toBeGreaterThan(0);
      // A signature computed over the exact parts verifies: the scheme is what the docs say.
      const ts = String(Date.now());
      const sig = await computeSignature(SECRET, ts, 'GET', '/v2/models/expert-0', '');
      const res = await fetch(`${server.url}/v2/models/expert-0`, {
        headers: { [TIMESTAMP_HEADER]: ts, [SIGNATURE_HEADER]: sig },
      });
      expect(res.status).toBe(200);
    });
  });

  describe('bad input', () => {
    it('answers 400 BadFrame for truncated frames, wrong magic, wrong H and unknown experts, then serves', async () => {
      const prompt = samplePrompt(3, 6);
      const good = encodeFrame(
        await stepRequest({
          sessionId: 'bad',
          requestId: 'rq-7',
          prompt,
          tokens: prompt,
          experts: [1],
          h: sampleH(3, H),
        }),
      );
      const truncated = await expectErrorFrame(
        '/v1/step',
        good.subarray(0, good.length - 5),
        400,
        WireErrorCode.BadFrame,
        /truncated/,
      );
      expect(truncated.requestId).toBe('rq-7');
      const magic = good.slice();
      magic[0] = 0x58;
      await expectErrorFrame('/v1/step', magic, 400, WireErrorCode.BadFrame, /expected magic "SWYD"/);
      const wrongH = encodeFrame(await stepRequest({ prompt, experts: [1], h: new Float32Array(H + 1) }));
      await expectErrorFrame('/v1/step', wrongH, 400, WireErrorCode.BadFrame, /H/);
      const unknown = encodeFrame(await stepRequest({ prompt, experts: [4], h: new Float32Array(H) }));
      await expectErrorFrame('/v1/step', unknown, 400, WireErrorCode.BadFrame, /expert/);
      const drop = encodeDropSession({ sessionId: 'x' });
      await expectErrorFrame(
        '/v1/step',
        drop,
        400,
        WireErrorCode.BadFrame,
        /expected a STEP_REQUEST.*found DROP_SESSION/,
      );
      await expectErrorFrame(
        '/v1/drop',
        good,
        400,
        WireErrorCode.BadFrame,
        /expected a DROP_SESSION.*found STEP_REQUEST/,
      );
      await expectErrorFrame(
        '/v1/step',
        new TextEncoder().encode('{"hello": 1}'),
        400,
        WireErrorCode.BadFrame,
        /magic/,
      );
      await goodStep('after-bad-frames');
    });

    it('answers 413 for a body past --max-body-bytes, then serves', async () => {
      const prompt = samplePrompt(4, 4);
      const req = await stepRequest({ prompt, experts: [1], h: new Float32Array(H) });
      const big = new Uint8Array(70 * 1024);
      big.set(encodeFrame(req));
      await expectErrorFrame(
        '/v1/step',
        big,
        413,
        WireErrorCode.BadFrame,
        /too large: expected at most 65536 bytes, found 71680/,
      );
      await goodStep('after-413');
    });

    it('answers 404 for unknown paths and 405 for wrong methods', async () => {
      const nf = await fetch(`${server.url}/v1/nothing`);
      expect(nf.status).toBe(404);
      expect((await nf.json()).error).toMatch(/no such endpoint/);
      const na = await fetch(`${server.url}/v1/step`);
      expect(na.status).toBe(405);
      expect(na.headers.get('allow')).toBe('POST');
    });

    it('reports tier errors to the client as GpuTierError with the wire code', async () => {
      const c = new GpuExpertClient({ url: server.url, secret: 'not-the-secret' });
      const prompt = samplePrompt(8, 4);
      const call = {
        sessionId: 'e',
        requestId: 'e1',
        step: 1,
        prompt: { tokens: prompt, digest: await promptDigest(prompt) },
        experts: [0],
        gates: [1],
        h: new Float32Array(H),
      };
      const err = await c.runExperts(call).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GpuTierError);
      expect((err as GpuTierError).status).toBe(401);
    });
  });

  it('exposes Prometheus metrics: requests, batch sizes, queue depth, cache, per-expert latency', async () => {
    const text = await metrics();
    expect(
      metricValue(text, 'switchyard_gpu_requests_total', { endpoint: 'v1-step', status: '200' }),
    ).toBeGreaterThan(50);
    expect(
      metricValue(text, 'switchyard_gpu_requests_total', { endpoint: 'v1-step', status: '400' }),
    ).toBeGreaterThan(0);
    expect(metricValue(text, 'switchyard_gpu_cache_hits_total')).toBeGreaterThan(0);
    expect(metricValue(text, 'switchyard_gpu_cache_bytes')).toBeGreaterThan(0);
    expect(metricValue(text, 'switchyard_gpu_queue_depth')).toBe(0);
    expect(
      metricValue(text, 'switchyard_gpu_expert_latency_seconds_count', { expert: '2', phase: 'step' }),
    ).toBeGreaterThan(0);
    expect(text).toMatch(/# TYPE switchyard_gpu_batch_size histogram/);
  });
});
