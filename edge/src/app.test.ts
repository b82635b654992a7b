import { describe, it, expect, beforeEach } from 'vitest';
import { api, golden, MODEL, useTestExperts, type Json, type TestExperts } from './test-utils.ts';

let experts: TestExperts;
beforeEach(() => {
  experts = useTestExperts();
});

describe('smoke', () => {
  it('answers a golden case', async () => {
    const g = golden.sessions[0].turns[0];
    const res = await api('/v1/chat/completions', {
      json: {
        model: MODEL,
        messages: g.messages,
        max_tokens: g.max_tokens,
        temperature: 0,
        switchyard: { trace: true, memory: { recall: 0 } },
      },
    });
    const body = (await res.json()) as Json;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.switchyard.steps.map((s: Json) => s.token)).toEqual(g.tokens);
    expect(experts.calls.length).toBe(g.tokens.length);
  });
});
