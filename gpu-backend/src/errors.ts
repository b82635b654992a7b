// Every failure a request can meet, as a named error that knows its HTTP status and its wire ERROR code.
// The HTTP layer turns them into responses in one place (http.ts).
import { WireErrorCode } from '@switchyard/shared';

export abstract class HttpError extends Error {
  abstract readonly status: number;
  /** The ERROR frame code the native endpoint answers with. */
  abstract readonly wireCode: number;
  readonly headers: Record<string, string> = {};
}

/** The body did not decode (bad frame, bad JSON, bad tensor): the decoder's message says what and where. */
export class BadRequestError extends HttpError {
  override name = 'BadRequestError';
  readonly status = 400;
  readonly wireCode = WireErrorCode.BadFrame;
}

/** The request decoded but this server cannot serve it (an expert it does not host, a wrong digest). */
export class InvalidRequestError extends HttpError {
  override name = 'InvalidRequestError';
  readonly status = 400;
  readonly wireCode = WireErrorCode.InvalidRequest;
}

export class UnauthorizedError extends HttpError {
  override name = 'UnauthorizedError';
  readonly status = 401;
  readonly wireCode = WireErrorCode.InvalidRequest;
}

export class NotFoundError extends HttpError {
  override name = 'NotFoundError';
  readonly status = 404;
  readonly wireCode = WireErrorCode.InvalidRequest;
}

export class MethodNotAllowedError extends HttpError {
  override name = 'MethodNotAllowedError';
  readonly status = 405;
  readonly wireCode = WireErrorCode.InvalidRequest;
  constructor(message: string, allowed: readonly string[]) {
    super(message);
    this.headers.allow = allowed.join(', ');
  }
}

export class PayloadTooLargeError extends HttpError {
  override name = 'PayloadTooLargeError';
  readonly status = 413;
  readonly wireCode = WireErrorCode.BadFrame;
}

export class UnsupportedMediaTypeError extends HttpError {
  override name = 'UnsupportedMediaTypeError';
  readonly status = 415;
  readonly wireCode = WireErrorCode.BadFrame;
}

/** Past the queue limit: memory stays bounded, the client retries after the hinted delay. */
export class OverloadedError extends HttpError {
  override name = 'OverloadedError';
  readonly status = 429;
  readonly wireCode = WireErrorCode.Overloaded;
  constructor(message: string, retryAfterS: number) {
    super(message);
    this.headers['retry-after'] = String(retryAfterS);
  }
}

export class ShuttingDownError extends HttpError {
  override name = 'ShuttingDownError';
  readonly status = 503;
  readonly wireCode = WireErrorCode.ShuttingDown;
  constructor(
    message = 'shutting down: this server is draining and accepts no new work; retry on another server',
  ) {
    super(message);
    this.headers.connection = 'close';
  }
}

export class NotReadyError extends HttpError {
  override name = 'NotReadyError';
  readonly status = 503;
  readonly wireCode = WireErrorCode.Overloaded;
}

/** A failure inside the server (an inference run that threw, a worker that died). */
export class InternalError extends HttpError {
  override name = 'InternalError';
  readonly status = 500;
  readonly wireCode = WireErrorCode.Internal;
}
