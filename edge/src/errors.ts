// Every failure a client can see is one of these, and it leaves the edge in one shape: OpenAI's
// `{ error: { message, type, param, code } }`, with the HTTP status the class carries.

export type ApiErrorType =
  'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'rate_limit_error' | 'server_error';

/** The error as plain data: what crosses the Durable Object boundary and what the client receives. */
export interface ApiErrorData {
  status: number;
  message: string;
  type: ApiErrorType;
  code: string | null;
  param: string | null;
  /** Seconds, for 429 and 503. */
  retryAfter?: number;
}

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly type: ApiErrorType,
    readonly code: string | null,
    message: string,
    readonly param: string | null = null,
    readonly retryAfter?: number,
  ) {
    super(message);
  }

  toData(): ApiErrorData {
    const d: ApiErrorData = {
      status: this.status,
      message: this.message,
      type: this.type,
      code: this.code,
      param: this.param,
    };
    if (this.retryAfter !== undefined) d.retryAfter = this.retryAfter;
    return d;
  }

  static fromData(d: ApiErrorData): ApiError {
    return new ApiError(d.status, d.type, d.code, d.message, d.param, d.retryAfter);
  }
}

export class InvalidRequestError extends ApiError {
  override name = 'InvalidRequestError';
  constructor(message: string, param: string | null = null, code: string | null = 'invalid_value') {
    super(400, 'invalid_request_error', code, message, param);
  }
}

export class ContextLengthError extends ApiError {
  override name = 'ContextLengthError';
  constructor(message: string, param = 'messages') {
    super(400, 'invalid_request_error', 'context_length_exceeded', message, param);
  }
}

export class PayloadTooLargeError extends ApiError {
  override name = 'PayloadTooLargeError';
  constructor(message: string) {
    super(413, 'invalid_request_error', 'payload_too_large', message);
  }
}

export class AuthenticationError extends ApiError {
  override name = 'AuthenticationError';
  constructor(message: string) {
    super(401, 'authentication_error', 'invalid_api_key', message);
  }
}

export class NotFoundError extends ApiError {
  override name = 'NotFoundError';
  constructor(message: string, code = 'not_found', param: string | null = null) {
    super(404, 'not_found_error', code, message, param);
  }
}

export class ModelNotFoundError extends ApiError {
  override name = 'ModelNotFoundError';
  constructor(model: string, available: string) {
    super(
      404,
      'invalid_request_error',
      'model_not_found',
      `model: the model ${JSON.stringify(model)} does not exist; this server serves ${JSON.stringify(available)}`,
      'model',
    );
  }
}

export class MethodNotAllowedError extends ApiError {
  override name = 'MethodNotAllowedError';
  constructor(
    method: string,
    path: string,
    readonly allow: string[],
  ) {
    super(
      405,
      'invalid_request_error',
      'method_not_allowed',
      `${method} ${path}: method not allowed; expected ${allow.join(' or ')}`,
    );
  }
}

export class ConflictError extends ApiError {
  override name = 'ConflictError';
  constructor(message: string, code = 'conflict') {
    super(409, 'invalid_request_error', code, message);
  }
}

export class RateLimitError extends ApiError {
  override name = 'RateLimitError';
  constructor(message: string, retryAfter: number) {
    super(429, 'rate_limit_error', 'rate_limit_exceeded', message, null, retryAfter);
  }
}

/** The expert tier could not be reached or did not answer in time: transient, retry later. */
export class ExpertUnavailableError extends ApiError {
  override name = 'ExpertUnavailableError';
  constructor(message: string, retryAfter = 1) {
    super(503, 'server_error', 'expert_tier_unavailable', message, null, retryAfter);
  }
}

/** The expert tier answered with something the edge cannot use: a bug or a model mismatch, not transient. */
export class ExpertProtocolError extends ApiError {
  override name = 'ExpertProtocolError';
  constructor(message: string) {
    super(502, 'server_error', 'expert_tier_error', message);
  }
}

/** The deployment is misconfigured (a var, a secret, the weights): the operator must act. */
export class ServerConfigError extends ApiError {
  override name = 'ServerConfigError';
  constructor(message: string, code = 'server_misconfigured') {
    super(500, 'server_error', code, message);
  }
}

/** Anything that is not an ApiError is a bug: its text stays in the log, the client gets a generic 500. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  console.error('unexpected error', err);
  return new ApiError(500, 'server_error', 'internal_error', 'internal error: the edge failed unexpectedly');
}

export function errorBody(err: ApiError | ApiErrorData): {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
} {
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code } };
}

export function errorResponse(
  err: ApiError | ApiErrorData,
  extraHeaders: Record<string, string> = {},
): Response {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...extraHeaders };
  if (err.retryAfter !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(err.retryAfter)));
  if (err instanceof MethodNotAllowedError) headers.allow = err.allow.join(', ');
  return new Response(JSON.stringify(errorBody(err)), { status: err.status, headers });
}
