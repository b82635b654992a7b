// The HTTP layer on node:http: routing, bounded body reading, request signing checks, draining, metrics,
// and the one place where errors become responses (ERROR frames on the native endpoints, JSON elsewhere).
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { encodeErrorFrame, MAX_ID_BYTES, ProtocolError } from '@switchyard/shared';
import { AuthError, SIGNATURE_HEADER, TIMESTAMP_HEADER, type RequestVerifier } from './auth.ts';
import {
  BadRequestError,
  HttpError,
  InternalError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  ShuttingDownError,
  UnauthorizedError,
} from './errors.ts';
import type { ServerMetrics } from './metrics.ts';

export interface Request {
  method: string;
  /** The path without the query. */
  path: string;
  /** Path and query as sent: what a signature covers. */
  target: string;
  headers: IncomingHttpHeaders;
  body: Uint8Array;
  params: Record<string, string>;
}

export interface Response {
  status: number;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
}

export type Handler = (req: Request) => Promise<Response> | Response;

export interface Route {
  method: 'GET' | 'POST';
  /** Matched against the whole path; named groups become req.params. */
  pattern: RegExp;
  /** The metrics label. */
  endpoint: string;
  /** Whether the request must be signed (when the server has a secret). */
  auth: boolean;
  /** Native routes answer errors with ERROR frames, the rest with JSON. */
  errors: 'frame' | 'json';
  /** Still served while draining (health checks). */
  whileDraining?: boolean;
  handler: Handler;
}

export interface AppOptions {
  routes: Route[];
  maxBodyBytes: number;
  /** Undefined only when the operator chose --insecure-no-auth. */
  verifier?: RequestVerifier;
  metrics: ServerMetrics;
  log: (line: string) => void;
}

export const json = (status: number, value: unknown, headers: Record<string, string> = {}): Response => ({
  status,
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(value),
});

export const binary = (body: Uint8Array, status = 200): Response => ({
  status,
  headers: { 'content-type': 'application/octet-stream' },
  body,
});

/** Bodies past the limit are read and thrown away up to this many bytes, so the client sees the 413. */
const DISCARD_LIMIT = 64 << 20;

function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length']);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = Number.isFinite(declared) && declared > limit;
    const tooLarge = () =>
      new PayloadTooLargeError(
        `request body too large: expected at most ${limit} bytes, found ${Number.isFinite(declared) ? declared : `more than ${limit}`}`,
      );
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      if (over) {
        chunks.length = 0;
        if (size > DISCARD_LIMIT) {
          req.destroy();
          reject(tooLarge());
        }
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => (over ? reject(tooLarge()) : resolve(new Uint8Array(Buffer.concat(chunks, size)))));
    req.on('error', (e) => reject(new BadRequestError(`request body: ${e.message}`)));
  });
}

/** The request id of a STEP_REQUEST that did not decode, when it can be read; '' otherwise. */
export function peekRequestId(body: Uint8Array): string {
  // magic, version 1, type 1, then id8 session id, id8 request id
  if (body.length < 14 || body[0] !== 0x53 || body[1] !== 0x57 || body[2] !== 0x59 || body[3] !== 0x44)
    return '';
  if (body[6] !== 1 || body[7] !== 0) return '';
  const s = body[12];
  const at = 13 + s;
  if (at >= body.length) return '';
  const r = body[at];
  if (r < 1 || r > MAX_ID_BYTES || at + 1 + r > body.length) return '';
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(at + 1, at + 1 + r));
  } catch {
    return '';
  }
}

function truncateUtf8(s: string, maxBytes: number): string {
  const b = new TextEncoder().encode(s);
  if (b.length <= maxBytes) return s;
  return new TextDecoder().decode(b.subarray(0, maxBytes)).replace(/\uFFFD$/, '');
}

