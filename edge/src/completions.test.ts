import { describe, it, expect, beforeEach } from 'vitest';
import {
  api,
  golden,
  MODEL,
  sseEvents,
  unavailable,
  useTestExperts,
  type Json,
  type TestExperts,
} from './test-utils.ts';

let experts: TestExperts;
beforeEach(() => {
  experts = useTestExperts();
});

const stateless = golden.sessions.filter((s) => s.turns.length === 1);

function goldenRequest(turn: (typeof golden.sessions)[number]['turns'][number], extra: Json = {}): Json {
  return {
    model: MODEL,
    messages: turn.messages,
    max_tokens: turn.max_tokens,
    temperature: 0,
    switchyard: { trace: true, memory: { recall: 0, write: false } },
    ...extra,
  };
}

describe('POST /v1/chat/completions, not streamed', () => {
  it.each(stateless.map((s) => [s.name, s] as const))(
    '%s: greedy tokens, routing and text equal the golden case',
    async (_, s) => {
      const g = s.turns[0];
      const res = await api('/v1/chat/completions', { json: goldenRequest(g) });
      const body = (await res.json()) as Json;
      expect(res.status, JSON.stringify(body)).toBe(200);
      expect(res.headers.get('content-type')).toContain('application/json');
      const steps = body.switchyard.steps as Json[];
      expect(steps.map((x) => x.token)).toEqual(g.tokens);
      expect(steps.map((x) => x.experts)).toEqual(g.steps.map((x) => x.experts));
      steps.forEach((x, i) => {
        g.steps[i].gates.forEach((gate, k) => expect(x.gates[k]).toBeCloseTo(gate, 6));
        expect(x.phase).toBe(g.steps[i].phase);
        expect(x.index).toBe(i + 1);
      });
      expect(body.object).toBe('chat.completion');
      expect(body.model).toBe(MODEL);
      expect(body.id).toMatch(/^chatcmpl-/);
      const choice = body.choices[0];
      expect(choice.message.role).toBe('assistant');
      expect(choice.message.reasoning_content).toBe(g.reasoning_text);
      expect(choice.message.content).toBe(g.answer_text);
      expect(choice.finish_reason).toBe(g.finish);
      const think = g.steps.filter((x) => x.phase === 'think').length;
      expect(body.usage).toEqual({
        prompt_tokens: g.prompt_tokens.length,
        completion_tokens: g.tokens.length,
        total_tokens: g.prompt_tokens.length + g.tokens.length,
        completion_tokens_details: { reasoning_tokens: think },
      });
    },
  );

  it('sends the prompt tokens on step 1 only, and forgets the request on the expert tier afterwards', async () => {
    const g = stateless[0].turns[0];
    await api('/v1/chat/completions', { json: goldenRequest(g) });
    expect(experts.calls.length).toBe(g.tokens.length);
    const sessionIds = new Set(experts.calls.map((c) => c.sessionId));
    expect(sessionIds.size).toBe(1);
    expect(experts.calls.map((c) => c.step)).toEqual(g.tokens.map((_, i) => i + 1));
    expect(Array.from(experts.calls[0].prompt.tokens)).toEqual(g.prompt_tokens);
    // dropSession runs after the response (waitUntil); give it a turn of the event loop.
    await new Promise((r) => setTimeout(r, 20));
    expect(experts.dropped).toEqual([...sessionIds]);
  });

  it('leaves the trace out unless asked for', async () => {
    const g = stateless[0].turns[0];
    const req = goldenRequest(g, { switchyard: { memory: { recall: 0, write: false } } });
    const body = (await (await api('/v1/chat/completions', { json: req })).json()) as Json;
    expect(body.switchyard.steps).toBeUndefined();
    expect(body.switchyard.seed).toBe(0);
  });

  it('cuts the answer before a stop sequence and reports finish_reason "stop"', async () => {
    const g = stateless[0].turns[0];
    const stopAt = g.answer_text.length >= 4 ? g.answer_text.slice(2, 4) : null;
    expect(stopAt).not.toBeNull();
    const body = (await (
      await api('/v1/chat/completions', { json: goldenRequest(g, { stop: [stopAt] }) })
    ).json()) as Json;
    expect(body.choices[0].finish_reason).toBe('stop');
    expect(body.choices[0].message.content).toBe(g.answer_text.slice(0, g.answer_text.indexOf(stopAt!)));
    expect(body.usage.completion_tokens).toBeLessThan(g.tokens.length);
  });

  it('samples reproducibly: the same seed gives the same answer, and the seed is reported', async () => {
    const g = stateless[1].turns[0];
    const req = goldenRequest(g, { temperature: 1.3, top_p: 0.9, seed: 1234 });
    const a = (await (await api('/v1/chat/completions', { json: req })).json()) as Json;
    const b = (await (await api('/v1/chat/completions', { json: req })).json()) as Json;
    expect(a.switchyard.steps.map((s: Json) => s.token)).toEqual(
      b.switchyard.steps.map((s: Json) => s.token),
    );
    expect(a.switchyard.seed).toBe(1234);
    const unseeded = (await (
      await api('/v1/chat/completions', { json: { ...req, seed: undefined } })
    ).json()) as Json;
    expect(Number.isInteger(unseeded.switchyard.seed)).toBe(true);
  });

  it('answers 503 with Retry-After in the OpenAI error shape when the expert tier fails', async () => {
    experts.failWhen = () => unavailable();
    const res = await api('/v1/chat/completions', { json: goldenRequest(stateless[0].turns[0]) });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
    expect(await res.json()).toEqual({
      error: {
        message: 'expert tier unavailable: injected failure',
        type: 'server_error',
        param: null,
        code: 'expert_tier_unavailable',
      },
    });
  });
});

