// A shard that serves experts 0-1, configured through environment variables, with a tiny queue limit and a
// long batching window: experts it does not host are refused, and past the queue limit it answers 429.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeFrame,
  encodeFrame,
  promptDigest,
  WireErrorCode,
  type ErrorFrame,
  type StepResponse,
} from '@switchyard/shared';
import { GpuExpertClient, TierHttp } from '../src/client.ts';
import {
  loadGolden,
  maxAbsDiff,
  metricValue,
  referenceExpert,
  sampleH,
  samplePrompt,
  startServer,
  stepRequest,
  TOL,
  type ServerProcess,
} from './helpers.ts';

const { file, model } = loadGolden();
const H = file.config.controller.hidden;
const OCTET = { 'content-type': 'application/octet-stream' };
let server: ServerProcess;
let http: TierHttp;

beforeAll(async () => {
  server = await startServer([], {
    SWITCHYARD_GPU_EXPERTS: '0-1',
    SWITCHYARD_GPU_QUEUE_LIMIT: '3',
    SWITCHYARD_GPU_MAX_WAIT_MS: '1500',
    SWITCHYARD_GPU_MAX_PREFILL_TOKENS: '512',
    SWITCHYARD_GPU_INSECURE_NO_AUTH: '1',
  });
  http = new TierHttp(server.url);
});
afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

async function queueDepth(): Promise<number> {
  return metricValue(await (await fetch(`${server.url}/metrics`)).text(), 'switchyard_gpu_queue_depth');
}

async function waitForDepth(n: number): Promise<void> {
  for (let i = 0; i < 200 && (await queueDepth()) < n; i++) await new Promise((r) => setTimeout(r, 10));
  expect(await queueDepth()).toBe(n);
}

describe('an expert shard with a queue limit', () => {
  it('takes its settings from SWITCHYARD_GPU_* variables', () => {
    expect(server.readyLine).toMatch(
      /experts 0-1,.*max wait 1500 ms, prefill batch 512 tokens, queue limit 3,/,
    );
  });

  it('refuses experts it does not host with 400 InvalidRequest, on both protocols', async () => {
    const prompt = samplePrompt(1, 5);
    const req = await stepRequest({
      prompt,
      tokens: prompt,
      experts: [1, 2, 3],
      gates: [0.5, 0.3, 0.2],
      h: sampleH(1, H),
    });
    const res = await http.request('POST', '/v1/step', encodeFrame(req), OCTET);
    expect(res.status).toBe(400);
    const f = decodeFrame(new Uint8Array(await res.arrayBuffer())) as ErrorFrame;
    expect(f.code).toBe(WireErrorCode.InvalidRequest);
    expect(f.message).toBe('experts [2, 3] not served here: this server hosts experts [0, 1]');
    const k = await http.request('GET', '/v2/models/expert-2');
    expect(k.status).toBe(404);
  });

  it('answers 429 with Retry-After past the queue limit, and serves the admitted request', async () => {
    const prompt = samplePrompt(2, 7);
    const h = sampleH(2, H);
    const admitted = stepRequest({
      sessionId: 'q-a',
      prompt,
      tokens: prompt,
      experts: [0, 1],
      gates: [0.5, 0.5],
      h,
    }).then((req) => http.request('POST', '/v1/step', encodeFrame(req), OCTET));
    await waitForDepth(2);
    const over = await stepRequest({ sessionId: 'q-b', prompt, tokens: prompt, experts: [0, 1], h });
    const refused = await http.request('POST', '/v1/step', encodeFrame(over), OCTET);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    const f = decodeFrame(new Uint8Array(await refused.arrayBuffer())) as ErrorFrame;
    expect(f.code).toBe(WireErrorCode.Overloaded);
    expect(f.message).toMatch(/2 rows are queued and this request adds 2; the queue limit is 3/);

    const res = await admitted;
    expect(res.status).toBe(200);
    const r = decodeFrame(new Uint8Array(await res.arrayBuffer())) as StepResponse;
    const y0 = referenceExpert(model, 0, prompt, h);
    const y1 = referenceExpert(model, 1, prompt, h);
    expect(
      maxAbsDiff(
        r.values,
        y0.map((v, j) => 0.5 * v + 0.5 * y1[j]),
      ),
    ).toBeLessThan(TOL);
    expect(await queueDepth()).toBe(0);
  });

  it('lets the client retry after a 429 until it is admitted', async () => {
    const prompt = samplePrompt(3, 9);
    const h = sampleH(3, H);
    const blocker = stepRequest({ sessionId: 'q-c', prompt, tokens: prompt, experts: [0, 1], h }).then(
      (req) => http.request('POST', '/v1/step', encodeFrame(req), OCTET),
    );
    await waitForDepth(2);
    const client = new GpuExpertClient({ url: server.url, maxRetries: 5 });
    const { mixture } = await client.runExperts({
      sessionId: 'q-d',
      requestId: 'r',
      step: 1,
      prompt: { tokens: prompt, digest: await promptDigest(prompt) },
      experts: [1, 0],
      gates: [0.25, 0.75],
      h,
    });
    expect(client.stats.retries).toBeGreaterThan(0);
    const y0 = referenceExpert(model, 0, prompt, h);
    const y1 = referenceExpert(model, 1, prompt, h);
    expect(
      maxAbsDiff(
        mixture,
        y1.map((v, j) => 0.25 * v + 0.75 * y0[j]),
      ),
    ).toBeLessThan(TOL);
    expect((await blocker).status).toBe(200);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(
      metricValue(text, 'switchyard_gpu_requests_total', { endpoint: 'v1-step', status: '429' }),
    ).toBeGreaterThanOrEqual(2);
  });
});
