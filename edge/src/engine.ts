// One turn of generation, shared by the stateless endpoint (in the Worker) and the SessionActor: render and
// check the prompt, run steps (each one validated, then persisted by the caller, then reported), and at the
// end write the turn into long-term memory.
import { renderChat, type ChatMessage, type RenderedPrompt } from '@switchyard/shared/chat';
import type { ModelConfig } from '@switchyard/shared/config';
import {
  generationStep,
  type GenerationState,
  type StepContext,
  type StepRecord,
} from '@switchyard/shared/generate';
import type { ControllerState, EdgeComputeBackend, LtmStore } from '@switchyard/shared/interfaces';
import { encodeText } from '@switchyard/shared/tokenizer';
import { ApiError, ContextLengthError, toApiError } from './errors.ts';
import type { DeltaEvent, StepTiming, TraceStep, TurnEvent, Usage } from './events.ts';
import type { TurnText } from './text.ts';

export function zeroState(config: ModelConfig): ControllerState {
  const H = config.controller.hidden;
  const S = config.memory.dim;
  const slots = config.memory.stm_slots;
  return {
    h: new Float32Array(H),
    c: new Float32Array(H),
    m: new Float32Array(H),
    stm: { keys: new Float32Array(slots * S), values: new Float32Array(slots * S), count: 0, next: 0 },
  };
}

const messageTokens = (m: ChatMessage) => encodeText(`${m.role}: ${m.content}\n`).length;

/**
 * The prompt for `messages`, within the model's limit Lmax. The newest message must fit whole (with <bos>
 * and its "role: " prefix); older messages are dropped from the front when `truncate`, else the request is
 * refused, saying by how much it is over.
 */
export function renderPrompt(
  messages: readonly ChatMessage[],
  maxPrompt: number,
  truncate: boolean,
  newestParam: string,
): RenderedPrompt {
  const r = renderChat(messages, maxPrompt);
  if (r.truncatedBytes > 0) {
    const need = 1 + messageTokens(messages[messages.length - 1]);
    throw new ContextLengthError(
      `${newestParam}: this message alone needs ${need} prompt tokens (1 per byte, plus <bos> and the "role: " prefix), ${need - maxPrompt} more than this model's limit of ${maxPrompt}`,
      newestParam,
    );
  }
  if (r.droppedMessages > 0 && !truncate) {
    const full = 1 + messages.reduce((a, m) => a + messageTokens(m), 0);
    throw new ContextLengthError(
      `messages: the prompt needs ${full} tokens (1 per byte, plus <bos> and a "role: " prefix per message), ${full - maxPrompt} more than this model's limit of ${maxPrompt}; shorten the messages, or set "switchyard": {"truncate": true} to drop the oldest ones`,
    );
  }
  return r;
}

export function traceOf(r: StepRecord): TraceStep {
  return {
    index: r.index,
    token: r.token,
    phase: r.phase,
    forced: r.forced,
    experts: r.experts,
    gates: r.gates,
    logits_checksum: r.logitsChecksum,
  };
}

export function usageOf(promptTokens: number, records: readonly StepRecord[]): Usage {
  const reasoning = records.filter((r) => r.phase === 'think').length;
  return {
    prompt_tokens: promptTokens,
    completion_tokens: records.length,
    total_tokens: promptTokens + records.length,
    completion_tokens_details: { reasoning_tokens: reasoning },
  };
}

/** The memory namespace was unreachable or refused a read or write. */
export class MemoryUnavailableError extends ApiError {
  override name = 'MemoryUnavailableError';
  constructor(message: string) {
    super(503, 'server_error', 'memory_unavailable', message, null, 1);
  }
}

export class TurnCancelledError extends ApiError {
  override name = 'TurnCancelledError';
  constructor(message: string) {
    super(409, 'invalid_request_error', 'turn_cancelled', message);
  }
}

