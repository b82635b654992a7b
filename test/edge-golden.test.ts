// The whole stack on loopback: the edge Worker (wrangler dev, default compute backend) in front of two
// replicas of the real GPU tier (switchyard-gpu, HMAC-signed). Greedy generation through the public API must
// give exactly the golden tokens; the openai client must work unchanged; a replica killed mid-conversation
// must not change the answer.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rendezvousOrder } from '../edge/src/experts/rendezvous.ts';
import { golden, MODEL_NAME, sha256Hex, startEdge, startGpuTier, type Proc } from './edge-harness.ts';

const KEY = 'sk-integration-test';
const SECRET = 'integration-hmac-secret';
const TOL = golden.tolerances;

let gpus: Proc[] = [];
let edge: Proc & { cleanup(): void };
let client: OpenAI;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

beforeAll(async () => {
  gpus = await Promise.all([startGpuTier(['--secret', SECRET]), startGpuTier(['--secret', SECRET])]);
  edge = await startEdge({
    API_KEYS: sha256Hex(KEY),
    EXPERT_SHARDS: JSON.stringify([{ replicas: gpus.map((g) => g.url), experts: '0-3' }]),
    EXPERT_HMAC_SECRET: SECRET,
    EXPERT_TIMEOUT_MS: '5000',
    RATE_LIMIT_RPM: '0',
  });
  client = new OpenAI({ baseURL: `${edge.url}/v1`, apiKey: KEY, maxRetries: 0 });
}, 180_000);

afterAll(async () => {
  await Promise.all([edge?.stop(), ...gpus.map((g) => g.stop())]);
  edge?.cleanup();
});

