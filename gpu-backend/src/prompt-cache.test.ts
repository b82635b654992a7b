import { describe, expect, it } from 'vitest';
import { entryBytes, PromptCache, type PromptEntry } from './prompt-cache.ts';

/** An entry of `floats` K values and as many V values (8·floats bytes). */
const entry = (sessionId: string, expert: number, digest = 'd1', floats = 100): PromptEntry => ({
  sessionId,
  expert,
  digest,
  length: 1,
  k: new Float32Array(floats),
  v: new Float32Array(floats),
});

describe('PromptCache', () => {
  it('hits only on the same (session, expert, digest), and counts hits and misses', () => {
    const c = new PromptCache(10_000);
    const e = entry('a', 1);
    c.set(e);
    expect(c.get('a', 1, 'd1')).toBe(e);
    expect(c.get('a', 1, 'd2')).toBeUndefined();
    expect(c.get('a', 2, 'd1')).toBeUndefined();
    expect(c.get('b', 1, 'd1')).toBeUndefined();
    expect(c.stats()).toMatchObject({ hits: 1, misses: 3, entries: 1, bytes: 800 });
  });

  it('evicts the least recently used entries to stay under budget', () => {
    const c = new PromptCache(2500); // three 800-byte entries fit, four do not
    c.set(entry('a', 0));
    c.set(entry('b', 0));
    c.set(entry('c', 0));
    c.get('a', 0, 'd1'); // a is now the most recent; b the least
    c.set(entry('d', 0));
    expect(c.has('b', 0, 'd1')).toBe(false);
    expect(['a', 'c', 'd'].every((s) => c.has(s, 0, 'd1'))).toBe(true);
    c.set(entry('e', 0, 'd1', 200)); // 1600 bytes: c and a go
    expect(c.has('c', 0, 'd1') || c.has('a', 0, 'd1')).toBe(false);
    expect(c.stats()).toMatchObject({ evictions: 3, entries: 2, bytes: 2400 });
  });

  it("replaces a session's entry for an expert when the prompt changes", () => {
    const c = new PromptCache(10_000);
    c.set(entry('a', 3, 'turn-1'));
    c.set(entry('a', 3, 'turn-2', 50));
    expect(c.has('a', 3, 'turn-1')).toBe(false);
    expect(c.has('a', 3, 'turn-2')).toBe(true);
    expect(c.stats()).toMatchObject({ entries: 1, bytes: 400, evictions: 0 });
  });

  it('drops every entry of a session, and nothing else', () => {
    const c = new PromptCache(10_000);
    for (const e of [0, 1, 2]) c.set(entry('a', e));
    c.set(entry('b', 1));
    expect(c.dropSession('a')).toBe(3);
    expect(c.dropSession('a')).toBe(0);
    expect(c.dropSession('never')).toBe(0);
    expect(c.has('b', 1, 'd1')).toBe(true);
    expect(c.stats()).toMatchObject({ entries: 1, bytes: 800 });
  });

  it('does not keep an entry larger than the whole budget, and keeps the others', () => {
    const c = new PromptCache(1000);
    c.set(entry('a', 0));
    c.set(entry('big', 0, 'd1', 1000));
    expect(c.has('big', 0, 'd1')).toBe(false);
    expect(c.has('a', 0, 'd1')).toBe(true);
    expect(c.stats()).toMatchObject({ rejected: 1, evictions: 0 });
    expect(entryBytes(entry('x', 0, 'd', 3))).toBe(24);
    expect(() => new PromptCache(-1)).toThrow(/expected a byte count ≥ 0, found -1/);
  });
});
