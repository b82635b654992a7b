// SessionActor: one conversation. It holds the controller state (h, c, m) and the STM between turns, the
// messages, and the turn in progress, all in its SQLite storage. Requests run one at a time. Every step goes
// through one path: validate → persist → notify, so an eviction loses nothing and a failed expert call leaves
// the state exactly as it was after the previous step. An interrupted turn can be resumed; a new message
// discards it instead.
import { DurableObject } from 'cloudflare:workers';
import type { ChatMessage } from '@switchyard/shared/chat';
import { promptDigest } from '@switchyard/shared/digest';
import {
  DEFAULT_GENERATE_OPTIONS,
  startGeneration,
  type GenerateOptions,
  type GenerationState,
  type StepRecord,
} from '@switchyard/shared/generate';
import type { Env } from './env.ts';
import { ConflictError, NotFoundError, toApiError, type ApiErrorData } from './errors.ts';
import { EventChannel, type TurnEvent } from './events.ts';
import {
  finishTurn,
  guardedLtm,
  rememberTurn,
  renderPrompt,
  runSteps,
  snippetOf,
  traceOf,
  zeroState,
} from './engine.ts';
import { memoryStore } from './memory-actor.ts';
import { renderTurn, type RenderOptions } from './openai.ts';
import { getServices, type Services } from './services.ts';
import {
  applyStmDelta,
  blobTokens,
  CTRL_COLUMNS,
  decodeCtrl,
  decodeGen,
  encodeCtrl,
  encodeGen,
  encodeStep,
  encodeStmDelta,
  GEN_COLUMNS,
  STEP_GEN_COLUMNS,
  tokensBlob,
  type Blob,
  type CtrlColumns,
  type GenColumns,
} from './state-codec.ts';
import { TurnText } from './text.ts';
import type { MemoryChoice, SessionMessageRequest } from './validation.ts';

export type Result<T> = { ok: true; value: T } | { ok: false; error: ApiErrorData };

export interface SessionInit {
  sessionId: string;
  tenant: string;
  model: string;
  messages: ChatMessage[];
  memory: MemoryChoice;
}

export interface SessionMessage extends ChatMessage {
  reasoning_content?: string;
}

export interface SessionInfo {
  id: string;
  object: 'session';
  created: number;
  model: string;
  status: 'idle' | 'generating' | 'interrupted';
  turns: number;
  messages: SessionMessage[];
  memory: MemoryChoice;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  /** The unfinished turn, when there is one. */
  pending_turn?: { steps: number; error: string | null };
}

/** How the stored turn samples: fixed when the turn starts, so a resumed turn continues the same way. */
interface TurnOptions {
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  stop: string[];
  recall: number;
  write: boolean;
}

export interface ResumeRequest {
  stream: boolean;
  includeUsage: boolean;
  trace: boolean;
}

type SessionRow = {
  session_id: string;
  tenant: string;
  model: string;
  created: number;
  memory: string;
  turns: number;
  prompt_tokens: number;
  completion_tokens: number;
};

type TurnRow = GenColumns & {
  completion_id: string;
  created: number;
  user: string;
  prompt: ArrayBuffer;
  dropped: number;
  options: string;
  trace: number;
  error: string | null;
};

const MAX_QUEUED = 16;

const ok = <T>(value: T): Result<T> => ({ ok: true, value });
const fail = (e: unknown): Result<never> => ({ ok: false, error: toApiError(e).toData() });