function post(path: string, body: unknown): Promise<Response> {
  return fetch(`${edge.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

const noMemory = { recall: 0, write: false };
/** The `switchyard` extension field: not in the openai client's types, and sent by it as given. */
const extension = { switchyard: { memory: noMemory } } as object;

/** POST /v1/step requests a GPU-tier process has answered, from its Prometheus metrics. */
async function stepRequests(gpu: Proc): Promise<number> {
  const text = await (await fetch(`${gpu.url}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n'))
    if (line.startsWith('switchyard_gpu_requests_total{') && line.includes('"v1-step"'))
      n += Number(line.split(' ').at(-1));
  return n;
}

function expectGoldenSteps(
  steps: Json[],
  g: (typeof golden.sessions)[number]['turns'][number],
  where: string,
) {
  expect(
    steps.map((s) => s.token),
    `${where}: tokens`,
  ).toEqual(g.tokens);
  expect(
    steps.map((s) => s.experts),
    `${where}: experts`,
  ).toEqual(g.steps.map((s) => s.experts));
  steps.forEach((s, i) => {
    s.gates.forEach((gate: number, k: number) =>
      expect(Math.abs(gate - g.steps[i].gates[k])).toBeLessThanOrEqual(TOL.gate),
    );
    const want = g.steps[i].logits_checksum;
    expect(Math.abs(s.logits_checksum - want)).toBeLessThanOrEqual(
      TOL.logits_checksum * Math.max(1, Math.abs(want)),
    );
  });
}

describe('edge + GPU tier on loopback', () => {
  it('reports ready with both replicas', async () => {
    const res = await fetch(`${edge.url}/health/ready`);
    const body = (await res.json()) as Json;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.shards[0].replicas.map((r: Json) => r.ready)).toEqual([true, true]);
  });

  for (const s of golden.sessions.filter((x) => x.turns.length === 1))
    it(`stateless /v1/chat/completions reproduces the golden "${s.name}" case`, async () => {
      const g = s.turns[0];
      const res = await post('/v1/chat/completions', {
        model: MODEL_NAME,
        messages: g.messages,
        max_tokens: g.max_tokens,
        temperature: 0,
        switchyard: { trace: true, memory: noMemory },
      });
      const body = (await res.json()) as Json;
      expect(res.status, JSON.stringify(body)).toBe(200);
      expectGoldenSteps(body.switchyard.steps, g, s.name);
      expect(body.choices[0].message.content).toBe(g.answer_text);
      expect(body.choices[0].message.reasoning_content).toBe(g.reasoning_text);
      expect(body.choices[0].finish_reason).toBe(g.finish);
    });

  it('the sessions API reproduces the multi-turn golden case', async () => {
    const s = golden.sessions.find((x) => x.turns.length > 1)!;
    const created = (await (
      await post('/v1/sessions', { model: MODEL_NAME, switchyard: { memory: noMemory } })
    ).json()) as Json;
    for (const [t, g] of s.turns.entries()) {
      const res = await post(`/v1/sessions/${created.id}/messages`, {
        content: g.messages.at(-1)!.content,
        max_tokens: g.max_tokens,
        temperature: 0,
        switchyard: { trace: true },
      });
      const body = (await res.json()) as Json;
      expect(res.status, JSON.stringify(body)).toBe(200);
      expectGoldenSteps(body.switchyard.steps, g, `${s.name} turn ${t + 1}`);
      expect(body.usage.prompt_tokens).toBe(g.prompt_tokens.length);
    }
  });

  it('works with the openai client unchanged: a plain completion', async () => {
    const g = golden.sessions[0].turns[0];
    const r = await client.chat.completions.create({
      model: MODEL_NAME,
      messages: g.messages as OpenAI.ChatCompletionMessageParam[],
      max_tokens: g.max_tokens,
      temperature: 0,
      ...extension,
    });
    expect(r.choices[0].message.content).toBe(g.answer_text);
    expect((r.choices[0].message as unknown as Json).reasoning_content).toBe(g.reasoning_text);
    expect(r.choices[0].finish_reason).toBe(g.finish);
    expect(r.usage?.completion_tokens).toBe(g.tokens.length);
  });

  it('works with the openai client unchanged: streaming', async () => {
    const g = golden.sessions[1].turns[0];
    const stream = await client.chat.completions.create({
      model: MODEL_NAME,
      messages: g.messages as OpenAI.ChatCompletionMessageParam[],
      max_tokens: g.max_tokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
      ...extension,
    });
    let content = '';
    let reasoning = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (c) {
        content += c.delta.content ?? '';
        reasoning += (c.delta as Json).reasoning_content ?? '';
        finish = c.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(content).toBe(g.answer_text);
    expect(reasoning).toBe(g.reasoning_text);
    expect(finish).toBe(g.finish);
    expect(usage?.completion_tokens).toBe(g.tokens.length);
  });

  it('surfaces errors as the openai client’s typed errors', async () => {
    const err = await client.chat.completions
      .create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
    const bad = new OpenAI({ baseURL: `${edge.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    await expect(bad.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL_NAME]);
  });

  it('fails over when the replica holding a session is killed mid-conversation', async () => {
    const s = golden.sessions.find((x) => x.turns.length > 1)!;
    const created = (await (
      await post('/v1/sessions', { model: MODEL_NAME, switchyard: { memory: noMemory } })
    ).json()) as Json;
    const turn = (t: number) =>
      post(`/v1/sessions/${created.id}/messages`, {
        content: s.turns[t].messages.at(-1)!.content,
        max_tokens: s.turns[t].max_tokens,
        temperature: 0,
        switchyard: { trace: true },
      });
    // The session's replica is the first in its rendezvous order: all of turn 1 goes there.
    const primary = rendezvousOrder(
      gpus.map((g) => g.url),
      created.id,
    )[0];
    const victim = gpus.find((g) => g.url === primary)!;
    const other = gpus.find((g) => g !== victim)!;
    const before = await Promise.all([stepRequests(victim), stepRequests(other)]);
    const first = (await (await turn(0)).json()) as Json;
    expectGoldenSteps(first.switchyard.steps, s.turns[0], 'before the kill');
    const after = await Promise.all([stepRequests(victim), stepRequests(other)]);
    expect([after[0] - before[0], after[1] - before[1]]).toEqual([s.turns[0].tokens.length, 0]);
    // Now kill that process outright.
    await victim.kill();
    const res = await turn(1);
    const second = (await res.json()) as Json;
    expect(res.status, JSON.stringify(second)).toBe(200);
    expectGoldenSteps(second.switchyard.steps, s.turns[1], 'after the kill');
    const ready = (await (await fetch(`${edge.url}/health/ready`)).json()) as Json;
    expect(ready.status).toBe('ready');
    expect(ready.shards[0].replicas.filter((r: Json) => !r.ready).length).toBe(1);
  });
});
