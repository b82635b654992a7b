// The edge's side of the native protocol: an ExpertBackend that asks a switchyard-gpu server over fetch,
// signs every request, and answers NEED_PROMPT by resending with the prompt tokens. Runtime-free (fetch and
// crypto.subtle only), so the edge Worker uses this same code.
import type { ExpertBackend, ExpertCall, ExpertResult } from '@switchyard/shared/interfaces';
import {
  decodeFrame,
  encodeDropSession,
  encodeStepRequest,
  WireErrorCode,
  type NeedPrompt,
  type StepRequest,
  type StepResponse,
  type WireDtype,
} from '@switchyard/shared/protocol/index';
import { signRequest } from './auth.ts';

export interface GpuClientOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8700. */
  url: string;
  /** The shared secret; leave it out only for a server started with --insecure-no-auth. */
  secret?: string;
  fetch?: typeof fetch;
  /** How h travels (default f32: exact). */
  hDtype?: WireDtype;
  /** How the answer travels (default f32: exact). */
  responseDtype?: WireDtype;
  /**
   * Send the prompt tokens with the first step of each new (session, prompt), saving the NEED_PROMPT round
   * trip (default true). Either way a NEED_PROMPT is answered by resending with the tokens.
   */
  tokensUpFront?: boolean;
  /** Retries after 429 Overloaded, waiting Retry-After (default 3). */
  maxRetries?: number;
  /** Longest wait between retries, in ms (default 5000). */
  maxRetryDelayMs?: number;
}

/** A request the tier refused or failed: its HTTP status and the ERROR frame's code and message. */
export class GpuTierError extends Error {
  override name = 'GpuTierError';
  constructor(
    message: string,
    readonly status: number,
    /** WireErrorCode; unknown codes read as Internal. */
    readonly code: number,
    readonly requestId: string,
  ) {
    super(message);
  }
}

export interface ClientStats {
  requests: number;
  needPrompt: number;
  retries: number;
}

/** Signs and sends requests to a switchyard-gpu server; the KServe and native clients both use it. */
export class TierHttp {
  private readonly base: string;
  private readonly fetch: typeof fetch;
  private lastStamp = 0;

  constructor(
    url: string,
    private readonly secret?: string,
    fetchImpl?: typeof fetch,
  ) {
    this.base = url.replace(/\/+$/, '');
    this.fetch = fetchImpl ?? ((input, init) => fetch(input, init));
  }

  async request(
    method: 'GET' | 'POST',
    path: string,
    body?: Uint8Array | string,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    const url = this.base + path;
    const h: Record<string, string> = { ...headers };
    if (this.secret !== undefined) {
      // Strictly increasing stamps: two identical bodies sent in the same millisecond must not look like
      // a replay of each other.
      this.lastStamp = Math.max(Date.now(), this.lastStamp + 1);
      const target = new URL(url);
      Object.assign(
        h,
        await signRequest(this.secret, method, target.pathname + target.search, body ?? '', this.lastStamp),
      );
    }
    return this.fetch(url, { method, headers: h, body: body as BodyInit | undefined });
  }
}

const KNOWN_PROMPTS_MAX = 10_000;

