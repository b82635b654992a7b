// Request validation. zod checks the shapes; the messages follow the house rule (what was expected, what was
// found, the valid values) and name the OpenAI `param` at fault, e.g. "messages[2].content".
import { z } from 'zod';
import type { ChatMessage } from '@switchyard/shared/chat';
import { isWellFormedString } from '@switchyard/shared/protocol/wire';
import { InvalidRequestError, ModelNotFoundError } from './errors.ts';
import type { Settings } from './settings.ts';

export const MESSAGE_ROLES = ['system', 'developer', 'user', 'assistant'] as const;
export const MAX_STOP_SEQUENCES = 4;
export const MAX_STOP_CHARS = 256;
export const MAX_MESSAGES = 10_000;
const NAMESPACE = /^[A-Za-z0-9_.-]{1,64}$/;

// ------------------------------------------------------------------------------------------------ schemas

const textPart = z.object({
  type: z.literal('text', { error: 'expected "text" (only text content parts are supported)' }),
  text: z.string({ error: 'expected a string' }),
});

const content = z.union([z.string(), z.array(textPart), z.null()], {
  error: 'expected a string or an array of {"type": "text", "text": string} parts',
});

// Message objects keep unknown keys out (z.object strips them): clients echo back assistant messages with
// fields such as `refusal` or `annotations`, and refusing those would break ordinary use.
const message = z.object({
  role: z.enum(MESSAGE_ROLES, { error: `expected one of ${MESSAGE_ROLES.join(', ')}` }),
  content,
  name: z.string({ error: 'expected a string' }).optional(),
  tool_calls: z.array(z.unknown()).max(0, 'expected no tool calls (tools are not supported)').nullish(),
});

const memoryOptions = z
  .object({
    namespace: z
      .string({ error: 'expected a string' })
      .regex(NAMESPACE, 'expected 1-64 characters of A-Z a-z 0-9 _ . -')
      .optional(),
    recall: z
      .number({ error: 'expected a number' })
      .int('expected an integer')
      .min(0, 'expected at least 0')
      .max(64, 'expected at most 64')
      .optional(),
    write: z.boolean({ error: 'expected a boolean' }).optional(),
  })
  .strict();

const extension = z
  .object({
    trace: z.boolean({ error: 'expected a boolean' }).optional(),
    memory: memoryOptions.optional(),
    truncate: z.boolean({ error: 'expected a boolean' }).optional(),
  })
  .strict();

const stopString = z
  .string()
  .min(1, 'expected a non-empty string')
  .max(MAX_STOP_CHARS, `expected at most ${MAX_STOP_CHARS} characters`);

const tokensLimit = z
  .number({ error: 'expected a number' })
  .int('expected an integer')
  .min(1, 'expected at least 1')
  .nullish();

const sampling = {
  stream: z.boolean({ error: 'expected a boolean' }).nullish(),
  stream_options: z
    .object({ include_usage: z.boolean({ error: 'expected a boolean' }).optional() })
    .strict()
    .nullish(),
  max_tokens: tokensLimit,
  max_completion_tokens: tokensLimit,
  temperature: z
    .number({ error: 'expected a number' })
    .min(0, 'expected a number in [0, 2]')
    .max(2, 'expected a number in [0, 2]')
    .nullish(),
  top_p: z
    .number({ error: 'expected a number' })
    .gt(0, 'expected a number in (0, 1]')
    .max(1, 'expected a number in (0, 1]')
    .nullish(),
  seed: z
    .number({ error: 'expected an integer' })
    // zod's int() also refuses integers past 2^53, which "expected an integer" would misdescribe.
    .int('expected a safe integer (a whole number within ±(2^53 - 1))')
    .min(Number.MIN_SAFE_INTEGER, 'expected a safe integer')
    .max(Number.MAX_SAFE_INTEGER, 'expected a safe integer')
    .nullish(),
  stop: z
    .union(
      [
        stopString,
        z.array(stopString).max(MAX_STOP_SEQUENCES, `expected at most ${MAX_STOP_SEQUENCES} stop sequences`),
        z.null(),
      ],
      {
        error: `expected a non-empty string or a list of at most ${MAX_STOP_SEQUENCES} of them, each at most ${MAX_STOP_CHARS} characters`,
      },
    )
    .optional(),
  switchyard: extension.optional(),
};

/** OpenAI fields accepted with no effect here: metadata about the caller, or knobs whose default is all there is. */
const IGNORED_FIELDS = [
  'user',
  'metadata',
  'store',
  'service_tier',
  'parallel_tool_calls',
  'safety_identifier',
  'prompt_cache_key',
];

