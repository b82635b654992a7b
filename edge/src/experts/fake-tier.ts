// A stand-in for switchyard-gpu replicas behind a fake fetch, for the expert client's unit tests: it speaks the
// native protocol (with a prompt cache and NEED_PROMPT) and KServe V2 JSON, computes with the reference, and can
// be told to go down, answer with an error, stall, or forget its caches.
import {
  decodeStepRequest,
  encodeErrorFrame,
  encodeNeedPrompt,
  encodeStepResponse,
  WireErrorCode,
} from '@switchyard/shared/protocol/index';
import type { PromptCache, ReferenceModel } from '@switchyard/shared/reference';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, signRequest } from './hmac.ts';

export interface SeenRequest {
  replica: string;
  path: string;
  tokens: boolean;
  experts: number[];
  step: number;
  perExpert: boolean;
  signed: boolean;
}

export interface ReplicaBehaviour {
  down?: boolean;
  /** Answer every step with this ERROR frame code (and a matching HTTP status). */
  errorCode?: number;
  /** Never answer (the client's timeout must fire). */
  stall?: boolean;
  /** Experts this replica serves (default all). */
  experts?: number[];
  /** Answer with a frame that belongs to another request. */
  mismatch?: boolean;
}

/** A frame as a response body. */
const reply = (frame: Uint8Array, init?: ResponseInit) => new Response(frame as BodyInit, init);

const STATUS: Record<number, number> = { 1: 400, 2: 400, 3: 429, 4: 500, 5: 503 };

export class FakeTier {
  readonly seen: SeenRequest[] = [];
  readonly behaviour = new Map<string, ReplicaBehaviour>();
  private readonly caches = new Map<string, PromptCache>();

  constructor(
    private readonly model: ReferenceModel,
    private readonly secret: string | null = null,
  ) {}

  set(replica: string, b: ReplicaBehaviour): void {
    this.behaviour.set(replica, b);
  }

  forget(): void {
    this.caches.clear();
  }

  readonly fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    const replica = url.origin;
    const b = this.behaviour.get(replica) ?? {};
    if (b.down) throw new TypeError('connect ECONNREFUSED');
    if (b.stall)
      return new Promise((_, reject) =>
        init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))),
      );
    const headers = new Headers(init?.headers);
    const body =
      init?.body instanceof Uint8Array ? init.body : new TextEncoder().encode(String(init?.body ?? ''));
    let signed = false;
    if (this.secret) {
      const ts = headers.get(TIMESTAMP_HEADER);
      const sig = headers.get(SIGNATURE_HEADER);
      const want = ts
        ? (await signRequest(this.secret, init?.method ?? 'GET', url.pathname, body, Number(ts)))[
            SIGNATURE_HEADER
          ]
        : null;
      signed = !!sig && sig === want;
      if (!signed)
        return reply(
          encodeErrorFrame({ code: WireErrorCode.InvalidRequest, message: 'bad signature', requestId: '' }),
          {
            status: 401,
          },
        );
    }
    if (url.pathname === '/v2/health/ready') return new Response(null, { status: 200 });
    if (url.pathname === '/v1/drop') {
      this.seen.push({
        replica,
        path: url.pathname,
        tokens: false,
        experts: [],
        step: 0,
        perExpert: false,
        signed,
      });
      return new Response(null, { status: 204 });
    }
    if (url.pathname === '/v1/step') return this.step(replica, b, body, signed);
    const infer = /^\/v2\/models\/expert-(\d+)\/infer$/.exec(url.pathname);
    if (infer) return this.infer(replica, b, Number(infer[1]), body, signed);
    return new Response('not found', { status: 404 });
  };

  private step(replica: string, b: ReplicaBehaviour, body: Uint8Array, signed: boolean): Response {
    const req = decodeStepRequest(body);
    this.seen.push({
      replica,
      path: '/v1/step',
      tokens: !!req.tokens,
      experts: [...req.experts],
      step: req.step,
      perExpert: req.perExpert,
      signed,
    });
    if (b.errorCode)
      return reply(
        encodeErrorFrame({
          code: b.errorCode,
          message: `injected error ${b.errorCode}`,
          requestId: req.requestId,
        }),
        {
          status: STATUS[b.errorCode] ?? 500,
        },
      );
    const served = b.experts;
    if (served && req.experts.some((e) => !served.includes(e)))
      return reply(
        encodeErrorFrame({
          code: WireErrorCode.InvalidRequest,
          message: 'expert not hosted',
          requestId: req.requestId,
        }),
        {
          status: 400,
        },
      );
    const digest = Array.from(req.digest).join(',');
    const key = (e: number) => `${replica}|${req.sessionId}|${e}|${digest}`;
    if (!req.tokens && req.experts.some((e) => !this.caches.has(key(e))))
      return reply(
        encodeNeedPrompt({
          sessionId: req.sessionId,
          requestId: req.requestId,
          step: req.step,
          digest: req.digest,
        }),
      );
    const H = this.model.H;
    const outs = req.experts.map((e) => {
      let c = this.caches.get(key(e));
      if (!c) {
        c = this.model.expertPrefill(e, req.tokens!);
        this.caches.set(key(e), c);
      }
      return this.model.expertStep(e, req.h, c);
    });
    const values = new Float32Array(req.perExpert ? outs.length * H : H);
    outs.forEach((y, i) => {
      if (req.perExpert) values.set(y, i * H);
      else for (let j = 0; j < H; j++) values[j] += req.gates[i] * y[j];
    });
    return reply(
      encodeStepResponse({
        sessionId: req.sessionId,
        requestId: b.mismatch ? `${req.requestId}-other` : req.requestId,
        step: req.step,
        dtype: 'f32',
        perExpert: req.perExpert,
        experts: req.experts,
        queueUs: 3,
        computeUs: 7,
        values,
      }),
    );
  }

  private infer(
    replica: string,
    b: ReplicaBehaviour,
    e: number,
    body: Uint8Array,
    signed: boolean,
  ): Response {
    const json = JSON.parse(new TextDecoder().decode(body)) as {
      inputs: { name: string; shape: number[]; datatype: string; data: number[] }[];
    };
    const input = (n: string) => json.inputs.find((i) => i.name === n)!;
    const tokens = input('tokens').data;
    this.seen.push({
      replica,
      path: `/v2/models/expert-${e}/infer`,
      tokens: true,
      experts: [e],
      step: 0,
      perExpert: true,
      signed,
    });
    if (b.errorCode)
      return Response.json(
        { error: `injected error ${b.errorCode}` },
        { status: STATUS[b.errorCode] ?? 500 },
      );
    const y = this.model.expertStep(
      e,
      Float32Array.from(input('h').data),
      this.model.expertPrefill(e, tokens),
    );
    return Response.json({
      model_name: `expert-${e}`,
      outputs: [{ name: 'y', shape: [1, y.length], datatype: 'FP32', data: Array.from(y) }],
    });
  }
}