function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class GpuExpertClient implements ExpertBackend {
  readonly name = 'switchyard-gpu';
  readonly stats: ClientStats = { requests: 0, needPrompt: 0, retries: 0 };
  private readonly http: TierHttp;
  /**
   * session → the prompt digest and the experts the server has had its tokens for. A step routed to an
   * expert not in the set sends the tokens up front: that expert's cache cannot exist yet.
   */
  private readonly sent = new Map<string, { digest: string; experts: Set<number> }>();

  constructor(private readonly o: GpuClientOptions) {
    this.http = new TierHttp(o.url, o.secret, o.fetch);
  }

  async runExperts(call: ExpertCall): Promise<ExpertResult> {
    const r = await this.step(call);
    return { mixture: r.values, timing: { queueUs: r.queueUs, computeUs: r.computeUs } };
  }

  /** One step; with perExpert the values are [K, H], row i for call.experts[i]. */
  async step(call: ExpertCall, opts: { perExpert?: boolean } = {}): Promise<StepResponse> {
    const digest = hex(call.prompt.digest);
    const known = this.sent.get(call.sessionId);
    const upFront =
      (this.o.tokensUpFront ?? true) &&
      (known?.digest !== digest || call.experts.some((e) => !known.experts.has(e)));
    const req: Omit<StepRequest, 'type'> = {
      sessionId: call.sessionId,
      requestId: call.requestId,
      step: call.step,
      digest: call.prompt.digest,
      hDtype: this.o.hDtype ?? 'f32',
      responseDtype: this.o.responseDtype ?? 'f32',
      perExpert: opts.perExpert ?? false,
      experts: call.experts,
      gates: call.gates,
      h: call.h,
      tokens: upFront ? call.prompt.tokens : undefined,
    };
    let answer = await this.send(req);
    if (answer.type === 'need-prompt') {
      this.stats.needPrompt++;
      answer = await this.send({ ...req, tokens: call.prompt.tokens });
      if (answer.type === 'need-prompt')
        throw new GpuTierError(
          'NEED_PROMPT for a request that carried its tokens: expected a STEP_RESPONSE (the server broke the protocol)',
          200,
          WireErrorCode.Internal,
          call.requestId,
        );
    }
    if (
      answer.sessionId !== call.sessionId ||
      answer.requestId !== call.requestId ||
      answer.step !== call.step
    )
      throw new GpuTierError(
        `STEP_RESPONSE for ${answer.sessionId}/${answer.requestId}/${answer.step}: expected ${call.sessionId}/${call.requestId}/${call.step}`,
        200,
        WireErrorCode.Internal,
        call.requestId,
      );
    this.remember(call.sessionId, digest, call.experts);
    return answer;
  }

  async dropSession(sessionId: string): Promise<void> {
    this.sent.delete(sessionId);
    const res = await this.http.request('POST', '/v1/drop', encodeDropSession({ sessionId }), {
      'content-type': 'application/octet-stream',
    });
    if (!res.ok) throw await this.failure(res, '');
    await res.arrayBuffer();
  }

  private remember(sessionId: string, digest: string, experts: readonly number[]): void {
    const known = this.sent.get(sessionId);
    const entry = known?.digest === digest ? known : { digest, experts: new Set<number>() };
    for (const e of experts) entry.experts.add(e);
    this.sent.delete(sessionId);
    this.sent.set(sessionId, entry);
    if (this.sent.size > KNOWN_PROMPTS_MAX) this.sent.delete(this.sent.keys().next().value!);
  }

  private async send(req: Omit<StepRequest, 'type'>): Promise<StepResponse | NeedPrompt> {
    const body = encodeStepRequest(req);
    const retries = this.o.maxRetries ?? 3;
    for (let attempt = 0; ; attempt++) {
      this.stats.requests++;
      const res = await this.http.request('POST', '/v1/step', body, {
        'content-type': 'application/octet-stream',
      });
      if (res.status === 429 && attempt < retries) {
        this.stats.retries++;
        await res.arrayBuffer();
        const after = Number(res.headers.get('retry-after'));
        await sleep(
          Math.min(
            this.o.maxRetryDelayMs ?? 5000,
            Number.isFinite(after) ? after * 1000 : 100 * 2 ** attempt,
          ),
        );
        continue;
      }
      if (!res.ok) throw await this.failure(res, req.requestId);
      const frame = decodeFrame(new Uint8Array(await res.arrayBuffer()));
      if (frame.type === 'step-response' || frame.type === 'need-prompt') return frame;
      throw new GpuTierError(
        `POST /v1/step answered a ${frame.type} frame: expected step-response or need-prompt`,
        res.status,
        WireErrorCode.Internal,
        req.requestId,
      );
    }
  }

  private async failure(res: Response, requestId: string): Promise<GpuTierError> {
    const bytes = new Uint8Array(await res.arrayBuffer());
    try {
      const f = decodeFrame(bytes);
      if (f.type === 'error')
        return new GpuTierError(f.message, res.status, f.code, f.requestId || requestId);
    } catch {
      // not a frame: a proxy or another server answered; report its text below
    }
    const text = new TextDecoder().decode(bytes.subarray(0, 300));
    return new GpuTierError(
      `HTTP ${res.status} without an ERROR frame: ${text}`,
      res.status,
      WireErrorCode.Internal,
      requestId,
    );
  }
}