/** OpenAI fields this server does not implement: allowed only at their neutral value. */
const NEUTRAL: Record<string, { ok: (v: unknown) => boolean; want: string }> = {
  n: { ok: (v) => v === 1, want: '1 (one choice per request)' },
  logprobs: { ok: (v) => v === false, want: 'false (log probabilities are not returned)' },
  top_logprobs: { ok: (v) => v === 0, want: '0' },
  presence_penalty: { ok: (v) => v === 0, want: '0 (penalties are not supported)' },
  frequency_penalty: { ok: (v) => v === 0, want: '0 (penalties are not supported)' },
  logit_bias: { ok: (v) => isEmptyObject(v), want: '{} (logit bias is not supported)' },
  tools: { ok: (v) => Array.isArray(v) && v.length === 0, want: '[] (tools are not supported)' },
  functions: { ok: (v) => Array.isArray(v) && v.length === 0, want: '[] (functions are not supported)' },
  tool_choice: { ok: (v) => v === 'none', want: '"none" (tools are not supported)' },
  function_call: { ok: (v) => v === 'none', want: '"none" (functions are not supported)' },
  response_format: {
    ok: (v) => isObject(v) && (v as { type?: unknown }).type === 'text',
    want: '{"type": "text"} (structured output is not supported)',
  },
  modalities: {
    ok: (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text',
    want: '["text"]',
  },
};

const isObject = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isEmptyObject = (v: unknown) => isObject(v) && Object.keys(v as object).length === 0;

const chatSchema = z.object({
  model: z
    .string({ error: 'expected a string naming the model (see GET /v1/models)' })
    .min(1, 'expected a non-empty string'),
  messages: z
    .array(message, { error: 'expected an array of messages' })
    .min(1, 'expected at least one message')
    .max(MAX_MESSAGES, `expected at most ${MAX_MESSAGES} messages`),
  ...sampling,
});

const sessionCreateSchema = z.object({
  model: z
    .string({ error: 'expected a string naming the model (see GET /v1/models)' })
    .min(1, 'expected a non-empty string'),
  system: z.string({ error: 'expected a string' }).nullish(),
  messages: z
    .array(message, { error: 'expected an array of messages' })
    .max(MAX_MESSAGES, `expected at most ${MAX_MESSAGES} messages`)
    .nullish(),
  switchyard: z.object({ memory: memoryOptions.optional() }).strict().optional(),
});

const sessionMessageSchema = z.object({
  role: z.literal('user', { error: 'expected "user" (a session turn answers a user message)' }).optional(),
  content,
  ...sampling,
});

// ------------------------------------------------------------------------------------------------ results

export interface MemoryChoice {
  namespace: string;
  /** Entries recalled after step 1 (0: none). */
  recall: number;
  /** Write the finished request into the namespace. */
  write: boolean;
}

export interface SamplingRequest {
  stream: boolean;
  includeUsage: boolean;
  maxTokens: number;
  temperature: number;
  topP: number;
  /** u32; drawn at random when the request gave none and samples. */
  seed: number;
  stop: string[];
  trace: boolean;
  /** Only what the request said; the session or the settings fill the rest. */
  memory: Partial<MemoryChoice>;
}

export interface ChatRequest extends SamplingRequest {
  model: string;
  messages: ChatMessage[];
  truncate: boolean;
}

export interface SessionCreateRequest {
  model: string;
  messages: ChatMessage[];
  memory: Partial<MemoryChoice>;
}

export interface SessionMessageRequest extends SamplingRequest {
  content: string;
  truncate: boolean;
}

// ------------------------------------------------------------------------------------------------ helpers

function pathText(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${String(p)}` : String(p);
  return s;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

export function describeFound(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : `${typeof v} ${s}`;
}

function fail(issue: z.core.$ZodIssue, input: unknown): never {
  const path = pathText(issue.path);
  const where = path || 'request body';
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (path ? `${path}.${k}` : k));
    throw new InvalidRequestError(
      `${keys.join(', ')}: unrecognized field${keys.length > 1 ? 's' : ''}; see the API reference for the supported fields`,
      keys[0],
      'unknown_parameter',
    );
  }
  let expected = issue.message.replace(/^Invalid input: /, '');
  if (!expected.startsWith('expected')) expected = `expected ${expected}`;
  throw new InvalidRequestError(
    `${where}: ${expected}, found ${describeFound(valueAt(input, issue.path))}`,
    path || null,
    // Absent is absent whichever check noticed it (a type, an enum or a union), so the code does not
    // depend on how the field's schema is written.
    issue.path.length > 0 && valueAt(input, issue.path) === undefined
      ? 'missing_required_parameter'
      : 'invalid_value',
  );
}

function parse<T>(schema: z.ZodType<T>, input: Record<string, unknown>, allowed: string[]): T {
  const extra = Object.keys(input).filter((k) => !allowed.includes(k));
  for (const k of extra) {
    const neutral = NEUTRAL[k];
    if (neutral) {
      const v = input[k];
      if (v !== null && !neutral.ok(v))
        throw new InvalidRequestError(
          `${k}: expected ${neutral.want}, found ${describeFound(v)}`,
          k,
          'unsupported_parameter',
        );
    } else if (!IGNORED_FIELDS.includes(k))
      throw new InvalidRequestError(
        `${k}: unrecognized field; supported fields: ${[...allowed].sort().join(', ')}`,
        k,
        'unknown_parameter',
      );
  }
  const r = schema.safeParse(input);
  if (!r.success) fail(r.error.issues[0], input);
  return r.data;
}

function contentText(c: z.infer<typeof content>, param: string): string {
  const text = c === null ? '' : typeof c === 'string' ? c : c.map((p) => p.text).join('');
  if (!isWellFormedString(text))
    throw new InvalidRequestError(
      `${param}: expected well-formed Unicode text, found an unpaired surrogate (\\ud800-\\udfff) that has no UTF-8 encoding`,
      param,
    );
  return text;
}

function toMessages(ms: z.infer<typeof message>[], param: string): ChatMessage[] {
  return ms.map((m, i) => ({ role: m.role, content: contentText(m.content, `${param}[${i}].content`) }));
}

function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

function samplingOf(r: z.infer<z.ZodObject<typeof sampling>>, settings: Settings): SamplingRequest {
  if (r.max_tokens != null && r.max_completion_tokens != null && r.max_tokens !== r.max_completion_tokens)
    throw new InvalidRequestError(
      `max_tokens and max_completion_tokens: expected one of them (or equal values), found ${r.max_tokens} and ${r.max_completion_tokens}`,
      'max_tokens',
    );
  const maxTokens = r.max_completion_tokens ?? r.max_tokens ?? settings.defaultMaxTokens;
  if (maxTokens > settings.maxTokensLimit)
    throw new InvalidRequestError(
      `${r.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens'}: expected at most ${settings.maxTokensLimit}, found ${maxTokens}`,
      r.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens',
    );
  const stopRaw = r.stop == null ? [] : typeof r.stop === 'string' ? [r.stop] : r.stop;
  stopRaw.forEach((s, i) => {
    if (!isWellFormedString(s))
      throw new InvalidRequestError(
        `stop[${i}]: expected well-formed Unicode text, found an unpaired surrogate`,
        'stop',
      );
  });
  const temperature = r.temperature ?? 1;
  const seed =
    r.seed != null ? Number(BigInt.asUintN(32, BigInt(r.seed))) : temperature > 0 ? randomSeed() : 0;
  return {
    stream: r.stream ?? false,
    includeUsage: r.stream_options?.include_usage ?? false,
    maxTokens,
    temperature,
    topP: r.top_p ?? 1,
    seed,
    stop: stopRaw,
    trace: r.switchyard?.trace ?? false,
    memory: { ...(r.switchyard?.memory ?? {}) },
  };
}

function checkModel(model: string, settings: Settings): void {
  if (model !== settings.modelName) throw new ModelNotFoundError(model, settings.modelName);
}

// ------------------------------------------------------------------------------------------------ entry points

export function parseChatRequest(body: Record<string, unknown>, settings: Settings): ChatRequest {
  const r = parse(chatSchema, body, Object.keys(chatSchema.shape));
  if (r.stream_options && !r.stream)
    throw new InvalidRequestError(
      'stream_options: expected only together with "stream": true, found stream_options on a request that does not stream',
      'stream_options',
    );
  checkModel(r.model, settings);
  return {
    model: r.model,
    messages: toMessages(r.messages, 'messages'),
    truncate: r.switchyard?.truncate ?? false,
    ...samplingOf(r, settings),
  };
}

export function parseSessionCreate(body: Record<string, unknown>, settings: Settings): SessionCreateRequest {
  const r = parse(sessionCreateSchema, body, Object.keys(sessionCreateSchema.shape));
  checkModel(r.model, settings);
  const messages = toMessages(r.messages ?? [], 'messages');
  if (r.system != null) messages.unshift({ role: 'system', content: contentText(r.system, 'system') });
  return { model: r.model, messages, memory: { ...(r.switchyard?.memory ?? {}) } };
}

export function parseSessionMessage(
  body: Record<string, unknown>,
  settings: Settings,
): SessionMessageRequest {
  const r = parse(sessionMessageSchema, body, Object.keys(sessionMessageSchema.shape));
  if (r.stream_options && !r.stream)
    throw new InvalidRequestError(
      'stream_options: expected only together with "stream": true, found stream_options on a request that does not stream',
      'stream_options',
    );
  if (r.switchyard?.memory?.namespace !== undefined)
    throw new InvalidRequestError(
      'switchyard.memory.namespace: expected no namespace here (a session keeps the namespace it was created with), found one',
      'switchyard.memory.namespace',
    );
  return {
    content: contentText(r.content, 'content'),
    truncate: true,
    ...samplingOf(r, settings),
  };
}

/** Fills memory options from the request, then the session, then the settings. */
export function resolveMemory(
  req: Partial<MemoryChoice>,
  settings: Settings,
  base?: MemoryChoice,
): MemoryChoice {
  return {
    namespace: req.namespace ?? base?.namespace ?? 'default',
    recall: req.recall ?? base?.recall ?? settings.ltmTopN,
    write: req.write ?? base?.write ?? true,
  };
}
