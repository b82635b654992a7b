// How one shard replica is asked for experts' outputs: the native binary protocol (shared/PROTOCOL.md) or
// KServe V2 (stateless `expert-{e}` models, as Triton or KServe serve them). Transports report failures as
// AttemptError; whether to retry, fail over or give up is the router's decision.
import {
  decodeFrame,
  encodeDropSession,
  encodeStepRequest,
  WireErrorCode,
  type DecodeLimits,
} from '@switchyard/shared/protocol/index';
import type { PromptRef } from '@switchyard/shared/interfaces';
import { signRequest } from './hmac.ts';

export interface ShardCall {
  sessionId: string;
  requestId: string;
  step: number;
  prompt: PromptRef;
  experts: number[];
  gates: number[];
  h: Float32Array; // [H]
  /** Ask for each expert's output (K×H) instead of the gated mixture (H). */
  perExpert: boolean;
  /** Send the prompt tokens up front (a new prompt, or a replica that may not hold the cache). */
  withTokens: boolean;
  /** Called when this shard's request (each of them, for KServe) has been handed to fetch. */
  sent?: () => void;
}

/** A callback that calls `done` on its n-th call, and never again. */
export function afterCalls(n: number, done?: () => void): () => void {
  let left = n;
  return () => {
    if (--left === 0) done?.();
  };
}

export interface ShardResult {
  values: Float32Array; // perExpert ? [K, H] row-major : [H]
  queueUs: number;
  computeUs: number;
}

/** One failed attempt. `retryable` failures may succeed elsewhere or later; the others will not. */
export class AttemptError extends Error {
  override name = 'AttemptError';
  constructor(
    message: string,
    readonly retryable: boolean,
    /** The tier asked to back off (overloaded). */
    readonly overloaded = false,
  ) {
    super(message);
  }
}

export interface TransportDeps {
  fetch: typeof fetch;
  hmacSecret: string | null;
  wireDtype: 'f32' | 'f16';
  hidden: number;
  expertCount: number;
}

export interface ReplicaTransport {
  call(base: string, c: ShardCall, signal: AbortSignal): Promise<ShardResult>;
  drop(base: string, sessionId: string, signal: AbortSignal): Promise<void>;
  ready(base: string, signal: AbortSignal): Promise<boolean>;
}

async function post(
  deps: TransportDeps,
  base: string,
  path: string,
  body: Uint8Array | string,
  contentType: string,
  signal: AbortSignal,
  sent?: () => void,
): Promise<Response> {
  const url = new URL(base + path);
  const headers: Record<string, string> = { 'content-type': contentType };
  if (deps.hmacSecret)
    Object.assign(headers, await signRequest(deps.hmacSecret, 'POST', url.pathname + url.search, body));
  try {
    const res = deps.fetch(url.href, { method: 'POST', body: body as BodyInit, headers, signal });
    sent?.();
    return await res;
  } catch (e) {
    if (signal.aborted) throw new AttemptError('no answer before the timeout', true);
    throw new AttemptError(`unreachable (${(e as Error).message})`, true);
  }
}

async function readBody(res: Response, signal: AbortSignal): Promise<Uint8Array> {
  try {
    return new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    if (signal.aborted) throw new AttemptError('no answer before the timeout', true);
    throw new AttemptError(`the response broke off (${(e as Error).message})`, true);
  }
}

