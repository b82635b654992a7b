import { env } from 'cloudflare:workers';
import { runInDurableObject } from 'cloudflare:test';
import { describe, it, expect, beforeEach } from 'vitest';
import { DEFAULT_GENERATE_OPTIONS, generate } from '@switchyard/shared/generate';
import { promptDigest } from '@switchyard/shared/digest';
import { renderChat } from '@switchyard/shared/chat';
import type { LtmEntry, LtmStore, SparseCode } from '@switchyard/shared/interfaces';
import { ReferenceEdge, ReferenceExperts } from '@switchyard/shared/reference';
import type { Env } from './env.ts';
import { memoryObjectName, type MemoryActor } from './memory-actor.ts';
import { api, KEYS, MODEL, referenceModel, useTestExperts, type Json } from './test-utils.ts';

beforeEach(() => {
  useTestExperts();
});

const ns = () => (env as unknown as Env).MEMORY;
const raw = (name: string) => ns().get(ns().idFromName(name));
/** The actor's RPC with failures thrown again, as memoryStore does. */
const actor = (name: string) => {
  const stub = raw(name);
  const unwrap = <T>(r: { ok: true; value: T } | { ok: false; error: string }): T => {
    if (!r.ok) throw new Error(r.error);
    return r.value;
  };
  return {
    write: async (c: SparseCode, e: LtmEntry) => unwrap(await stub.write(c, e)),
    query: async (c: SparseCode, n: number) => unwrap(await stub.query(c, n)),
    stats: () => stub.stats(),
    clear: () => stub.clear(),
  };
};
const vec = (...v: number[]) => Float32Array.from(v);
const entry = (snippet: string, k = 1): LtmEntry => ({ key: vec(k, 0), value: vec(0, k), snippet });
const code = (pairs: [number, number][]): SparseCode => ({
  atoms: pairs.map((p) => p[0]),
  weights: pairs.map((p) => p[1]),
});

