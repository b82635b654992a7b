// What a turn reports while it runs, from the generation loop (in the Worker or a SessionActor) to the code
// that renders OpenAI responses (a SessionActor renders its own turns, so the Worker only relays the bytes).
import type { ApiErrorData } from './errors.ts';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  completion_tokens_details: { reasoning_tokens: number };
}

/** One step of the routing trace (the `switchyard` extension field). */
export interface TraceStep {
  index: number;
  token: number;
  phase: 'think' | 'answer';
  forced: boolean;
  experts: number[];
  gates: number[];
  logits_checksum: number;
  /** Where the step's time went; live steps only (a resumed turn's replayed steps have none). */
  timing?: StepTiming;
}

/**
 * One step's time, in microseconds, as the edge measured it. On Cloudflare the clock stands still while a
 * Worker computes (it advances only across I/O), so edge_us and persist_us read 0 there; in wrangler dev and
 * Node they are real. The expert round trip minus the tier's queue and compute is the network's share.
 */
export interface StepTiming {
  /** The edge compute: controller, gate, head (and the LTM code on step 1). */
  edge_us: number;
  /** Persisting the step (a session's SQLite transaction); 0 for a stateless completion. */
  persist_us: number;
  /** The expert call, sent to answered, retries included. */
  expert_us: number;
  /** Queued on the expert tier, from its STEP_RESPONSE (absent where the tier does not say, e.g. KServe). */
  tier_queue_us?: number;
  /** Computing on the expert tier (prefill included, on a cache miss), from its STEP_RESPONSE. */
  tier_compute_us?: number;
}

export interface StartEvent {
  type: 'start';
  id: string;
  created: number;
  model: string;
  promptTokens: number;
  /** Messages dropped from the front to fit the model's prompt limit. */
  droppedMessages: number;
  seed: number;
  sessionId?: string;
  /** Set when a SessionActor continues an interrupted turn: the steps it already had. */
  resumedAt?: number;
}

export interface DeltaEvent {
  type: 'delta';
  reasoning: string;
  content: string;
  step?: TraceStep;
}

export interface DoneEvent {
  type: 'done';
  finish: 'stop' | 'length';
  usage: Usage;
  reasoning: string;
  content: string;
}

export interface ErrorEvent {
  type: 'error';
  error: ApiErrorData;
}

export type TurnEvent = StartEvent | DeltaEvent | DoneEvent | ErrorEvent;

/** A queue of events with an async iterator; push never blocks (a turn must not wait on a slow client). */
export class EventChannel implements AsyncIterable<TurnEvent> {
  private readonly queue: TurnEvent[] = [];
  private waiting: ((v: IteratorResult<TurnEvent>) => void) | null = null;
  private ended = false;

  push(e: TurnEvent): void {
    if (this.ended) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w({ value: e, done: false });
    } else this.queue.push(e);
  }

  end(): void {
    this.ended = true;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<TurnEvent> {
    return {
      next: () => {
        const e = this.queue.shift();
        if (e) return Promise.resolve({ value: e, done: false });
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (this.waiting = resolve));
      },
    };
  }
}

/** A finished exchange as events, for results that are not streamed (errors before anything ran). */
export function errorEvents(error: ApiErrorData): AsyncIterable<TurnEvent> {
  const ch = new EventChannel();
  ch.push({ type: 'error', error });
  ch.end();
  return ch;
}