/** Wraps a store so its failures reach the client as a 503 naming the memory, not a generic 500. */
export function guardedLtm(ltm: LtmStore): LtmStore {
  return {
    query: async (code, n) => {
      try {
        return await ltm.query(code, n);
      } catch (e) {
        throw new MemoryUnavailableError(
          `long-term memory: the recall query failed (${(e as Error).message})`,
        );
      }
    },
    write: async (code, entry) => {
      try {
        await ltm.write(code, entry);
      } catch (e) {
        throw new MemoryUnavailableError(`long-term memory: the write failed (${(e as Error).message})`);
      }
    },
  };
}

/** A step's result must be usable before anything is persisted: right sizes, finite numbers, a real token. */
export function checkStep(config: ModelConfig, s: GenerationState, r: StepRecord): void {
  const H = config.controller.hidden;
  const bad = (what: string) => {
    throw new ApiError(
      500,
      'server_error',
      'invalid_step',
      `step ${r.index}: ${what}; the step was not applied`,
    );
  };
  for (const [name, v] of [
    ['h', s.ctrl.h],
    ['c', s.ctrl.c],
    ['m', s.ctrl.m],
  ] as const) {
    if (v.length !== H) bad(`${name}: expected ${H} values, found ${v.length}`);
    for (let i = 0; i < v.length; i++)
      if (!Number.isFinite(v[i])) bad(`${name}[${i}] is ${v[i]}, expected finite`);
  }
  if (!Number.isInteger(r.token) || r.token < 0 || r.token >= config.vocab)
    bad(`token: expected an id in [0, ${config.vocab}), found ${r.token}`);
}

export interface StepHooks {
  /**
   * Persists the state after a step (`prev`: the state before it, already persisted). If it throws, the
   * turn stops and nothing of that step is reported.
   */
  commit?(state: GenerationState, record: StepRecord, prev: GenerationState): void | Promise<void>;
  emit(e: TurnEvent): void;
  /** Checked before each step: a deleted session or a gone client stops the turn. */
  cancelled?(): string | null;
}

const zeroTiming = (): StepTiming => ({ edge_us: 0, persist_us: 0, expert_us: 0 });
const since = (t0: number) => Math.round((performance.now() - t0) * 1000);

/**
 * The step context with its edge compute and expert backend timed into `clock` (the trace's `timing`): the
 * one place that sees both sides of the expert call, so the per-step latency can be split without the
 * generation loop knowing about clocks.
 */
function timedContext(ctx: StepContext, clock: { t: StepTiming }): StepContext {
  const { edge, experts } = ctx;
  const onEdge = async <T>(f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      clock.t.edge_us += since(t0);
    }
  };
  return {
    ...ctx,
    edge: {
      name: edge.name,
      controller: (s, y) => onEdge(() => edge.controller(s, y)),
      head: (h, m) => onEdge(() => edge.head(h, m)),
      ltmCode: (h) => onEdge(() => edge.ltmCode(h)),
    },
    experts: {
      name: experts.name,
      runExperts: async (call) => {
        const t0 = performance.now();
        const r = await experts.runExperts(call);
        clock.t.expert_us += since(t0);
        if (r.timing) {
          clock.t.tier_queue_us = r.timing.queueUs;
          clock.t.tier_compute_us = r.timing.computeUs;
        }
        return r;
      },
    },
  };
}

/** A step under way: its expert call made (or about to be), its result still to come. */
interface Flight {
  result: Promise<Awaited<ReturnType<typeof generationStep>>>;
  /** Settles once the step's expert requests are on the network, or the step has finished either way. */
  sent: Promise<void>;
  clock: { t: StepTiming };
}

function launch(ctx: StepContext, state: GenerationState, trace: boolean): Flight {
  const clock = { t: zeroTiming() };
  let markSent!: () => void;
  const sent = new Promise<void>((r) => (markSent = r));
  const timed = trace ? timedContext(ctx, clock) : ctx;
  const { experts } = timed;
  const result = generationStep(
    {
      ...timed,
      experts: {
        name: experts.name,
        runExperts: (call) => experts.runExperts({ ...call, onSent: markSent }),
      },
    },
    state,
  );
  // Also what keeps a dropped step's failure (its write before it failed) from going unhandled.
  const settled = result.then(
    () => undefined,
    () => undefined,
  );
  return { result, sent: Promise.race([sent, settled]), clock };
}

