// The HTTP side of the reliability suite and the load run, free of vitest: an API client for the edge, a
// reader for chat completions (streamed or not) and a client that waits out Retry-After as it should.
import { createHash } from 'node:crypto';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>;

export const MODEL_NAME = 'switchyard-tiny';
/** Long-term memory off: recall would make answers depend on what earlier requests wrote. */
export const NO_MEMORY = { recall: 0, write: false };

export const sha256Hex = (s: string) => createHash('sha256').update(s).digest('hex');

export interface KeySpec {
  key: string;
  tenant: string;
  rpm?: number;
  burst?: number;
}

/** The API_KEYS secret for these keys: digests only, as deployed. */
export function apiKeysVar(keys: readonly KeySpec[]): string {
  return JSON.stringify(
    keys.map((k) => ({
      sha256: sha256Hex(k.key),
      tenant: k.tenant,
      ...(k.rpm !== undefined ? { rpm: k.rpm } : {}),
      ...(k.burst !== undefined ? { burst: k.burst } : {}),
    })),
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------------------ the API

export interface ApiResult {
  status: number;
  headers: Headers;
  text: string;
  body: Json;
}

export class Api {
  constructor(
    readonly base: string,
    readonly key?: string,
  ) {}

  withKey(key?: string): Api {
    return new Api(this.base, key);
  }

  /** `body`: a value sent as JSON, or raw bytes/text sent as they are. */
  request(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    const h: Record<string, string> = { ...headers };
    if (this.key !== undefined && !('authorization' in h)) h.authorization = `Bearer ${this.key}`;
    let payload: BodyInit | undefined;
    if (body instanceof Uint8Array || typeof body === 'string') payload = body as BodyInit;
    else if (body !== undefined) payload = JSON.stringify(body);
    if (payload !== undefined && !('content-type' in h)) h['content-type'] = 'application/json';
    return fetch(this.base + path, { method, headers: h, body: payload });
  }

  post(path: string, body?: unknown, headers?: Record<string, string>): Promise<Response> {
    return this.request('POST', path, body, headers);
  }

  /** The whole response read: status, headers, text and (when it is JSON) the parsed body. */
  async call(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<ApiResult> {
    const res = await this.request(method, path, body, headers);
    const text = await res.text();
    let parsed: Json = {};
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: the caller looks at text
    }
    return { status: res.status, headers: res.headers, text, body: parsed };
  }

  async createSession(extra: Json = {}): Promise<string> {
    const r = await this.call('POST', '/v1/sessions', {
      model: MODEL_NAME,
      switchyard: { memory: NO_MEMORY },
      ...extra,
    });
    if (r.status !== 200) throw new Error(`POST /v1/sessions: expected 200, found ${r.status}: ${r.text}`);
    return r.body.id as string;
  }

  async session(id: string): Promise<Json> {
    const r = await this.call('GET', `/v1/sessions/${id}`);
    if (r.status !== 200)
      throw new Error(`GET /v1/sessions/${id}: expected 200, found ${r.status}: ${r.text}`);
    return r.body;
  }
}

// ------------------------------------------------------------------------------------------------ streams

export interface StreamResult {
  status: number;
  headers: Headers;
  reasoning: string;
  content: string;
  steps: Json[];
  finish: string | null;
  /** The `switchyard` object of the finish chunk. */
  ext: Json | null;
  usage: Json | null;
  /** `data: [DONE]` arrived. */
  done: boolean;
  /** An error: the response's own (status ≠ 200) or a `data: {"error": …}` event. */
  error: Json | null;
  /** The connection broke before the stream ended. */
  broken: string | null;
}

/** Reads a chat completion, streamed (SSE) or not, into one shape; `onText` hears each streamed text delta. */
export async function readTurn(res: Response, onText?: () => void): Promise<StreamResult> {
  const r: StreamResult = {
    status: res.status,
    headers: res.headers,
    reasoning: '',
    content: '',
    steps: [],
    finish: null,
    ext: null,
    usage: null,
    done: false,
    error: null,
    broken: null,
  };
  const type = res.headers.get('content-type') ?? '';
  if (res.status !== 200 || !type.startsWith('text/event-stream')) {
    const body = (await res.json()) as Json;
    if (res.status !== 200) {
      r.error = body.error ?? body;
      return r;
    }
    const c = body.choices[0];
    r.reasoning = c.message.reasoning_content ?? '';
    r.content = c.message.content ?? '';
    r.finish = c.finish_reason;
    r.ext = body.switchyard ?? null;
    r.steps = body.switchyard?.steps ?? [];
    r.usage = body.usage;
    r.done = true;
    return r;
  }
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  const take = (event: string) => {
    const data = event
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => l.slice(6))
      .join('\n');
    if (!data) return;
    if (data === '[DONE]') {
      r.done = true;
      return;
    }
    const chunk = JSON.parse(data) as Json;
    if (chunk.error) {
      r.error = chunk.error;
      return;
    }
    if (chunk.usage) r.usage = chunk.usage;
    const c = chunk.choices?.[0];
    if (!c) return;
    if (c.delta?.reasoning_content || c.delta?.content) onText?.();
    r.reasoning += c.delta?.reasoning_content ?? '';
    r.content += c.delta?.content ?? '';
    if (chunk.switchyard?.steps) r.steps.push(...chunk.switchyard.steps);
    if (c.finish_reason) {
      r.finish = c.finish_reason;
      r.ext = chunk.switchyard ?? null;
    }
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        take(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    }
  } catch (e) {
    r.broken = (e as Error).message;
  }
  return r;
}

export const tokensOf = (steps: readonly Json[]): number[] => steps.map((s) => s.token as number);

/**
 * Sends `send` until it is not a 503/429, waiting each response's Retry-After as a client should; gives up
 * after `timeoutMs`. Returns the last response and how many refusals came first.
 */
export async function withRetryAfter(
  send: () => Promise<Response>,
  timeoutMs = 30_000,
): Promise<{ res: Response; refusals: number }> {
  const deadline = Date.now() + timeoutMs;
  let refusals = 0;
  for (;;) {
    const res = await send();
    if ((res.status !== 503 && res.status !== 429) || Date.now() > deadline) return { res, refusals };
    refusals++;
    const wait = Number(res.headers.get('retry-after') ?? '1');
    await res.body?.cancel();
    await sleep(Math.min(5, Number.isFinite(wait) ? wait : 1) * 1000);
  }
}