export class SessionActor extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private chain: Promise<unknown> = Promise.resolve();
  private queued = 0;
  /** A turn is running in this instance (a stored turn without one was interrupted). */
  private active = false;
  private deleting = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.schema();
  }

  private schema(): void {
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS session (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        session_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        model TEXT NOT NULL,
        created INTEGER NOT NULL,
        memory TEXT NOT NULL,
        turns INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE IF NOT EXISTS controller (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        h BLOB NOT NULL, c BLOB NOT NULL, m BLOB NOT NULL,
        stm_keys BLOB NOT NULL, stm_values BLOB NOT NULL, stm_count INTEGER NOT NULL, stm_next INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        reasoning TEXT,
        created INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS turn (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        completion_id TEXT NOT NULL,
        created INTEGER NOT NULL,
        user TEXT NOT NULL,
        prompt BLOB NOT NULL,
        dropped INTEGER NOT NULL,
        options TEXT NOT NULL,
        trace INTEGER NOT NULL,
        error TEXT,
        h BLOB NOT NULL, c BLOB NOT NULL, m BLOB NOT NULL,
        stm_keys BLOB NOT NULL, stm_values BLOB NOT NULL, stm_count INTEGER NOT NULL, stm_next INTEGER NOT NULL,
        y INTEGER NOT NULL, phase TEXT NOT NULL, think_steps INTEGER NOT NULL, steps INTEGER NOT NULL,
        reasoning BLOB NOT NULL, answer BLOB NOT NULL, finish TEXT, rng TEXT NOT NULL, recalled INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS turn_steps (idx INTEGER PRIMARY KEY, record TEXT NOT NULL, stm_delta BLOB);
    `);
    // Sessions stored before steps carried STM deltas: their steps rewrote the turn row's whole STM, so a
    // NULL delta (nothing to replay) reads them right.
    const cols = this.sql.exec<{ name: string }>('PRAGMA table_info(turn_steps)').toArray();
    if (!cols.some((c) => c.name === 'stm_delta'))
      this.sql.exec('ALTER TABLE turn_steps ADD COLUMN stm_delta BLOB');
  }

  /** Runs `fn` after every earlier request of this session has finished. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.queued >= MAX_QUEUED)
      return Promise.reject(
        new ConflictError(
          `session busy: ${this.queued} requests are already waiting for this session; expected at most ${MAX_QUEUED}; wait for them to finish`,
          'session_busy',
        ),
      );
    this.queued++;
    const run = this.chain.then(fn).finally(() => this.queued--);
    this.chain = run.catch(() => undefined);
    return run;
  }

  // ---------------------------------------------------------------------------------------- reading

  private row(tenant: string): SessionRow {
    const r = this.sql.exec<SessionRow>('SELECT * FROM session WHERE id = 1').toArray()[0];
    // Another tenant's session looks exactly like a missing one.
    if (!r || r.tenant !== tenant) throw new NotFoundError('session not found', 'session_not_found');
    return r;
  }

  private messages(): SessionMessage[] {
    return this.sql
      .exec<{ role: string; content: string; reasoning: string | null }>(
        'SELECT role, content, reasoning FROM messages ORDER BY seq',
      )
      .toArray()
      .map((m) =>
        m.reasoning === null
          ? { role: m.role, content: m.content }
          : { role: m.role, content: m.content, reasoning_content: m.reasoning },
      );
  }

  private pendingTurn(): TurnRow | null {
    return this.sql.exec<TurnRow>('SELECT * FROM turn WHERE id = 1').toArray()[0] ?? null;
  }

  private info(r: SessionRow): SessionInfo {
    const turn = this.pendingTurn();
    const info: SessionInfo = {
      id: r.session_id,
      object: 'session',
      created: r.created,
      model: r.model,
      status: this.active ? 'generating' : turn ? 'interrupted' : 'idle',
      turns: r.turns,
      messages: this.messages(),
      memory: JSON.parse(r.memory),
      usage: {
        prompt_tokens: r.prompt_tokens,
        completion_tokens: r.completion_tokens,
        total_tokens: r.prompt_tokens + r.completion_tokens,
      },
    };
    if (turn) info.pending_turn = { steps: turn.steps, error: turn.error };
    return info;
  }

  // ---------------------------------------------------------------------------------------- RPC

  async create(init: SessionInit): Promise<Result<SessionInfo>> {
    try {
      return ok(
        await this.exclusive(async () => {
          if (this.sql.exec('SELECT 1 FROM session WHERE id = 1').toArray().length)
            throw new ConflictError(`session ${init.sessionId} already exists`, 'session_exists');
          const { config } = await getServices(this.env);
          const now = Math.floor(Date.now() / 1000);
          const ctrl = encodeCtrl(zeroState(config));
          this.ctx.storage.transactionSync(() => {
            this.sql.exec(
              'INSERT INTO session (id, session_id, tenant, model, created, memory) VALUES (1, ?, ?, ?, ?, ?)',
              init.sessionId,
              init.tenant,
              init.model,
              now,
              JSON.stringify(init.memory),
            );
            this.writeCtrl(ctrl);
            for (const m of init.messages)
              this.sql.exec(
                'INSERT INTO messages (role, content, created) VALUES (?, ?, ?)',
                m.role,
                m.content,
                now,
              );
          });
          return this.info(this.row(init.tenant));
        }),
      );
    } catch (e) {
      return fail(e);
    }
  }

  async get(tenant: string): Promise<Result<SessionInfo>> {
    try {
      // Reads need not wait for a running turn: storage always holds a consistent state.
      return ok(this.info(this.row(tenant)));
    } catch (e) {
      return fail(e);
    }
  }

  async remove(tenant: string): Promise<Result<{ id: string; object: 'session.deleted'; deleted: true }>> {
    try {
      const id = this.row(tenant).session_id;
      this.deleting = true;
      try {
        await this.exclusive(async () => {
          this.row(tenant);
          await this.ctx.storage.deleteAll();
          this.schema();
        });
      } finally {
        this.deleting = false;
      }
      getServices(this.env)
        .then((s) => s.experts().dropSession?.(id))
        .catch(() => undefined);
      return ok({ id, object: 'session.deleted', deleted: true });
    } catch (e) {
      return fail(e);
    }
  }

  /**
   * A new user turn, answered as the OpenAI response itself (JSON or server-sent events), so that the Worker
   * passes the bytes through instead of decoding and re-rendering every step.
   */
  async message(tenant: string, req: SessionMessageRequest): Promise<Response> {
    return this.answer(req, async (ch) => {
      const r = this.row(tenant);
      const services = await getServices(this.env);
      const { config, settings } = services;
      const history: ChatMessage[] = this.messages().map((m) => ({ role: m.role, content: m.content }));
      const prompt = renderPrompt(
        [...history, { role: 'user', content: req.content }],
        config.experts.max_prompt,
        true,
        'content',
      );
      const memory: MemoryChoice = JSON.parse(r.memory);
      const options: TurnOptions = {
        maxTokens: req.maxTokens,
        temperature: req.temperature,
        topP: req.topP,
        seed: req.seed,
        stop: req.stop,
        recall: req.memory.recall ?? memory.recall ?? settings.ltmTopN,
        write: req.memory.write ?? memory.write,
      };
      const ctrl = decodeCtrl(this.readCtrl(), config);
      const state = startGeneration(ctrl, options.seed);
      const completionId = `chatcmpl-${crypto.randomUUID().replaceAll('-', '')}`;
      const gen = encodeGen(state);
      // A turn left over from a failure or an eviction is superseded by the new message.
      this.ctx.storage.transactionSync(() => {
        this.sql.exec('DELETE FROM turn');
        this.sql.exec('DELETE FROM turn_steps');
        this.sql.exec(
          `INSERT INTO turn (id, completion_id, created, user, prompt, dropped, options, trace, error, ${GEN_COLUMNS.join(', ')})
           VALUES (1, ?, ?, ?, ?, ?, ?, ?, NULL, ${GEN_COLUMNS.map(() => '?').join(', ')})`,
          completionId,
          Math.floor(Date.now() / 1000),
          req.content,
          tokensBlob(prompt.tokens),
          prompt.droppedMessages,
          JSON.stringify(options),
          req.trace ? 1 : 0,
          ...GEN_COLUMNS.map((c) => gen[c]),
        );
      });
      await this.runTurn(r, services, ch, req.trace, false);
    });
  }

  /** Continues the interrupted turn from its last persisted step, answered as message() answers. */
  async resume(tenant: string, req: ResumeRequest): Promise<Response> {
    return this.answer(req, async (ch) => {
      const r = this.row(tenant);
      if (!this.pendingTurn())
        throw new ConflictError(
          'nothing to resume: this session has no interrupted turn',
          'nothing_to_resume',
        );
      await this.runTurn(r, await getServices(this.env), ch, req.trace, true);
    });
  }

  /**
   * Runs `turn` after the requests ahead of it and answers with its events rendered as `o` asks; whatever
   * it throws becomes the turn's error event. Only the response's shape is taken from `o`.
   */
  private answer(o: RenderOptions, turn: (ch: EventChannel) => Promise<void>): Promise<Response> {
    const ch = new EventChannel();
    this.exclusive(() => turn(ch))
      .catch((e) => ch.push({ type: 'error', error: toApiError(e).toData() }))
      .finally(() => ch.end());
    return renderTurn(ch, { stream: o.stream, includeUsage: o.includeUsage, trace: o.trace });
  }

  // ---------------------------------------------------------------------------------------- the turn

  private readCtrl(): CtrlColumns {
    return this.sql.exec<CtrlColumns>(`SELECT ${CTRL_COLUMNS.join(', ')} FROM controller WHERE id = 1`).one();
  }

  private writeCtrl(c: CtrlColumns): void {
    this.sql.exec(
      `INSERT OR REPLACE INTO controller (id, ${CTRL_COLUMNS.join(', ')}) VALUES (1, ${CTRL_COLUMNS.map(() => '?').join(', ')})`,
      ...CTRL_COLUMNS.map((k) => c[k]),
    );
  }

  /**
   * Persists one step atomically: the turn row's state except the STM's slots (it keeps them as the turn
   * started), and the step's record with the slots it wrote, replayed in order on resume.
   */
  private commitStep(state: GenerationState, record: StepRecord, prev: GenerationState, dim: number): void {
    const gen = encodeStep(state);
    const delta = encodeStmDelta(prev.ctrl.stm, state.ctrl.stm, dim);
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        `UPDATE turn SET ${STEP_GEN_COLUMNS.map((c) => `${c} = ?`).join(', ')}, error = NULL WHERE id = 1`,
        ...STEP_GEN_COLUMNS.map((c) => gen[c]),
      );
      this.sql.exec(
        'INSERT INTO turn_steps (idx, record, stm_delta) VALUES (?, ?, ?)',
        record.index,
        JSON.stringify(record),
        delta,
      );
    });
  }

  private async runTurn(
    session: SessionRow,
    services: Services,
    ch: EventChannel,
    trace: boolean,
    resumed: boolean,
  ): Promise<void> {
    const { config, edge } = services;
    const turn = this.pendingTurn()!;
    const options: TurnOptions = JSON.parse(turn.options);
    const memory: MemoryChoice = JSON.parse(session.memory);
    const state = decodeGen(turn, config);
    const dim = config.memory.dim;
    const stored = this.sql
      .exec<{ record: string; stm_delta: Blob | null }>(
        'SELECT record, stm_delta FROM turn_steps ORDER BY idx',
      )
      .toArray();
    for (const r of stored) if (r.stm_delta) applyStmDelta(state.ctrl.stm, r.stm_delta, dim);
    const records = stored.map((r) => JSON.parse(r.record) as StepRecord);
    const tokens = blobTokens(turn.prompt);
    const emit = (e: TurnEvent) => ch.push(e);
    const genOptions: GenerateOptions = {
      ...DEFAULT_GENERATE_OPTIONS,
      maxTokens: options.maxTokens,
      temperature: options.temperature,
      topP: options.topP,
      seed: options.seed,
      stop: options.stop,
      ltmTopN: options.recall,
    };
    const ltm = guardedLtm(memoryStore(this.env, session.tenant, memory.namespace));
    const text = TurnText.replay(options.stop, state.reasoning, state.answer);
    this.active = true;
    try {
      const experts = services.experts();
      emit({
        type: 'start',
        id: turn.completion_id,
        created: turn.created,
        model: session.model,
        promptTokens: tokens.length,
        droppedMessages: turn.dropped,
        seed: options.seed,
        sessionId: session.session_id,
        ...(resumed ? { resumedAt: state.steps } : {}),
      });
      if (resumed) {
        if (trace)
          for (const r of records) emit({ type: 'delta', reasoning: '', content: '', step: traceOf(r) });
        const sofar = text.pending();
        if (sofar.reasoning || sofar.content) emit({ type: 'delta', ...sofar });
      }
      const final = await runSteps(
        {
          config,
          edge,
          experts,
          prompt: { tokens, digest: await promptDigest(tokens) },
          sessionId: session.session_id,
          requestId: turn.completion_id,
          options: genOptions,
          ltm: options.recall > 0 ? ltm : undefined,
        },
        state,
        records,
        text,
        trace,
        {
          commit: (s, r, prev) => this.commitStep(s, r, prev, dim),
          emit,
          cancelled: () => (this.deleting ? 'the session was deleted while this turn ran' : null),
        },
      );
      finishTurn(final, records, tokens.length, text, emit, (full) =>
        this.commitTurn(turn, final, full, records.length, tokens.length),
      );
      if (options.write) {
        const full = text.full();
        await rememberTurn(config, edge, ltm, final, snippetOf(turn.user, full.content)).catch((e) =>
          console.error(
            `session ${session.session_id}: long-term memory write failed: ${(e as Error).message}`,
          ),
        );
      }
      // The next turn has a new prompt, so this turn's prompt caches on the expert tier are done with.
      experts.dropSession?.(session.session_id).catch(() => undefined);
    } catch (e) {
      const err = toApiError(e);
      if (this.pendingTurn())
        this.sql.exec('UPDATE turn SET error = ? WHERE id = 1', `${err.code ?? 'error'}: ${err.message}`);
      throw err;
    } finally {
      this.active = false;
    }
  }

  /** The turn becomes part of the conversation: messages, controller state and totals, atomically. */
  private commitTurn(
    turn: TurnRow,
    final: GenerationState,
    full: { reasoning: string; content: string },
    steps: number,
    promptTokens: number,
  ): void {
    const now = Math.floor(Date.now() / 1000);
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("INSERT INTO messages (role, content, created) VALUES ('user', ?, ?)", turn.user, now);
      this.sql.exec(
        "INSERT INTO messages (role, content, reasoning, created) VALUES ('assistant', ?, ?, ?)",
        full.content,
        full.reasoning,
        now,
      );
      this.writeCtrl(encodeCtrl(final.ctrl));
      this.sql.exec(
        'UPDATE session SET turns = turns + 1, prompt_tokens = prompt_tokens + ?, completion_tokens = completion_tokens + ? WHERE id = 1',
        promptTokens,
        steps,
      );
      this.sql.exec('DELETE FROM turn');
      this.sql.exec('DELETE FROM turn_steps');
    });
  }
}