describe('POST /v1/chat/completions, streamed (SSE)', () => {
  it('streams role, reasoning_content deltas, content deltas, the finish chunk, usage and [DONE]', async () => {
    const g = stateless[0].turns[0];
    const res = await api('/v1/chat/completions', {
      json: goldenRequest(g, { stream: true, stream_options: { include_usage: true } }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const events = await sseEvents(res);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as Json[];
    const id = chunks[0].id;
    for (const c of chunks) {
      expect(c.object).toBe('chat.completion.chunk');
      expect(c.id).toBe(id);
      expect(c.model).toBe(MODEL);
    }
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage.completion_tokens).toBe(g.tokens.length);
    const finish = chunks.at(-2)!;
    expect(finish.choices[0].finish_reason).toBe(g.finish);
    expect(finish.choices[0].delta).toEqual({});
    const deltas = chunks.slice(1, -2).map((c) => c.choices[0].delta);
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
    const reasoning = deltas.map((d) => d.reasoning_content ?? '').join('');
    const content = deltas.map((d) => d.content ?? '').join('');
    expect(reasoning).toBe(g.reasoning_text);
    expect(content).toBe(g.answer_text);
    // Reasoning comes first: no reasoning delta after the first content delta.
    const firstContent = deltas.findIndex((d) => d.content);
    expect(deltas.slice(firstContent).some((d) => d.reasoning_content)).toBe(false);
    // With the trace on, every step arrives in its own chunk, in order.
    const traced = chunks.flatMap((c) => c.switchyard?.steps ?? []);
    expect(traced.map((s: Json) => s.token)).toEqual(g.tokens);
  });

  it('never sends text that a stop sequence later cuts', async () => {
    const g = stateless[0].turns[0];
    const stopAt = g.answer_text.slice(3, 5);
    const events = (await sseEvents(
      await api('/v1/chat/completions', { json: goldenRequest(g, { stream: true, stop: stopAt }) }),
    )) as Json[];
    const content = events
      .slice(0, -1)
      .map((c) => c.choices[0]?.delta?.content ?? '')
      .join('');
    expect(content).toBe(g.answer_text.slice(0, g.answer_text.indexOf(stopAt)));
    expect(events.at(-2)!.choices[0].finish_reason).toBe('stop');
  });

  it('answers 503 before streaming when the first step fails', async () => {
    experts.failWhen = () => unavailable();
    const res = await api('/v1/chat/completions', {
      json: goldenRequest(stateless[0].turns[0], { stream: true }),
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as Json).error.code).toBe('expert_tier_unavailable');
  });

  it('ends the stream with an error event, and no [DONE], when a later step fails', async () => {
    experts.failWhen = (call) => (call.step === 4 ? unavailable() : null);
    const res = await api('/v1/chat/completions', {
      json: goldenRequest(stateless[0].turns[0], { stream: true }),
    });
    expect(res.status).toBe(200);
    const events = (await sseEvents(res)) as Json[];
    expect(events).not.toContain('[DONE]');
    expect(events.at(-1)).toEqual({
      error: {
        message: 'expert tier unavailable: injected failure',
        type: 'server_error',
        param: null,
        code: 'expert_tier_unavailable',
      },
    });
    expect(events.flatMap((c) => c.switchyard?.steps ?? []).length).toBe(3);
  });
});
