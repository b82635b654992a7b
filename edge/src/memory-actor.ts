// MemoryActor: one long-term memory namespace (DESIGN.md §1) as a sparse-coded inverted index in SQLite.
//   entries(id, key, value, snippet, created)   the stored (W_k h_T, W_v m_T, text) of finished requests
//   postings(atom, entry_id, weight)             for each non-zero atom of an entry's code
// A query code q scores entry e by Σ_atoms q[atom]·weight(e, atom): only the postings of q's atoms are read.
import { DurableObject } from 'cloudflare:workers';
import type { LtmEntry, LtmStore, SparseCode } from '@switchyard/shared/interfaces';
import type { Env } from './env.ts';
import { settingsFor } from './settings.ts';

export const MAX_SNIPPET_CHARS = 1000;
export const MAX_CODE_ATOMS = 4096;

export class MemoryError extends Error {
  override name = 'MemoryError';
}

/** RPC results carry failures as values: thrown errors lose their class crossing the boundary. */
export type MemoryResult<T> = { ok: true; value: T } | { ok: false; error: string };

function attempt<T>(fn: () => T): MemoryResult<T> {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (e instanceof MemoryError) return { ok: false, error: e.message };
    throw e;
  }
}

function unwrap<T>(r: MemoryResult<T>): T {
  if (!r.ok) throw new MemoryError(r.error);
  return r.value;
}

function checkCode(code: SparseCode): void {
  if (
    !code ||
    !Array.isArray(code.atoms) ||
    !Array.isArray(code.weights) ||
    code.atoms.length !== code.weights.length
  )
    throw new MemoryError('code: expected {atoms, weights} arrays of equal length');
  if (code.atoms.length > MAX_CODE_ATOMS)
    throw new MemoryError(`code: expected at most ${MAX_CODE_ATOMS} atoms, found ${code.atoms.length}`);
  const seen = new Set<number>();
  code.atoms.forEach((a, i) => {
    if (!Number.isInteger(a) || a < 0 || a > 0x7fffffff)
      throw new MemoryError(`code.atoms[${i}]: expected a non-negative integer, found ${a}`);
    if (seen.has(a)) throw new MemoryError(`code.atoms[${i}]: atom ${a} appears twice`);
    seen.add(a);
    const w = code.weights[i];
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0)
      throw new MemoryError(`code.weights[${i}]: expected a finite number ≥ 0, found ${w}`);
  });
}

function checkVector(v: Float32Array, what: string): void {
  if (!(v instanceof Float32Array) || v.length === 0)
    throw new MemoryError(`${what}: expected a non-empty Float32Array`);
  for (let i = 0; i < v.length; i++)
    if (!Number.isFinite(v[i]))
      throw new MemoryError(`${what}[${i}]: expected a finite value, found ${v[i]}`);
}

const blob = (v: Float32Array) => v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as ArrayBuffer;

