import { env } from 'cloudflare:workers';
import { abortAllDurableObjects, runInDurableObject } from 'cloudflare:test';
import { describe, it, expect, beforeEach } from 'vitest';
import { generate, DEFAULT_GENERATE_OPTIONS } from '@switchyard/shared/generate';
import { promptDigest } from '@switchyard/shared/digest';
import { ReferenceEdge, ReferenceExperts } from '@switchyard/shared/reference';
import type { Env } from './env.ts';
import type { SessionActor } from './session-actor.ts';
import { applyStmDelta, decodeCtrl, decodeGen, type CtrlColumns, type GenColumns } from './state-codec.ts';
import {
  api,
  golden,
  KEYS,
  MODEL,
  referenceModel,
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

const multi = golden.sessions.find((s) => s.turns.length > 1)!;
const noMemory = { memory: { recall: 0, write: false } };

async function createSession(key = KEYS.alice, body: Json = {}): Promise<string> {
  const res = await api('/v1/sessions', { key, json: { model: MODEL, switchyard: noMemory, ...body } });
  const info = (await res.json()) as Json;
  expect(res.status, JSON.stringify(info)).toBe(200);
  return info.id;
}

function say(id: string, turn: number, extra: Json = {}, key = KEYS.alice): Promise<Response> {
  const t = multi.turns[turn];
  return api(`/v1/sessions/${id}/messages`, {
    key,
    json: {
      content: t.messages.at(-1)!.content,
      max_tokens: t.max_tokens,
      temperature: 0,
      switchyard: { trace: true },
      ...extra,
    },
  });
}

/** The reference's state after the first `steps` steps of the multi-turn case's first turn. */
async function referenceFirstTurn(steps: number) {
  const t = multi.turns[0];
  return generate(
    {
      config: referenceModel.config,
      edge: new ReferenceEdge(referenceModel),
      experts: new ReferenceExperts(referenceModel),
      prompt: { tokens: t.prompt_tokens, digest: await promptDigest(t.prompt_tokens) },
      sessionId: 'ref',
      requestId: 'ref',
      options: { ...DEFAULT_GENERATE_OPTIONS, maxTokens: steps, ltmTopN: 0 },
    },
    referenceModel.initialState(),
  );
}

const tokensOf = (body: Json) => body.switchyard.steps.map((s: Json) => s.token);

function stub(id: string): DurableObjectStub<SessionActor> {
  const ns = (env as unknown as Env).SESSIONS;
  return ns.get(ns.idFromString(id.slice(5)));
}

describe('sessions', () => {
  it('create → message → read → delete', async () => {
    const id = await createSession(KEYS.alice, { system: 'Be brief.' });
    expect(id).toMatch(/^sess_[0-9a-f]{64}$/);
    const info = (await (await api(`/v1/sessions/${id}`)).json()) as Json;
    expect(info).toMatchObject({
      id,
      object: 'session',
      model: MODEL,
      status: 'idle',
      turns: 0,
      messages: [{ role: 'system', content: 'Be brief.' }],
      memory: { namespace: 'default', recall: 0, write: false },
    });
    const res = await api(`/v1/sessions/${id}/messages`, {
      json: { content: 'Hello', max_tokens: 5, temperature: 0 },
    });
    const turn = (await res.json()) as Json;
    expect(res.status).toBe(200);
    expect(turn.object).toBe('chat.completion');
    expect(turn.switchyard.session_id).toBe(id);
    expect(turn.usage.completion_tokens).toBe(5);
    const after = (await (await api(`/v1/sessions/${id}`)).json()) as Json;
    expect(after.turns).toBe(1);
    expect(after.messages.map((m: Json) => m.role)).toEqual(['system', 'user', 'assistant']);
    expect(after.messages[2].content).toBe(turn.choices[0].message.content);
    expect(after.messages[2].reasoning_content).toBe(turn.choices[0].message.reasoning_content);
    expect(after.usage.completion_tokens).toBe(5);
    const del = await api(`/v1/sessions/${id}`, { method: 'DELETE' });
    expect(await del.json()).toEqual({ id, object: 'session.deleted', deleted: true });
    expect((await api(`/v1/sessions/${id}`)).status).toBe(404);
    expect(experts.dropped).toContain(id);
  });

  it('continues the controller state across turns: the multi-turn golden case, token for token', async () => {
    const id = await createSession();
    for (const [t, g] of multi.turns.entries()) {
      const body = (await (await say(id, t)).json()) as Json;
      expect(tokensOf(body)).toEqual(g.tokens);
      expect(body.choices[0].message.content).toBe(g.answer_text);
      expect(body.usage.prompt_tokens).toBe(g.prompt_tokens.length);
    }
    // The prompt of turn 2 is the rendered transcript, answer of turn 1 included.
    const turn2 = experts.calls.filter((c) => c.step === 1).at(-1)!;
    expect(Array.from(turn2.prompt.tokens)).toEqual(multi.turns[1].prompt_tokens);
  });

  it('stores h, c, m and the STM exactly as the reference leaves them after a turn', async () => {
    const id = await createSession();
    await say(id, 0);
    const ref = await referenceFirstTurn(multi.turns[0].max_tokens);
    const stored = await runInDurableObject(stub(id), (_: SessionActor, state: DurableObjectState) =>
      state.storage.sql
        .exec<CtrlColumns>('SELECT h, c, m, stm_keys, stm_values, stm_count, stm_next FROM controller')
        .one(),
    );
    const ctrl = decodeCtrl(stored, referenceModel.config);
    expect(Array.from(ctrl.h)).toEqual(Array.from(ref.state.ctrl.h));
    expect(Array.from(ctrl.c)).toEqual(Array.from(ref.state.ctrl.c));
    expect(Array.from(ctrl.m)).toEqual(Array.from(ref.state.ctrl.m));
    expect(Array.from(ctrl.stm.keys)).toEqual(Array.from(ref.state.ctrl.stm.keys));
    expect([ctrl.stm.count, ctrl.stm.next]).toEqual([ref.state.ctrl.stm.count, ref.state.ctrl.stm.next]);
  });

  it('survives eviction between turns: the next turn still matches the golden case', async () => {
    const id = await createSession();
    expect(tokensOf((await (await say(id, 0)).json()) as Json)).toEqual(multi.turns[0].tokens);
    const marked = await runInDurableObject(stub(id), (actor: SessionActor) => {
      (actor as unknown as { marker: number }).marker = 1;
      return (actor as unknown as { marker: number }).marker;
    });
    expect(marked).toBe(1);
    await abortAllDurableObjects();
    const fresh = await runInDurableObject(
      stub(id),
      (actor: SessionActor) => (actor as unknown as { marker?: number }).marker,
    );
    expect(fresh).toBeUndefined();
    const body = (await (await say(id, 1)).json()) as Json;
    expect(tokensOf(body)).toEqual(multi.turns[1].tokens);
  });

  it('a failed expert call leaves the state as after the previous step, and resume finishes the turn exactly', async () => {
    const id = await createSession();
    await say(id, 0);
    const before = (await (await api(`/v1/sessions/${id}`)).json()) as Json;
    let failing = true;
    experts.failWhen = (call) => (failing && call.step === 6 ? unavailable() : null);
    const failed = await say(id, 1);
    expect(failed.status).toBe(503);
    expect(failed.headers.get('retry-after')).toBe('2');
    expect(((await failed.json()) as Json).error.code).toBe('expert_tier_unavailable');
    const during = (await (await api(`/v1/sessions/${id}`)).json()) as Json;
    expect(during.status).toBe('interrupted');
    expect(during.pending_turn.steps).toBe(5);
    expect(during.pending_turn.error).toMatch(/^expert_tier_unavailable: /);
    expect(during.messages).toEqual(before.messages);
    expect(during.turns).toBe(1);
    // Evict too: the five persisted steps must come back from storage.
    await abortAllDurableObjects();
    failing = false;
    const resumed = await api(`/v1/sessions/${id}/resume`, { json: { switchyard: { trace: true } } });
    const body = (await resumed.json()) as Json;
    expect(resumed.status, JSON.stringify(body)).toBe(200);
    expect(tokensOf(body)).toEqual(multi.turns[1].tokens);
    expect(body.choices[0].message.content).toBe(multi.turns[1].answer_text);
    expect(body.switchyard.resumed_at_step).toBe(5);
    expect(body.usage.completion_tokens).toBe(multi.turns[1].tokens.length);
    // Steps 1-6 (the sixth failed), then the resume starts again at step 6.
    const n = multi.turns[1].tokens.length;
    const steps = experts.calls
      .filter((c) => c.requestId === experts.calls.at(-1)!.requestId)
      .map((c) => c.step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, ...Array.from({ length: n - 5 }, (_, i) => 6 + i)]);
    const done = (await (await api(`/v1/sessions/${id}`)).json()) as Json;
    expect(done.status).toBe('idle');
    expect(done.turns).toBe(2);
    expect((await api(`/v1/sessions/${id}/resume`, { json: {} })).status).toBe(409);
  });

  it('persists a step as its STM writes, not the whole STM: the turn row keeps the STM as the turn started', async () => {
    const id = await createSession();
    experts.failWhen = (call) => (call.step === 6 ? unavailable() : null);
    expect((await say(id, 0)).status).toBe(503);
    const dim = referenceModel.config.memory.dim;
    const { turn, deltas } = await runInDurableObject(
      stub(id),
      (_: SessionActor, state: DurableObjectState) => ({
        turn: state.storage.sql.exec<GenColumns>('SELECT * FROM turn').one(),
        deltas: state.storage.sql
          .exec<{ stm_delta: ArrayBuffer }>('SELECT stm_delta FROM turn_steps ORDER BY idx')
          .toArray()
          .map((r) => r.stm_delta),
      }),
    );
    // Five steps, each one slot (index + key + value), 1 KB against the whole STM's 64 KB at this size.
    expect(deltas.map((d) => d.byteLength)).toEqual(Array(5).fill((1 + 2 * dim) * 4));
    const stored = decodeGen(turn, referenceModel.config);
    expect(Array.from(stored.ctrl.stm.keys)).toEqual(Array.from(referenceModel.initialState().stm.keys));
    for (const d of deltas) applyStmDelta(stored.ctrl.stm, d, dim);
    const ref = (await referenceFirstTurn(5)).state.ctrl;
    expect(Array.from(stored.ctrl.stm.keys)).toEqual(Array.from(ref.stm.keys));
    expect(Array.from(stored.ctrl.stm.values)).toEqual(Array.from(ref.stm.values));
    expect([stored.ctrl.stm.count, stored.ctrl.stm.next]).toEqual([ref.stm.count, ref.stm.next]);
    expect(Array.from(stored.ctrl.h)).toEqual(Array.from(ref.h));
  });

  it('resumes a turn stored before steps carried STM deltas (the whole STM in the turn row)', async () => {
    const id = await createSession();
    experts.failWhen = (call) => (call.step === 6 ? unavailable() : null);
    expect((await say(id, 0)).status).toBe(503);
    // Rewrite the stored turn the way the earlier schema held it: the turn row's STM current after step 5,
    // and turn_steps without the delta column.
    await runInDurableObject(stub(id), (_: SessionActor, state: DurableObjectState) => {
      const sql = state.storage.sql;
      const gen = decodeGen(sql.exec<GenColumns>('SELECT * FROM turn').one(), referenceModel.config);
      for (const r of sql.exec<{ stm_delta: ArrayBuffer }>('SELECT stm_delta FROM turn_steps ORDER BY idx'))
        applyStmDelta(gen.ctrl.stm, r.stm_delta, referenceModel.config.memory.dim);
      sql.exec(
        'UPDATE turn SET stm_keys = ?, stm_values = ?',
        gen.ctrl.stm.keys.slice().buffer,
        gen.ctrl.stm.values.slice().buffer,
      );
      sql.exec('ALTER TABLE turn_steps DROP COLUMN stm_delta');
    });
    await abortAllDurableObjects();
    experts.failWhen = null;
    const res = await api(`/v1/sessions/${id}/resume`, { json: { switchyard: { trace: true } } });
    const body = (await res.json()) as Json;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.switchyard.resumed_at_step).toBe(5);
    expect(tokensOf(body)).toEqual(multi.turns[0].tokens);
  });

  it('a new message after a failure discards the interrupted turn', async () => {
    const id = await createSession();
    experts.failWhen = (call) => (call.step === 3 ? unavailable() : null);
    expect((await say(id, 0)).status).toBe(503);
    experts.failWhen = null;
    const body = (await (await say(id, 0)).json()) as Json;
    expect(tokensOf(body)).toEqual(multi.turns[0].tokens);
    const info = (await (await api(`/v1/sessions/${id}`)).json()) as Json;
    expect(info.messages.length).toBe(2);
    expect(info.pending_turn).toBeUndefined();
  });

  it('runs one request at a time: concurrent messages queue, in order', async () => {
    const id = await createSession();
    const [a, b] = await Promise.all([say(id, 0), say(id, 1)]);
    expect(tokensOf((await a.json()) as Json)).toEqual(multi.turns[0].tokens);
    expect(tokensOf((await b.json()) as Json)).toEqual(multi.turns[1].tokens);
    const info = (await (await api(`/v1/sessions/${id}`)).json()) as Json;
    expect(info.messages.map((m: Json) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
  });

  it('streams a session turn as SSE', async () => {
    const id = await createSession();
    const res = await say(id, 0, { stream: true, stream_options: { include_usage: true } });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const events = (await sseEvents(res)) as Json[];
    expect(events.at(-1)).toBe('[DONE]');
    const text = events
      .slice(0, -1)
      .map((c) => c.choices[0]?.delta?.content ?? '')
      .join('');
    expect(text).toBe(multi.turns[0].answer_text);
    expect(events.at(-3)!.switchyard.session_id).toBe(id);
    expect(events.at(-2)!.usage.completion_tokens).toBe(multi.turns[0].tokens.length);
  });

  it('finishes and stores a streamed turn whose client went away after its first chunk', async () => {
    const id = await createSession();
    experts.delayMs = 20;
    const res = await say(id, 0, { stream: true });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    expect((await reader.read()).done).toBe(false);
    await reader.cancel();
    let info: Json = {};
    for (let i = 0; i < 200; i++) {
      info = (await (await api(`/v1/sessions/${id}`)).json()) as Json;
      if (info.status === 'idle' && info.turns === 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(info).toMatchObject({ status: 'idle', turns: 1 });
    expect(info.messages[1].content).toBe(multi.turns[0].answer_text);
    // The state it left is the full turn's: the next turn is the golden one.
    experts.delayMs = 0;
    expect(tokensOf((await (await say(id, 1)).json()) as Json)).toEqual(multi.turns[1].tokens);
  });

  it('deleting a session stops its running turn at the next step and removes everything', async () => {
    const id = await createSession();
    experts.delayMs = 20;
    const running = say(id, 0, { stream: true });
    await new Promise((r) => setTimeout(r, 70));
    const del = await api(`/v1/sessions/${id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    const res = await running;
    const events = res.status === 200 ? ((await sseEvents(res)) as Json[]) : [await res.json()];
    expect(events.at(-1)).toMatchObject({ error: { code: 'turn_cancelled' } });
    expect(experts.calls.length).toBeLessThan(multi.turns[0].tokens.length);
    expect((await api(`/v1/sessions/${id}`)).status).toBe(404);
  });

  it('hides a session from every other tenant (404, as if it did not exist)', async () => {
    const id = await createSession(KEYS.alice);
    for (const [path, init] of [
      [`/v1/sessions/${id}`, {}],
      [`/v1/sessions/${id}`, { method: 'DELETE' }],
      [`/v1/sessions/${id}/messages`, { json: { content: 'hi' } }],
      [`/v1/sessions/${id}/resume`, { json: {} }],
    ] as const) {
      const res = await api(path, { key: KEYS.bob, ...init });
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({
        error: {
          message: 'session not found',
          type: 'not_found_error',
          param: null,
          code: 'session_not_found',
        },
      });
    }
    expect((await api(`/v1/sessions/${id}`)).status).toBe(200);
  });

  it('answers 404 for ids it never issued', async () => {
    for (const id of ['nope', `sess_${'0'.repeat(64)}`, `sess_${'a'.repeat(63)}`]) {
      const res = await api(`/v1/sessions/${id}`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as Json).error.code).toBe('session_not_found');
    }
  });

  it('validates session requests', async () => {
    const noModel = await api('/v1/sessions', { json: {} });
    expect(noModel.status).toBe(400);
    const id = await createSession();
    const bad = await api(`/v1/sessions/${id}/messages`, { json: { content: 5 } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as Json).error.param).toBe('content');
    const tooLong = await api(`/v1/sessions/${id}/messages`, { json: { content: 'x'.repeat(300) } });
    expect(tooLong.status).toBe(400);
    expect(((await tooLong.json()) as Json).error.code).toBe('context_length_exceeded');
    const ns = await api(`/v1/sessions/${id}/messages`, {
      json: { content: 'x', switchyard: { memory: { namespace: 'other' } } },
    });
    expect(ns.status).toBe(400);
  });

  it('drops the oldest messages once the conversation outgrows Lmax', async () => {
    const id = await createSession();
    for (let i = 0; i < 3; i++) {
      const res = await api(`/v1/sessions/${id}/messages`, {
        json: { content: `${i}`.repeat(40), max_tokens: 3, temperature: 0 },
      });
      const body = (await res.json()) as Json;
      expect(res.status).toBe(200);
      expect(body.usage.prompt_tokens).toBeLessThanOrEqual(128);
      if (i === 2) expect(body.switchyard.dropped_messages).toBeGreaterThan(0);
    }
  });
});
