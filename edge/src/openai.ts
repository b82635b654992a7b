// Renders a turn's events as an OpenAI chat completion: one JSON object, or server-sent events of
// chat.completion.chunk objects ending with `data: [DONE]`. The reasoning goes in `reasoning_content` (as
// DeepSeek's API does), the answer in `content`; the `switchyard` field carries the extras.
import { ApiError, errorBody, errorResponse, type ApiErrorData } from './errors.ts';
import type { StartEvent, TraceStep, TurnEvent } from './events.ts';

export interface RenderOptions {
  stream: boolean;
  includeUsage: boolean;
  trace: boolean;
  /** Extra fields for the `switchyard` extension object (e.g. session_id). */
  extension?: Record<string, unknown>;
  /** Response headers to add (rate-limit headers). */
  headers?: Record<string, string>;
  /** Called when a streaming client goes away. */
  onCancel?: () => void;
}

const interrupted: ApiErrorData = {
  status: 503,
  type: 'server_error',
  code: 'turn_interrupted',
  message:
    'the turn stopped before it finished (the edge was restarted or evicted); for a session, POST /v1/sessions/{id}/resume continues it',
  param: null,
  retryAfter: 1,
};

function extensionOf(start: StartEvent, o: RenderOptions, steps?: TraceStep[]): Record<string, unknown> {
  const ext: Record<string, unknown> = { seed: start.seed, ...o.extension };
  if (start.sessionId) ext.session_id = start.sessionId;
  if (start.droppedMessages) ext.dropped_messages = start.droppedMessages;
  if (start.resumedAt !== undefined) ext.resumed_at_step = start.resumedAt;
  if (steps) ext.steps = steps;
  return ext;
}

/** Builds the HTTP response. Errors before the first step become a plain error response with their status. */
export async function renderTurn(events: AsyncIterable<TurnEvent>, o: RenderOptions): Promise<Response> {
  const it = events[Symbol.asyncIterator]();
  const next = async (): Promise<TurnEvent | null> => {
    const r = await it.next();
    return r.done ? null : r.value;
  };
  const first = await next();
  if (!first) return errorResponse(ApiError.fromData(interrupted));
  if (first.type === 'error') return errorResponse(first.error, o.headers);
  if (first.type !== 'start') throw new Error(`turn events: expected start first, found ${first.type}`);
  const start = first;
  // Wait for the first step before committing to a 200, so a dead expert tier is a 503, streamed or not.
  const second = await next();
  if (!second) return errorResponse(ApiError.fromData(interrupted), o.headers);
  if (second.type === 'error') return errorResponse(second.error, o.headers);
  return o.stream ? streamResponse(start, second, next, o) : jsonResponse(start, second, next, o);
}

async function jsonResponse(
  start: StartEvent,
  first: TurnEvent,
  next: () => Promise<TurnEvent | null>,
  o: RenderOptions,
): Promise<Response> {
  const steps: TraceStep[] = [];
  for (let e: TurnEvent | null = first; ; e = await next()) {
    if (!e) return errorResponse(ApiError.fromData(interrupted), o.headers);
    if (e.type === 'error') return errorResponse(e.error, o.headers);
    if (e.type === 'delta' && e.step) steps.push(e.step);
    if (e.type === 'done') {
      const body = {
        id: start.id,
        object: 'chat.completion',
        created: start.created,
        model: start.model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: e.content, reasoning_content: e.reasoning, refusal: null },
            logprobs: null,
            finish_reason: e.finish,
          },
        ],
        usage: e.usage,
        system_fingerprint: null,
        switchyard: extensionOf(start, o, o.trace ? steps : undefined),
      };
      return new Response(JSON.stringify(body), {
        headers: { 'content-type': 'application/json', ...o.headers },
      });
    }
  }
}

function streamResponse(
  start: StartEvent,
  first: TurnEvent,
  next: () => Promise<TurnEvent | null>,
  o: RenderOptions,
): Response {
  const encoder = new TextEncoder();
  const base = { id: start.id, object: 'chat.completion.chunk', created: start.created, model: start.model };
  const chunk = (
    delta: Record<string, unknown>,
    finish: string | null,
    extra: Record<string, unknown> = {},
  ) => ({
    ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(o.includeUsage ? { usage: null } : {}),
    ...extra,
  });
  const sse = (data: unknown) =>
    encoder.encode(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  let pending: TurnEvent | null = first;
  let opened = false;
  let closed = false;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (closed) return;
      if (!opened) {
        opened = true;
        controller.enqueue(sse(chunk({ role: 'assistant', content: '' }, null)));
        return;
      }
      // Emit the next event that produces output (empty deltas without a trace produce none).
      for (;;) {
        const e = pending ?? (await next());
        pending = null;
        if (!e) {
          controller.enqueue(sse(errorBody(interrupted)));
          closed = true;
          controller.close();
          return;
        }
        if (e.type === 'error') {
          controller.enqueue(sse(errorBody(e.error)));
          closed = true;
          controller.close();
          return;
        }
        if (e.type === 'delta') {
          const delta: Record<string, unknown> = {};
          if (e.reasoning) delta.reasoning_content = e.reasoning;
          if (e.content) delta.content = e.content;
          if (!e.reasoning && !e.content && !e.step) continue;
          controller.enqueue(sse(chunk(delta, null, e.step ? { switchyard: { steps: [e.step] } } : {})));
          return;
        }
        if (e.type === 'done') {
          controller.enqueue(sse(chunk({}, e.finish, { switchyard: extensionOf(start, o) })));
          if (o.includeUsage) controller.enqueue(sse({ ...base, choices: [], usage: e.usage }));
          controller.enqueue(sse('[DONE]'));
          closed = true;
          controller.close();
          return;
        }
      }
    },
    cancel() {
      closed = true;
      o.onCancel?.();
    },
  });
  return new Response(body, {
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      ...o.headers,
    },
  });
}