export class MemoryActor extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key BLOB NOT NULL,
        value BLOB NOT NULL,
        snippet TEXT NOT NULL,
        created INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS postings (
        atom INTEGER NOT NULL,
        entry_id INTEGER NOT NULL,
        weight REAL NOT NULL,
        PRIMARY KEY (atom, entry_id)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS postings_by_entry ON postings (entry_id);
    `);
  }

  /** The n best entries for `code` by sparse dot product (entries sharing no atom are never returned). */
  async query(code: SparseCode, n: number): Promise<MemoryResult<LtmEntry[]>> {
    return attempt(() => this.queryNow(code, n));
  }

  private queryNow(code: SparseCode, n: number): LtmEntry[] {
    checkCode(code);
    if (!Number.isInteger(n) || n < 0)
      throw new MemoryError(`n: expected a non-negative integer, found ${n}`);
    if (n === 0 || code.atoms.length === 0) return [];
    // One JSON parameter, whatever the code's size (SQLite caps the number of bound parameters).
    const q = JSON.stringify(code.atoms.map((a, i) => [a, code.weights[i]]));
    const rows = this.sql
      .exec<{ id: number; key: ArrayBuffer; value: ArrayBuffer; snippet: string; score: number }>(
        `WITH q(atom, w) AS (
           SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)
         )
         SELECT e.id, e.key, e.value, e.snippet, s.score FROM (
           SELECT p.entry_id AS id, SUM(p.weight * q.w) AS score
           FROM q JOIN postings p ON p.atom = q.atom
           GROUP BY p.entry_id
         ) s JOIN entries e ON e.id = s.id
         WHERE s.score > 0
         ORDER BY s.score DESC, e.id DESC
         LIMIT ?`,
        q,
        n,
      )
      .toArray();
    return rows.map((r) => ({
      key: new Float32Array(r.key.slice(0)),
      value: new Float32Array(r.value.slice(0)),
      snippet: r.snippet,
      score: r.score,
    }));
  }

  async write(code: SparseCode, entry: LtmEntry): Promise<MemoryResult<number>> {
    return attempt(() => this.writeNow(code, entry));
  }

  private writeNow(code: SparseCode, entry: LtmEntry): number {
    checkCode(code);
    checkVector(entry.key, 'entry.key');
    checkVector(entry.value, 'entry.value');
    if (entry.key.length !== entry.value.length)
      throw new MemoryError(
        `entry: key and value must have the same width, found ${entry.key.length} and ${entry.value.length}`,
      );
    if (typeof entry.snippet !== 'string') throw new MemoryError('entry.snippet: expected a string');
    const width = this.sql
      .exec<{ n: number }>('SELECT length(key) AS n FROM entries LIMIT 1')
      .toArray()[0]?.n;
    if (width !== undefined && width !== entry.key.byteLength)
      throw new MemoryError(
        `entry.key: expected ${width / 4} values like the namespace's other entries, found ${entry.key.length} (was the model changed?)`,
      );
    const limit = settingsFor(this.env).ltmMaxEntries;
    return this.ctx.storage.transactionSync(() => {
      const id = this.sql
        .exec<{ id: number }>(
          'INSERT INTO entries (key, value, snippet, created) VALUES (?, ?, ?, ?) RETURNING id',
          blob(entry.key),
          blob(entry.value),
          entry.snippet.slice(0, MAX_SNIPPET_CHARS),
          Date.now(),
        )
        .one().id;
      code.atoms.forEach((a, i) => {
        if (code.weights[i] > 0)
          this.sql.exec(
            'INSERT INTO postings (atom, entry_id, weight) VALUES (?, ?, ?)',
            a,
            id,
            code.weights[i],
          );
      });
      // Past the limit, the oldest entries go.
      const excess = this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM entries').one().n - limit;
      if (excess > 0) {
        this.sql.exec(
          'DELETE FROM postings WHERE entry_id IN (SELECT id FROM entries ORDER BY id LIMIT ?)',
          excess,
        );
        this.sql.exec('DELETE FROM entries WHERE id IN (SELECT id FROM entries ORDER BY id LIMIT ?)', excess);
      }
      return id;
    });
  }

  async stats(): Promise<{ entries: number; postings: number }> {
    return {
      entries: this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM entries').one().n,
      postings: this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM postings').one().n,
    };
  }

  async clear(): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec('DELETE FROM postings');
      this.sql.exec('DELETE FROM entries');
    });
  }
}

/** The Durable Object name of a tenant's namespace: tenants never share one, whatever they name it. */
export function memoryObjectName(tenantId: string, namespace: string): string {
  return `${tenantId}/${namespace}`;
}

/** A namespace as shared's LtmStore, for the generation loop. */
export function memoryStore(env: Env, tenantId: string, namespace: string): LtmStore {
  const stub = env.MEMORY.get(env.MEMORY.idFromName(memoryObjectName(tenantId, namespace)));
  return {
    query: async (code, n) => unwrap(await stub.query(code, n)),
    write: async (code, entry) => {
      unwrap(await stub.write(code, entry));
    },
  };
}