/**
 * Runs steps until the turn is done: step → validate → persist → report. A failing step throws an ApiError
 * and leaves every state the caller has seen (and persisted) as it was before that step.
 *
 * Step t+1's expert call is made before step t is persisted: a Durable Object holds its outgoing requests
 * until its writes are durable, so a call made after the write would wait for the flush at every step.
 * Nothing of step t+1 is reported or persisted before step t is, and if step t+1 fails, step t is still
 * persisted and reported first, exactly as when the steps ran one after the other.
 */
export async function runSteps(
  ctx: StepContext,
  initial: GenerationState,
  records: StepRecord[],
  text: TurnText,
  trace: boolean,
  hooks: StepHooks,
): Promise<GenerationState> {
  let state = initial;
  if (state.phase === 'done') return state;
  const why = hooks.cancelled?.();
  if (why) throw new TurnCancelledError(why);
  let flight = launch(ctx, state, trace);
  for (;;) {
    let r: Awaited<Flight['result']>;
    try {
      r = await flight.result;
    } catch (e) {
      throw toApiError(e);
    }
    checkStep(ctx.config, r.state, r.record);
    const more = r.state.phase !== 'done';
    const cancelled = more ? (hooks.cancelled?.() ?? null) : null;
    // Its result is awaited next round, or dropped if this step's write fails (`sent` handles a rejection).
    const next = more && !cancelled ? launch(ctx, r.state, trace) : undefined;
    if (next && hooks.commit) await next.sent;
    const t0 = performance.now();
    await hooks.commit?.(r.state, r.record, state);
    flight.clock.t.persist_us = hooks.commit ? since(t0) : 0;
    state = r.state;
    records.push(r.record);
    const d = text.push(r.record.token, r.record.phase);
    const ev: DeltaEvent = { type: 'delta', reasoning: d.reasoning, content: d.content };
    if (trace) ev.step = { ...traceOf(r.record), timing: flight.clock.t };
    hooks.emit(ev);
    if (cancelled) throw new TurnCancelledError(cancelled);
    if (!next) return state;
    flight = next;
  }
}

/**
 * Ends a turn: `commit` makes it durable first (a session's messages and state), then the held-back text and
 * `done`, with the whole text and the usage, are reported.
 */
export function finishTurn(
  state: GenerationState,
  records: readonly StepRecord[],
  promptTokens: number,
  text: TurnText,
  emit: (e: TurnEvent) => void,
  commit?: (full: { reasoning: string; content: string }) => void,
): { reasoning: string; content: string } {
  const last = text.pending(true);
  const full = text.full();
  commit?.(full);
  if (last.reasoning || last.content)
    emit({ type: 'delta', reasoning: last.reasoning, content: last.content });
  emit({
    type: 'done',
    finish: state.finish ?? 'length',
    usage: usageOf(promptTokens, records),
    reasoning: full.reasoning,
    content: full.content,
  });
  return full;
}

/**
 * Writes a finished turn into long-term memory: code(h_T), and the STM pair of its last step (W_k h_T,
 * W_v m_T). After step 1 the recall may have appended entries behind that pair, so a one-step turn
 * recomputes it.
 */
export async function rememberTurn(
  config: ModelConfig,
  edge: EdgeComputeBackend,
  ltm: LtmStore,
  state: GenerationState,
  snippet: string,
): Promise<void> {
  const { h, m, stm } = state.ctrl;
  const S = config.memory.dim;
  const slots = stm.keys.length / S;
  let key: Float32Array;
  let value: Float32Array;
  if (state.steps >= 2 && stm.count > 0) {
    const slot = (stm.next - 1 + slots) % slots;
    key = stm.keys.slice(slot * S, (slot + 1) * S);
    value = stm.values.slice(slot * S, (slot + 1) * S);
  } else {
    const out = await edge.head(h, m);
    key = out.stmKey;
    value = out.stmValue;
  }
  await ltm.write(await edge.ltmCode(h), { key, value, snippet });
}

export function snippetOf(user: string, answer: string): string {
  const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
  return `${clip(user, 200)} → ${clip(answer, 300)}`;
}