describe('MemoryActor: the sparse-coded inverted index', () => {
  it('ranks entries by sparse dot product and leaves out entries that share no atom', async () => {
    const m = actor('test/rank');
    await m.write(
      code([
        [1, 1],
        [2, 1],
      ]),
      entry('a'),
    );
    await m.write(code([[2, 3]]), entry('b'));
    await m.write(code([[3, 5]]), entry('c'));
    await m.write(
      code([
        [1, 0.5],
        [4, 9],
      ]),
      entry('d'),
    );
    // query 1·e1 + 2·e2: a = 1+2 = 3, b = 6, d = 0.5, c = 0
    const hits = await m.query(
      code([
        [1, 1],
        [2, 2],
      ]),
      10,
    );
    expect(hits.map((h) => h.snippet)).toEqual(['b', 'a', 'd']);
    expect(hits.map((h) => h.score)).toEqual([6, 3, 0.5]);
    expect(Array.from(hits[0].key)).toEqual([1, 0]);
    expect(Array.from(hits[0].value)).toEqual([0, 1]);
    expect(
      (
        await m.query(
          code([
            [1, 1],
            [2, 2],
          ]),
          2,
        )
      ).map((h) => h.snippet),
    ).toEqual(['b', 'a']);
    expect(await m.query(code([[7, 1]]), 4)).toEqual([]);
    expect(await m.query(code([]), 4)).toEqual([]);
    expect(await m.stats()).toEqual({ entries: 4, postings: 6 });
  });

  it('breaks ties toward the newest entry', async () => {
    const m = actor('test/ties');
    await m.write(code([[5, 1]]), entry('old'));
    await m.write(code([[5, 1]]), entry('new'));
    expect((await m.query(code([[5, 2]]), 1)).map((h) => h.snippet)).toEqual(['new']);
  });

  it('keeps at most LTM_MAX_ENTRIES, dropping the oldest with their postings', async () => {
    const m = actor('test/limit');
    for (let i = 0; i < 53; i++)
      await m.write(
        code([
          [i, 1],
          [1000, 1],
        ]),
        entry(`e${i}`),
      );
    expect(await m.stats()).toEqual({ entries: 50, postings: 100 });
    expect(
      await m.query(
        code([
          [0, 1],
          [1, 1],
          [2, 1],
        ]),
        4,
      ),
    ).toEqual([]);
    expect((await m.query(code([[3, 1]]), 4)).map((h) => h.snippet)).toEqual(['e3']);
  });

  it.each([
    [
      'duplicate atoms',
      code([
        [1, 1],
        [1, 2],
      ]),
      entry('x'),
      /atom 1 appears twice/,
    ],
    ['a negative weight', code([[1, -1]]), entry('x'), /expected a finite number ≥ 0, found -1/],
    [
      'a NaN in the key',
      code([[1, 1]]),
      { key: vec(NaN, 0), value: vec(0, 0), snippet: 'x' },
      /entry.key\[0\]: expected a finite value/,
    ],
    [
      'key and value of different widths',
      code([[1, 1]]),
      { key: vec(1), value: vec(0, 0), snippet: 'x' },
      /same width/,
    ],
  ] as const)('refuses %s', async (_, c, e, message) => {
    await expect(actor('test/invalid').write(c, e)).rejects.toThrow(message);
  });

  it('refuses an entry whose width differs from the namespace’s entries', async () => {
    const m = actor('test/width');
    await m.write(code([[1, 1]]), entry('x'));
    await expect(
      m.write(code([[1, 1]]), { key: vec(1, 2, 3), value: vec(1, 2, 3), snippet: 'y' }),
    ).rejects.toThrow(/expected 2 values like the namespace's other entries, found 3/);
  });

  it('clears a namespace', async () => {
    const m = actor('test/clear');
    await m.write(code([[1, 1]]), entry('x'));
    await m.clear();
    expect(await m.stats()).toEqual({ entries: 0, postings: 0 });
  });
});

type StoredEntry = {
  key: ArrayBuffer;
  value: ArrayBuffer;
  snippet: string;
};

async function entriesOf(tenant: string, namespace: string): Promise<StoredEntry[]> {
  return runInDurableObject(
    raw(memoryObjectName(tenant, namespace)),
    (_: MemoryActor, state: DurableObjectState) =>
      state.storage.sql.exec<StoredEntry>('SELECT key, value, snippet FROM entries ORDER BY id').toArray(),
  );
}

const ask = (key: string, content: string, memory: Json, maxTokens = 6) =>
  api('/v1/chat/completions', {
    key,
    json: {
      model: MODEL,
      messages: [{ role: 'user', content }],
      max_tokens: maxTokens,
      temperature: 0,
      switchyard: { trace: true, memory },
    },
  });

async function referenceRun(content: string, maxTokens: number, ltm?: LtmStore, ltmTopN = 0) {
  const tokens = renderChat([{ role: 'user', content }], referenceModel.Lmax).tokens;
  return generate(
    {
      config: referenceModel.config,
      edge: new ReferenceEdge(referenceModel),
      experts: new ReferenceExperts(referenceModel),
      prompt: { tokens, digest: await promptDigest(tokens) },
      sessionId: 'ref',
      requestId: 'ref',
      options: { ...DEFAULT_GENERATE_OPTIONS, maxTokens, ltmTopN },
      ltm,
    },
    referenceModel.initialState(),
  );
}

describe('long-term memory in requests', () => {
  it('writes a finished request as (code(h_T), W_k h_T, W_v m_T, snippet) into the tenant’s namespace only', async () => {
    const res = await ask(KEYS.alice, 'Remember the number 7.', {
      namespace: 'facts',
      recall: 0,
      write: true,
    });
    const body = (await res.json()) as Json;
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 50)); // the write runs after the response (waitUntil)
    const stored = await entriesOf('alice', 'facts');
    expect(stored.length).toBe(1);
    expect(stored[0].snippet).toBe(`Remember the number 7. → ${body.choices[0].message.content}`);
    const ref = await referenceRun('Remember the number 7.', 6);
    const head = referenceModel.head(ref.state.ctrl.h, ref.state.ctrl.m);
    expect(Array.from(new Float32Array(stored[0].key))).toEqual(Array.from(head.stmKey));
    expect(Array.from(new Float32Array(stored[0].value))).toEqual(Array.from(head.stmValue));
    expect(await entriesOf('bob', 'facts')).toEqual([]);
  });

  it('recalls after step 1 exactly as the reference loop does with the same memory', async () => {
    const memory = { namespace: 'recall', recall: 4, write: true };
    await ask(KEYS.bob, 'The sky is green today.', { ...memory, recall: 0 }, 5);
    await ask(KEYS.bob, 'Grass is blue.', { ...memory, recall: 0 }, 1); // a one-step turn
    await new Promise((r) => setTimeout(r, 50));
    const stored = await entriesOf('bob', 'recall');
    expect(stored.length).toBe(2);
    // Both written keys are W_k h_T of their request's last step, whichever way the edge got them.
    const one = await referenceRun('Grass is blue.', 1);
    expect(Array.from(new Float32Array(stored[1].key))).toEqual(
      Array.from(referenceModel.head(one.state.ctrl.h, one.state.ctrl.m).stmKey),
    );

    const m = actor(memoryObjectName('bob', 'recall'));
    const store: LtmStore = { query: (c, n) => m.query(c, n), write: async () => undefined };
    const question = 'What colour is the sky?';
    const ref = await referenceRun(question, 8, store, 4);
    const withRecall = (await (await ask(KEYS.bob, question, { ...memory, write: false }, 8)).json()) as Json;
    const without = (await (
      await ask(KEYS.bob, question, { ...memory, recall: 0, write: false }, 8)
    ).json()) as Json;
    const steps = withRecall.switchyard.steps as Json[];
    expect(steps.map((s) => s.token)).toEqual(ref.steps.map((s) => s.token));
    steps.forEach((s, i) => expect(s.logits_checksum).toBeCloseTo(ref.steps[i].logitsChecksum, 9));
    // Step 1 runs before the recall; later steps read the recalled entries from the STM.
    const plain = without.switchyard.steps as Json[];
    expect(steps[0].logits_checksum).toBe(plain[0].logits_checksum);
    expect(steps.slice(1).some((s, i) => s.logits_checksum !== plain[i + 1].logits_checksum)).toBe(true);
  });
});