function statusRetryable(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

function authHint(status: number): string {
  return status === 401
    ? ': the expert tier refused the request signature; EXPERT_HMAC_SECRET must match the tier’s --secret'
    : '';
}

function checkValues(v: Float32Array, what: string): void {
  for (let i = 0; i < v.length; i++)
    if (!Number.isFinite(v[i]))
      throw new AttemptError(`${what}: expected finite values, found ${v[i]} at ${i}`, false);
}

export class NativeTransport implements ReplicaTransport {
  private readonly limits: DecodeLimits;
  constructor(private readonly deps: TransportDeps) {
    this.limits = { hidden: deps.hidden, maxExperts: deps.expertCount };
  }

  async call(base: string, c: ShardCall, signal: AbortSignal): Promise<ShardResult> {
    const first = await this.once(base, c, c.withTokens, signal);
    if (first !== 'need-prompt') return first;
    // The replica lost (or never had) this prompt's cache: the same request with the tokens always succeeds.
    const second = await this.once(base, c, true, signal);
    if (second === 'need-prompt')
      throw new AttemptError('asked for the prompt tokens although the request carried them', false);
    return second;
  }

  private async once(
    base: string,
    c: ShardCall,
    withTokens: boolean,
    signal: AbortSignal,
  ): Promise<ShardResult | 'need-prompt'> {
    const body = encodeStepRequest({
      sessionId: c.sessionId,
      requestId: c.requestId,
      step: c.step,
      digest: c.prompt.digest,
      hDtype: this.deps.wireDtype,
      responseDtype: 'f32',
      perExpert: c.perExpert,
      experts: c.experts,
      gates: c.gates,
      h: c.h,
      tokens: withTokens ? c.prompt.tokens : undefined,
    });
    const res = await post(this.deps, base, '/v1/step', body, 'application/octet-stream', signal, c.sent);
    const bytes = await readBody(res, signal);
    let frame;
    try {
      frame = decodeFrame(bytes, this.limits);
    } catch (e) {
      if (!res.ok)
        throw new AttemptError(
          `HTTP ${res.status} without a readable frame${authHint(res.status)}`,
          statusRetryable(res.status),
        );
      throw new AttemptError(`the answer is not a valid frame (${(e as Error).message})`, false);
    }
    switch (frame.type) {
      case 'need-prompt':
        return 'need-prompt';
      case 'error': {
        const code = frame.code;
        const what = `error ${code} (HTTP ${res.status}): ${frame.message}${authHint(res.status)}`;
        if (code === WireErrorCode.BadFrame || code === WireErrorCode.InvalidRequest)
          throw new AttemptError(what, false);
        throw new AttemptError(what, true, code === WireErrorCode.Overloaded);
      }
      case 'step-response': {
        const same =
          frame.sessionId === c.sessionId &&
          frame.requestId === c.requestId &&
          frame.step === c.step &&
          frame.perExpert === c.perExpert &&
          frame.experts.length === c.experts.length &&
          frame.experts.every((e, i) => e === c.experts[i]);
        if (!same)
          throw new AttemptError(
            `the answer does not match the request: expected session ${c.sessionId} request ${c.requestId} step ${c.step} experts [${c.experts}]${c.perExpert ? ' per expert' : ''}, found session ${frame.sessionId} request ${frame.requestId} step ${frame.step} experts [${frame.experts}]${frame.perExpert ? ' per expert' : ''}`,
            false,
          );
        return { values: frame.values, queueUs: frame.queueUs, computeUs: frame.computeUs };
      }
      default:
        throw new AttemptError(
          `expected a STEP_RESPONSE, NEED_PROMPT or ERROR frame, found ${frame.type}`,
          false,
        );
    }
  }

  async drop(base: string, sessionId: string, signal: AbortSignal): Promise<void> {
    const res = await post(
      this.deps,
      base,
      '/v1/drop',
      encodeDropSession({ sessionId }),
      'application/octet-stream',
      signal,
    );
    await res.arrayBuffer().catch(() => undefined);
  }

  async ready(base: string, signal: AbortSignal): Promise<boolean> {
    return kserveReady(this.deps, base, signal);
  }
}

async function kserveReady(deps: TransportDeps, base: string, signal: AbortSignal): Promise<boolean> {
  try {
    const res = await deps.fetch(`${base}/v2/health/ready`, { signal });
    await res.arrayBuffer().catch(() => undefined);
    return res.ok;
  } catch {
    return false;
  }
}

interface V2Output {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  data?: unknown;
}

/**
 * KServe V2 / Triton: one stateless `expert-{e}` call per routed expert (prefill and step together, so the
 * prompt travels every step), JSON tensors. Mixing happens at the edge.
 */
export class KServeTransport implements ReplicaTransport {
  constructor(private readonly deps: TransportDeps) {}

  async call(base: string, c: ShardCall, signal: AbortSignal): Promise<ShardResult> {
    const H = this.deps.hidden;
    const sent = afterCalls(c.experts.length, c.sent);
    const outs = await Promise.all(c.experts.map((e) => this.expert(base, e, { ...c, sent }, signal)));
    const values = new Float32Array(c.perExpert ? c.experts.length * H : H);
    outs.forEach((y, i) => {
      if (c.perExpert) values.set(y, i * H);
      else for (let j = 0; j < H; j++) values[j] += c.gates[i] * y[j];
    });
    return { values, queueUs: 0, computeUs: 0 };
  }

  private async expert(base: string, e: number, c: ShardCall, signal: AbortSignal): Promise<Float32Array> {
    const H = this.deps.hidden;
    const L = c.prompt.tokens.length;
    const body = JSON.stringify({
      id: `${c.requestId}/${c.step}/${e}`,
      inputs: [
        { name: 'tokens', shape: [1, L], datatype: 'INT64', data: Array.from(c.prompt.tokens) },
        { name: 'prompt_len', shape: [1], datatype: 'INT64', data: [L] },
        { name: 'h', shape: [1, H], datatype: 'FP32', data: Array.from(c.h) },
      ],
      outputs: [{ name: 'y' }],
    });
    const res = await post(
      this.deps,
      base,
      `/v2/models/expert-${e}/infer`,
      body,
      'application/json',
      signal,
      c.sent,
    );
    const text = new TextDecoder().decode(await readBody(res, signal));
    let json: { outputs?: V2Output[]; error?: unknown };
    try {
      json = JSON.parse(text);
    } catch {
      throw new AttemptError(
        `expert-${e}: HTTP ${res.status}, expected a JSON body, found ${JSON.stringify(text.slice(0, 80))}`,
        !res.ok && statusRetryable(res.status),
      );
    }
    if (!res.ok)
      throw new AttemptError(
        `expert-${e}: HTTP ${res.status}: ${typeof json.error === 'string' ? json.error : text.slice(0, 200)}${authHint(res.status)}`,
        statusRetryable(res.status),
        res.status === 429,
      );
    const y = json.outputs?.find((o) => o.name === 'y');
    if (!y) throw new AttemptError(`expert-${e}: expected an output named "y", found none`, false);
    const shapeOk = Array.isArray(y.shape) && y.shape.length === 2 && y.shape[0] === 1 && y.shape[1] === H;
    if (!shapeOk || y.datatype !== 'FP32' || !Array.isArray(y.data) || y.data.length !== H)
      throw new AttemptError(
        `expert-${e}: expected output y FP32 [1, ${H}], found ${String(y.datatype)} ${JSON.stringify(y.shape)} with ${
          Array.isArray(y.data) ? y.data.length : 'no'
        } values`,
        false,
      );
    const out = Float32Array.from(y.data as number[]);
    checkValues(out, `expert-${e} output y`);
    return out;
  }

  async drop(): Promise<void> {
    // Stateless models keep no per-session state.
  }

  async ready(base: string, signal: AbortSignal): Promise<boolean> {
    return kserveReady(this.deps, base, signal);
  }
}