function errorResponse(err: HttpError, route: Route | undefined, body: Uint8Array): Response {
  const headers = { ...err.headers };
  if (route?.errors === 'frame') {
    const frame = encodeErrorFrame({
      code: err.wireCode,
      message: truncateUtf8(err.message, 0xffff),
      requestId: peekRequestId(body),
    });
    return {
      status: err.status,
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: frame,
    };
  }
  return json(err.status, { error: err.message }, headers);
}

function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof ProtocolError) return new BadRequestError(e.message);
  if (e instanceof AuthError) return new UnauthorizedError(e.message);
  return new InternalError(`internal error: ${(e as Error)?.message ?? String(e)}`);
}

export interface App {
  listener: (req: IncomingMessage, res: ServerResponse) => void;
  /** Refuse new work from now on; resolves when every request in flight has been answered. */
  drain(): Promise<void>;
  readonly inFlight: number;
  readonly draining: boolean;
}

export function createApp(o: AppOptions): App {
  let inFlight = 0;
  let draining = false;
  const drained: (() => void)[] = [];
  const allowed = (path: string) => o.routes.filter((r) => r.pattern.test(path)).map((r) => r.method);

  async function handle(
    req: IncomingMessage,
    route: Route | undefined,
    path: string,
    target: string,
    body: { bytes: Uint8Array },
  ): Promise<Response> {
    if (!route) {
      const methods = allowed(path);
      if (methods.length)
        throw new MethodNotAllowedError(
          `${req.method} ${path}: method not allowed; expected ${methods.join(' or ')}`,
          methods,
        );
      throw new NotFoundError(
        `${req.method} ${path}: no such endpoint; expected one of POST /v1/step, POST /v1/drop, GET /metrics, /v2/health/{live,ready}, /v2/models/{name}[/ready|/infer]`,
      );
    }
    if (draining && !route.whileDraining) throw new ShuttingDownError();
    body.bytes = await readBody(req, o.maxBodyBytes);
    if (route.auth && o.verifier) {
      const header = (name: string) => {
        const v = req.headers[name];
        return Array.isArray(v) ? v[0] : v;
      };
      try {
        await o.verifier.verify(
          req.method!,
          target,
          header(TIMESTAMP_HEADER),
          header(SIGNATURE_HEADER),
          body.bytes,
        );
      } catch (e) {
        if (e instanceof AuthError) o.metrics.authFailures.inc({ reason: e.reason });
        throw e;
      }
    }
    const params = (route.pattern.exec(path)?.groups ?? {}) as Record<string, string>;
    return route.handler({
      method: req.method!,
      path,
      target,
      headers: req.headers,
      body: body.bytes,
      params,
    });
  }

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    const t0 = performance.now();
    const target = req.url ?? '/';
    const path = target.split('?')[0];
    const route = o.routes.find((r) => r.method === req.method && r.pattern.test(path));
    const endpoint = route?.endpoint ?? 'unknown';
    const body = { bytes: new Uint8Array(0) };
    inFlight++;
    handle(req, route, path, target, body)
      .catch((e: unknown) => {
        const err = toHttpError(e);
        if (err instanceof InternalError) o.log(`${req.method} ${path}: ${err.message}`);
        if (err.status === 413 || err instanceof ShuttingDownError) res.setHeader('connection', 'close');
        return errorResponse(err, route, body.bytes);
      })
      .then((r) => {
        res.writeHead(r.status, r.headers);
        res.end(r.body);
        o.metrics.requests.inc({ endpoint, status: r.status });
        o.metrics.requestSeconds.observe({ endpoint }, (performance.now() - t0) / 1000);
      })
      .catch((e: unknown) =>
        o.log(`${req.method} ${path}: could not send the response: ${(e as Error).message}`),
      )
      .finally(() => {
        inFlight--;
        if (inFlight === 0) for (const r of drained.splice(0)) r();
      });
  };

  return {
    listener,
    drain() {
      draining = true;
      if (inFlight === 0) return Promise.resolve();
      return new Promise((r) => drained.push(r));
    },
    get inFlight() {
      return inFlight;
    },
    get draining() {
      return draining;
    },
  };
}
