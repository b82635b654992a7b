// The prompt cache: per (session, expert), every layer's prompt K and V from the prefill graph, under a byte
// budget with least-recently-used eviction. It is only a cache: the edge owns the prompt and resends it, so
// any entry may go at any time without failing a request.

export interface PromptEntry {
  sessionId: string;
  expert: number;
  /** promptDigest of the tokens, hex: a session's new turn has a new digest and replaces its entry. */
  digest: string;
  /** L, the prompt length. */
  length: number;
  /**
   * [layers, heads, L, dh] keys and values as the prefill graph emits them (the step graph's layout),
   * usually views of a SharedArrayBuffer the workers read directly.
   */
  k: Float32Array;
  v: Float32Array;
}

export interface CacheStats {
  hits: number;
  misses: number;
  evictions: number;
  /** Entries too large for the whole budget: used for their request, never stored. */
  rejected: number;
  entries: number;
  bytes: number;
  budget: number;
}

export const entryBytes = (e: Pick<PromptEntry, 'k' | 'v'>): number => e.k.byteLength + e.v.byteLength;

const keyOf = (sessionId: string, expert: number) => `${expert}\u0000${sessionId}`;

export class PromptCache {
  // A Map iterates in insertion order; re-inserting on every hit keeps the least recently used first.
  private readonly entries = new Map<string, PromptEntry>();
  private readonly bySession = new Map<string, Set<number>>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  private rejected = 0;

  constructor(readonly budget: number) {
    if (!Number.isSafeInteger(budget) || budget < 0)
      throw new RangeError(`prompt cache budget: expected a byte count ≥ 0, found ${budget}`);
  }

  /** The entry for (session, expert) if it holds this digest; counts a hit or a miss. */
  get(sessionId: string, expert: number, digest: string): PromptEntry | undefined {
    const key = keyOf(sessionId, expert);
    const e = this.entries.get(key);
    if (!e || e.digest !== digest) {
      this.misses++;
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, e);
    this.hits++;
    return e;
  }

  /** Whether (session, expert) holds this digest, without touching recency or the counters. */
  has(sessionId: string, expert: number, digest: string): boolean {
    return this.entries.get(keyOf(sessionId, expert))?.digest === digest;
  }

  /** Stores an entry (replacing the session's previous prompt for that expert) and evicts down to budget. */
  set(entry: PromptEntry): void {
    const size = entryBytes(entry);
    this.remove(keyOf(entry.sessionId, entry.expert));
    if (size > this.budget) {
      this.rejected++;
      return;
    }
    for (const [key] of this.entries) {
      if (this.bytes + size <= this.budget) break;
      this.remove(key);
      this.evictions++;
    }
    const key = keyOf(entry.sessionId, entry.expert);
    this.entries.set(key, entry);
    this.bytes += size;
    let experts = this.bySession.get(entry.sessionId);
    if (!experts) this.bySession.set(entry.sessionId, (experts = new Set()));
    experts.add(entry.expert);
  }

  /** Forgets every entry of a session; returns how many there were. Unknown sessions are not an error. */
  dropSession(sessionId: string): number {
    const experts = this.bySession.get(sessionId);
    if (!experts) return 0;
    const n = experts.size;
    for (const e of [...experts]) this.remove(keyOf(sessionId, e));
    return n;
  }

  stats(): CacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      rejected: this.rejected,
      entries: this.entries.size,
      bytes: this.bytes,
      budget: this.budget,
    };
  }

  private remove(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.bytes -= entryBytes(e);
    const experts = this.bySession.get(e.sessionId)!;
    experts.delete(e.expert);
    if (experts.size === 0) this.bySession.delete(e.sessionId);
  }
}
