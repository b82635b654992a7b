// The bad-input tables of the reliability suite: requests the edge's API and the GPU tier's native and KServe
// endpoints must refuse, each with the status, code and message it must get. bad-input.test.ts sends them to
// the real stack; docs/RELIABILITY.md lists them.
import { INFERENCE_HEADER } from '../../gpu-backend/src/kserve.ts';
import { promptDigest } from '../../shared/src/digest.ts';
import {
  encodeDropSession,
  encodeStepRequest,
  WireErrorCode,
  type DecodeLimits,
  type StepRequest,
} from '../../shared/src/protocol/index.ts';
import { MODEL_NAME, NO_MEMORY, type Json } from './client.ts';

/** The edge's MAX_BODY_BYTES in the bad-input stack. */
export const MAX_BODY = 65536;
/** The edge's MAX_TOKENS_LIMIT there: the longest golden turn, so a generated request that is valid ends soon. */
export const MAX_TOKENS = 24;

/** The tiny golden model, as the GPU tier checks frames against it. */
export const H = 64;
export const E = 4;
export const VOCAB = 260;
export const LMAX = 128;
export const LIMITS: DecodeLimits = { maxExperts: E, hidden: H, vocab: VOCAB, maxPromptTokens: LMAX };

// ------------------------------------------------------------------------------------------------ edge table

export interface EdgeCase {
  kind: string;
  method?: string;
  /** Default /v1/chat/completions; `probe` stands for the probe session's id. */
  path?: string;
  /** A value is sent as JSON; a string or bytes as they are. */
  body?: unknown;
  headers?: Record<string, string>;
  status: number;
  code: string;
  message: RegExp;
}

export const chat = (over: Json = {}, drop: string[] = []): Json => {
  const b: Json = {
    model: MODEL_NAME,
    messages: [{ role: 'user', content: 'hi' }],
    max_tokens: 4,
    switchyard: { memory: NO_MEMORY },
    ...over,
  };
  for (const k of drop) delete b[k];
  return b;
};
const msg = (over: Json) => ({ role: 'user', content: 'hi', ...over });
export const bytes = (...parts: (string | number[])[]) =>
  new Uint8Array(parts.flatMap((p) => (typeof p === 'string' ? [...new TextEncoder().encode(p)] : p)));
const prefix = '{"model": "switchyard-tiny", "messages": [{"role": "user", "content": "';
const suffix = '"}]}';
const atByte = new TextEncoder().encode(prefix).length;

export const EDGE_CASES: EdgeCase[] = [
  // the body as a whole
  {
    kind: 'malformed JSON',
    body: prefix,
    status: 400,
    code: 'invalid_json',
    message: /^request body: expected valid JSON, found a parse error/,
  },
  {
    kind: 'JSON array body',
    body: '[1, 2]',
    status: 400,
    code: 'invalid_json',
    message: /expected a JSON object, found an array/,
  },
  {
    kind: 'JSON string body',
    body: '"hello"',
    status: 400,
    code: 'invalid_json',
    message: /expected a JSON object, found string/,
  },
  {
    kind: 'empty body',
    body: '',
    status: 400,
    code: 'invalid_json',
    message: /expected a JSON object, found an empty body/,
  },
  {
    kind: 'bad UTF-8 byte (0xff)',
    body: bytes(prefix, [0xff], suffix),
    status: 400,
    code: 'invalid_encoding',
    message: new RegExp(`expected UTF-8 text, found an invalid byte sequence at byte ${atByte}$`),
  },
  {
    kind: 'overlong UTF-8 (c0 af)',
    body: bytes(prefix, [0xc0, 0xaf], suffix),
    status: 400,
    code: 'invalid_encoding',
    message: new RegExp(`at byte ${atByte}$`),
  },
  {
    kind: 'UTF-8-encoded surrogate (ed a0 80)',
    body: bytes(prefix, [0xed, 0xa0, 0x80], suffix),
    status: 400,
    code: 'invalid_encoding',
    message: new RegExp(`at byte ${atByte}$`),
  },
  {
    kind: 'truncated UTF-8 sequence (e2 82)',
    body: bytes(prefix, [0xe2, 0x82], suffix),
    status: 400,
    code: 'invalid_encoding',
    message: new RegExp(`at byte ${atByte}$`),
  },
  {
    kind: 'raw control character in a string',
    body: bytes(prefix, [0x01], suffix),
    status: 400,
    code: 'invalid_json',
    message: /expected valid JSON, found a parse error \(.*control character/i,
  },
  {
    kind: 'unpaired surrogate escape',
    body: `${prefix}\\ud800${suffix}`,
    status: 400,
    code: 'invalid_value',
    message: /^messages\[0\]\.content: expected well-formed Unicode text, found an unpaired surrogate/,
  },
  {
    kind: 'body over MAX_BODY_BYTES',
    body: chat({ messages: [msg({ content: 'x'.repeat(MAX_BODY) })] }),
    status: 413,
    code: 'payload_too_large',
    message: new RegExp(`^request body: expected at most ${MAX_BODY} bytes, found a Content-Length of \\d+`),
  },
  // the model
  {
    kind: 'missing model',
    body: chat({}, ['model']),
    status: 400,
    code: 'missing_required_parameter',
    message: /^model: expected a string naming the model .*, found nothing$/,
  },
  {
    kind: 'model of the wrong type',
    body: chat({ model: 7 }),
    status: 400,
    code: 'invalid_value',
    message: /^model: expected a string naming the model .*, found number 7$/,
  },
  {
    kind: 'empty model',
    body: chat({ model: '' }),
    status: 400,
    code: 'invalid_value',
    message: /^model: expected a non-empty string/,
  },
  {
    kind: 'unknown model',
    body: chat({ model: 'gpt-4o' }),
    status: 404,
    code: 'model_not_found',
    message: /^model: the model "gpt-4o" does not exist; this server serves "switchyard-tiny"$/,
  },
  // messages
  {
    kind: 'missing messages',
    body: chat({}, ['messages']),
    status: 400,
    code: 'missing_required_parameter',
    message: /^messages: expected an array of messages, found nothing$/,
  },
  {
    kind: 'messages not an array',
    body: chat({ messages: 'hi' }),
    status: 400,
    code: 'invalid_value',
    message: /^messages: expected an array of messages, found string "hi"$/,
  },
  {
    kind: 'empty messages',
    body: chat({ messages: [] }),
    status: 400,
    code: 'invalid_value',
    message: /^messages: expected at least one message, found an array of length 0$/,
  },
  {
    kind: 'message without a role',
    body: chat({ messages: [{ content: 'hi' }] }),
    status: 400,
    code: 'missing_required_parameter',
    message: /^messages\[0\]\.role: expected one of system, developer, user, assistant, found nothing$/,
  },
  {
    kind: 'unknown role',
    body: chat({ messages: [msg({ role: 'robot' })] }),
    status: 400,
    code: 'invalid_value',
    message: /^messages\[0\]\.role: expected one of .*, found string "robot"$/,
  },
  {
    kind: 'content of the wrong type',
    body: chat({ messages: [msg({ content: 42 })] }),
    status: 400,
    code: 'invalid_value',
    message: /^messages\[0\]\.content: expected a string or an array of .* parts/,
  },
  {
    kind: 'image content part',
    body: chat({ messages: [msg({ content: [{ type: 'image_url', image_url: { url: 'x' } }] })] }),
    status: 400,
    code: 'invalid_value',
    message:
      /^messages\[0\]\.content: expected a string or an array of \{"type": "text", "text": string\} parts, found an array of length 1$/,
  },
  {
    kind: 'tool calls',
    body: chat({ messages: [msg({ role: 'assistant', tool_calls: [{ id: 'x' }] })] }),
    status: 400,
    code: 'invalid_value',
    message: /expected no tool calls \(tools are not supported\)/,
  },
  {
    kind: 'prompt over Lmax',
    body: chat({ messages: [msg({ content: 'y'.repeat(300) })] }),
    status: 400,
    code: 'context_length_exceeded',
    message: new RegExp(
      `^messages\\[0\\]\\.content: this message alone needs 308 prompt tokens .*, 180 more than this model's limit of ${LMAX}$`,
    ),
  },
  {
    kind: 'conversation over Lmax',
    body: chat({ messages: [msg({ content: 'a'.repeat(90) }), msg({ content: 'b'.repeat(90) })] }),
    status: 400,
    code: 'context_length_exceeded',
    message: /^messages: the prompt needs \d+ tokens .* set "switchyard": \{"truncate": true\}/,
  },
  // sampling
  {
    kind: 'negative max_tokens',
    body: chat({ max_tokens: -5 }),
    status: 400,
    code: 'invalid_value',
    message: /^max_tokens: expected at least 1, found number -5$/,
  },
  {
    kind: 'zero max_tokens',
    body: chat({ max_tokens: 0 }),
    status: 400,
    code: 'invalid_value',
    message: /^max_tokens: expected at least 1, found number 0$/,
  },
  {
    kind: 'huge max_tokens',
    body: chat({ max_tokens: 1e9 }),
    status: 400,
    code: 'invalid_value',
    message: new RegExp(`^max_tokens: expected at most ${MAX_TOKENS}, found 1000000000$`),
  },
  {
    kind: 'fractional max_tokens',
    body: chat({ max_tokens: 2.5 }),
    status: 400,
    code: 'invalid_value',
    message: /^max_tokens: expected an integer, found number 2.5$/,
  },
  {
    kind: 'max_tokens as a string',
    body: chat({ max_tokens: '10' }),
    status: 400,
    code: 'invalid_value',
    message: /^max_tokens: expected a number, found string "10"$/,
  },
  {
    kind: 'max_tokens and max_completion_tokens disagree',
    body: chat({ max_tokens: 3, max_completion_tokens: 4 }),
    status: 400,
    code: 'invalid_value',
    message: /expected one of them \(or equal values\), found 3 and 4$/,
  },
  {
    kind: 'negative temperature',
    body: chat({ temperature: -0.1 }),
    status: 400,
    code: 'invalid_value',
    message: /^temperature: expected a number in \[0, 2\], found number -0.1$/,
  },
  {
    kind: 'temperature above 2',
    body: chat({ temperature: 2.5 }),
    status: 400,
    code: 'invalid_value',
    message: /^temperature: expected a number in \[0, 2\], found number 2.5$/,
  },
  {
    kind: 'temperature as a string',
    body: chat({ temperature: 'hot' }),
    status: 400,
    code: 'invalid_value',
    message: /^temperature: expected a number, found string "hot"$/,
  },
  {
    kind: 'top_p of 0',
    body: chat({ top_p: 0 }),
    status: 400,
    code: 'invalid_value',
    message: /^top_p: expected a number in \(0, 1\], found number 0$/,
  },
  {
    kind: 'top_p above 1',
    body: chat({ top_p: 1.01 }),
    status: 400,
    code: 'invalid_value',
    message: /^top_p: expected a number in \(0, 1\]/,
  },
  {
    kind: 'fractional seed',
    body: chat({ seed: 1.5 }),
    status: 400,
    code: 'invalid_value',
    message: /^seed: expected a safe integer .*, found number 1.5$/,
  },
  {
    kind: 'seed beyond 2^53',
    body: chat({ seed: 2 ** 60 }),
    status: 400,
    code: 'invalid_value',
    message: /^seed: expected a safe integer/,
  },
  {
    kind: 'stream as a string',
    body: chat({ stream: 'true' }),
    status: 400,
    code: 'invalid_value',
    message: /^stream: expected a boolean, found string "true"$/,
  },
  {
    kind: 'stream as a number',
    body: chat({ stream: 1 }),
    status: 400,
    code: 'invalid_value',
    message: /^stream: expected a boolean, found number 1$/,
  },
  {
    kind: 'stream_options without stream',
    body: chat({ stream_options: { include_usage: true } }),
    status: 400,
    code: 'invalid_value',
    message: /^stream_options: expected only together with "stream": true/,
  },
  {
    kind: 'include_usage of the wrong type',
    body: chat({ stream: true, stream_options: { include_usage: 'yes' } }),
    status: 400,
    code: 'invalid_value',
    message: /^stream_options\.include_usage: expected a boolean, found string "yes"$/,
  },
  {
    kind: 'five stop sequences',
    body: chat({ stop: ['a', 'b', 'c', 'd', 'e'] }),
    status: 400,
    code: 'invalid_value',
    message: /^stop: expected .*at most 4/,
  },
  {
    kind: 'empty stop sequence',
    body: chat({ stop: '' }),
    status: 400,
    code: 'invalid_value',
    message: /^stop: expected a non-empty string/,
  },
  // fields
  {
    kind: 'unknown field',
    body: chat({ frobnicate: true }),
    status: 400,
    code: 'unknown_parameter',
    message: /^frobnicate: unrecognized field; supported fields: /,
  },
  {
    kind: 'unsupported field at a non-neutral value (n: 2)',
    body: chat({ n: 2 }),
    status: 400,
    code: 'unsupported_parameter',
    message: /^n: expected 1 \(one choice per request\), found number 2$/,
  },
  {
    kind: 'tools',
    body: chat({ tools: [{ type: 'function' }] }),
    status: 400,
    code: 'unsupported_parameter',
    message: /^tools: expected \[\] \(tools are not supported\)/,
  },
  {
    kind: 'unknown extension field',
    body: chat({ switchyard: { bogus: 1 } }),
    status: 400,
    code: 'unknown_parameter',
    message: /^switchyard\.bogus: unrecognized field/,
  },
  {
    kind: 'bad memory namespace',
    body: chat({ switchyard: { memory: { namespace: 'a/b' } } }),
    status: 400,
    code: 'invalid_value',
    message: /^switchyard\.memory\.namespace: expected 1-64 characters of A-Z a-z 0-9 _ \. -/,
  },
  {
    kind: 'recall above 64',
    body: chat({ switchyard: { memory: { recall: 100 } } }),
    status: 400,
    code: 'invalid_value',
    message: /^switchyard\.memory\.recall: expected at most 64/,
  },
  // sessions
  {
    kind: 'session with an unknown model',
    path: '/v1/sessions',
    body: { model: 'nope' },
    status: 404,
    code: 'model_not_found',
    message: /the model "nope" does not exist/,
  },
  {
    kind: 'session system prompt of the wrong type',
    path: '/v1/sessions',
    body: { model: MODEL_NAME, system: 5 },
    status: 400,
    code: 'invalid_value',
    message: /^system: expected a string, found number 5$/,
  },
  {
    kind: 'session turn without content',
    path: '/v1/sessions/probe/messages',
    body: { max_tokens: 2 },
    status: 400,
    code: 'missing_required_parameter',
    message: /^content: expected a string or an array.*, found nothing$/,
  },
  {
    kind: 'session turn as the assistant',
    path: '/v1/sessions/probe/messages',
    body: { role: 'assistant', content: 'x' },
    status: 400,
    code: 'invalid_value',
    message: /^role: expected "user"/,
  },
  {
    kind: 'session turn naming a namespace',
    path: '/v1/sessions/probe/messages',
    body: { content: 'x', switchyard: { memory: { namespace: 'other' } } },
    status: 400,
    code: 'invalid_value',
    message: /^switchyard\.memory\.namespace: expected no namespace here/,
  },
  {
    kind: 'session turn with malformed JSON',
    path: '/v1/sessions/probe/messages',
    body: '{"content": ',
    status: 400,
    code: 'invalid_json',
    message: /expected valid JSON/,
  },
  {
    kind: 'resume with a sampling field',
    path: '/v1/sessions/probe/resume',
    body: { temperature: 1 },
    status: 400,
    code: 'unknown_parameter',
    message: /^temperature: unrecognized field; a resume takes only stream, stream_options, switchyard/,
  },
  {
    kind: 'resume with stream of the wrong type',
    path: '/v1/sessions/probe/resume',
    body: { stream: 'yes' },
    status: 400,
    code: 'invalid_value',
    message: /^stream: expected a boolean, found "yes"$/,
  },
  {
    kind: 'resume with nothing to resume',
    path: '/v1/sessions/probe/resume',
    status: 409,
    code: 'nothing_to_resume',
    message: /^nothing to resume: this session has no interrupted turn$/,
  },
  {
    kind: 'session id with control characters',
    method: 'GET',
    path: '/v1/sessions/sess_%00%20x',
    status: 404,
    code: 'session_not_found',
    message: /^session "sess_\\u0000 x" not found$/,
  },
  {
    kind: 'session id never issued',
    method: 'GET',
    path: `/v1/sessions/sess_${'0'.repeat(64)}`,
    status: 404,
    code: 'session_not_found',
    message: /^session "sess_0+" not found$/,
  },
  {
    kind: 'session id of the wrong shape',
    method: 'GET',
    path: '/v1/sessions/sess_xyz',
    status: 404,
    code: 'session_not_found',
    message: /^session "sess_xyz" not found$/,
  },
  // routes
  {
    kind: 'wrong method',
    method: 'PUT',
    status: 405,
    code: 'method_not_allowed',
    message: /^PUT \/v1\/chat\/completions: method not allowed; expected POST$/,
  },
  {
    kind: 'unknown route',
    method: 'GET',
    path: '/v1/engines',
    status: 404,
    code: 'unknown_route',
    message: /^GET \/v1\/engines: no such route; routes: /,
  },
];

// ------------------------------------------------------------------------------------------------ GPU table

export async function validStep(
  over: Partial<StepRequest> = {},
  tokens: number[] | null = [256, 72, 105],
): Promise<StepRequest> {
  return {
    type: 'step-request',
    sessionId: 'bad-input',
    requestId: 'r1',
    step: 1,
    digest: await promptDigest(tokens ?? [256, 72, 105]),
    hDtype: 'f32',
    responseDtype: 'f32',
    perExpert: false,
    experts: [0, 2],
    gates: [0.75, 0.25],
    h: Float32Array.from({ length: H }, (_, i) => Math.sin(i)),
    ...(tokens ? { tokens } : {}),
    ...over,
  };
}

/** Field offsets of an encoded STEP_REQUEST (shared/PROTOCOL.md §3.1). */
function layout(f: Uint8Array) {
  const s = f[12];
  const r = f[13 + s];
  const a = 14 + s + r;
  const K = f[a + 39];
  const Hf = f[a + 37] | (f[a + 38] << 8);
  const b = a + 40 + 6 * K + 4 * Hf;
  return {
    sid: 13,
    a,
    flags: a + 36,
    H: a + 37,
    K: a + 39,
    experts: a + 40,
    gates: a + 40 + 2 * K,
    h: a + 40 + 6 * K,
    L: b,
    tokens: b + 4,
  };
}

function patched(
  frame: Uint8Array,
  edit: (v: DataView, o: ReturnType<typeof layout>, b: Uint8Array) => void,
) {
  const b = frame.slice();
  edit(new DataView(b.buffer), layout(b), b);
  return b;
}

export interface TierCase {
  kind: string;
  path?: string;
  method?: 'GET' | 'POST';
  /** The body, and headers beyond the content type when it needs some. */
  body: () => Promise<Uint8Array | string | { bytes: Uint8Array; headers: Record<string, string> }>;
  status: number;
  /** The ERROR frame's code on the native endpoints. */
  wire?: number;
  message: RegExp;
}

export const good = async () => encodeStepRequest(await validStep());
const kserveInputs = (over: { tokens?: Json; prompt_len?: Json; h?: Json } = {}) => ({
  inputs: [
    { name: 'tokens', datatype: 'INT64', shape: [1, 3], data: [256, 72, 105], ...over.tokens },
    { name: 'prompt_len', datatype: 'INT64', shape: [1], data: [3], ...over.prompt_len },
    { name: 'h', datatype: 'FP32', shape: [1, H], data: Array.from({ length: H }, () => 0.1), ...over.h },
  ],
});
const kserve = (v: unknown) => async () => JSON.stringify(v);
export const INFER = '/v2/models/expert-1/infer';

export const TIER_CASES: TierCase[] = [
  {
    kind: 'empty body',
    body: async () => new Uint8Array(0),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /^frame header: truncated/,
  },
  {
    kind: 'not a frame (JSON)',
    body: async () => '{"experts": [0]}',
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /^frame header: expected magic "SWYD" \(53 57 59 44\), found 7b 22 65 78/,
  },
  {
    kind: 'wrong magic',
    body: async () => patched(await good(), (_, __, b) => b.set([0x53, 0x57, 0x59, 0x45])),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /expected magic "SWYD"/,
  },
  {
    kind: 'wrong version',
    body: async () => patched(await good(), (v) => v.setUint16(4, 2, true)),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /^frame header: unsupported protocol version 2; this decoder supports version 1$/,
  },
  {
    kind: 'unknown frame type',
    body: async () => patched(await good(), (v) => v.setUint16(6, 9, true)),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /^frame header: unknown frame type 9; expected one of /,
  },
  {
    kind: 'a DROP_SESSION frame to /v1/step',
    body: async () => encodeDropSession({ sessionId: 'x' }),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /^POST \/v1\/step: expected a STEP_REQUEST frame \(type 1\), found DROP_SESSION/,
  },
  {
    kind: 'a STEP_REQUEST frame to /v1/drop',
    path: '/v1/drop',
    body: good,
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /^POST \/v1\/drop: expected a DROP_SESSION frame \(type 5\), found STEP_REQUEST/,
  },
  {
    kind: 'truncated frame',
    body: async () => (await good()).subarray(0, 100),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /^STEP_REQUEST: truncated: the header declares a \d+-byte payload, 88 bytes available$/,
  },
  {
    kind: 'trailing bytes',
    body: async () => bytes([...(await good())], [0, 0, 0]),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /^STEP_REQUEST: 3 trailing bytes/,
  },
  {
    kind: 'session id not UTF-8',
    body: async () => patched(await good(), (_, o, b) => (b[o.sid + 1] = 0xff)),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /session id/,
  },
  {
    kind: 'reserved flag bit',
    body: async () => patched(await good(), (_, o, b) => (b[o.flags] |= 0x40)),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /flags: expected only defined bits .* found 0x42$/,
  },
  {
    kind: 'wrong hidden size H',
    body: async () => encodeStepRequest(await validStep({ h: new Float32Array(H - 1) })),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: new RegExp(`H: expected ${H} \\(limits.hidden\\), found ${H - 1}$`),
  },
  {
    kind: 'no experts (K = 0)',
    body: async () => patched(await good(), (_, o, b) => (b[o.K] = 0)),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /K: expected 1\.\.64, found 0$/,
  },
  {
    kind: 'oversized batch of experts (K = 65)',
    body: async () => patched(await good(), (_, o, b) => (b[o.K] = 65)),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /K: expected 1\.\.64, found 65$/,
  },
  {
    kind: 'unknown expert id',
    body: async () => encodeStepRequest(await validStep({ experts: [0, 7] })),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: new RegExp(`experts\\[1\\]: expected an id below ${E} \\(limits.maxExperts\\), found 7$`),
  },
  {
    kind: 'duplicate expert ids',
    body: async () => patched(await good(), (v, o) => v.setUint16(o.experts + 2, 0, true)),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /experts: expected distinct ids, found 0 twice/,
  },
  {
    kind: 'NaN in h',
    body: async () => patched(await good(), (v, o) => v.setFloat32(o.h + 8, NaN, true)),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /h\[2\].*NaN/,
  },
  {
    kind: 'Infinity in h',
    body: async () => patched(await good(), (v, o) => v.setFloat32(o.h, Infinity, true)),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /h\[0\].*Infinity/,
  },
  {
    kind: 'Infinity in the gates',
    body: async () => patched(await good(), (v, o) => v.setFloat32(o.gates, Infinity, true)),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /gates\[0\]: expected a finite value ≥ 0, found Infinity$/,
  },
  {
    kind: 'negative gate',
    body: async () => patched(await good(), (v, o) => v.setFloat32(o.gates + 4, -0.5, true)),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: /gates\[1\]: expected a finite value ≥ 0, found -0.5$/,
  },
  {
    kind: 'token id outside the vocabulary',
    body: async () => patched(await good(), (v, o) => v.setUint16(o.tokens + 2, 300, true)),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: new RegExp(`tokens\\[1\\]: expected a token id below ${VOCAB} \\(limits.vocab\\), found 300$`),
  },
  {
    kind: 'prompt longer than Lmax',
    body: async () =>
      encodeStepRequest(
        await validStep(
          {},
          Array.from({ length: LMAX + 1 }, () => 65),
        ),
      ),
    status: 400,
    wire: WireErrorCode.BadFrame,
    message: new RegExp(`token count L: expected 1\\.\\.${LMAX}, found ${LMAX + 1}$`),
  },
  {
    kind: 'tokens that do not match the digest',
    body: async () => encodeStepRequest({ ...(await validStep()), tokens: [256, 1, 2] }),
    status: 400,
    wire: WireErrorCode.InvalidRequest,
    message: /^prompt digest mismatch: the 3 tokens hash to [0-9a-f]{64}, the request names [0-9a-f]{64}/,
  },
  {
    kind: 'body over --max-body-bytes',
    body: async () => new Uint8Array((8 << 20) + 1),
    status: 413,
    wire: WireErrorCode.BadFrame,
    message: /^request body too large: expected at most 8388608 bytes/,
  },
  {
    kind: 'wrong method',
    method: 'GET',
    body: async () => '',
    status: 405,
    message: /^GET \/v1\/step: method not allowed; expected POST$/,
  },
  {
    kind: 'unknown path',
    path: '/v1/steps',
    body: good,
    status: 404,
    message: /^POST \/v1\/steps: no such endpoint/,
  },
  // KServe V2
  {
    kind: 'KServe: invalid JSON',
    path: INFER,
    body: async () => '{"inputs": [',
    status: 400,
    message: /^inference request: expected a JSON object, found invalid JSON/,
  },
  {
    kind: 'KServe: unknown model',
    path: '/v2/models/expert-9/infer',
    body: kserve(kserveInputs()),
    status: 404,
    message: /^model "expert-9" not found: this server serves expert-0, expert-1, expert-2, expert-3$/,
  },
  {
    kind: 'KServe: missing input',
    path: INFER,
    body: kserve({ inputs: kserveInputs().inputs.slice(0, 2) }),
    status: 400,
    message: /^inputs: missing "h"; model expert-1 takes tokens, prompt_len, h$/,
  },
  {
    kind: 'KServe: unknown input',
    path: INFER,
    body: kserve({
      inputs: [...kserveInputs().inputs, { name: 'x', datatype: 'FP32', shape: [1], data: [0] }],
    }),
    status: 400,
    message: /^inputs\[3\]: unknown input "x"/,
  },
  {
    kind: 'KServe: wrong datatype',
    path: INFER,
    body: kserve(kserveInputs({ h: { datatype: 'INT64' } })),
    status: 400,
    message: /^input "h": expected datatype FP32, found "INT64"$/,
  },
  {
    kind: 'KServe: wrong shape of h',
    path: INFER,
    body: kserve(kserveInputs({ h: { shape: [1, H - 1], data: new Array(H - 1).fill(0) } })),
    status: 400,
    message: new RegExp(`^input "h": expected shape \\[1, ${H}\\], found \\[1, ${H - 1}\\]$`),
  },
  {
    kind: 'KServe: rank of tokens',
    path: INFER,
    body: kserve(kserveInputs({ tokens: { shape: [3] } })),
    status: 400,
    message: /^input "tokens": expected a shape of 2 non-negative integers, found \[3\]$/,
  },
  {
    kind: 'KServe: data does not fill the shape',
    path: INFER,
    body: kserve(kserveInputs({ tokens: { data: [256, 72] } })),
    status: 400,
    message: /^input "tokens": expected 3 values for its shape, found 2$/,
  },
  {
    kind: 'KServe: batches that disagree',
    path: INFER,
    body: kserve(kserveInputs({ prompt_len: { shape: [2], data: [3, 3] } })),
    status: 400,
    message: /expected the same batch size B .* found 1, 2 and 1$/,
  },
  {
    kind: 'KServe: oversized batch',
    path: INFER,
    body: kserve(
      kserveInputs({
        tokens: { shape: [2000, 1], data: new Array(2000).fill(65) },
        prompt_len: { shape: [2000], data: new Array(2000).fill(1) },
        h: { shape: [2000, H], data: new Array(2000 * H).fill(0) },
      }),
    ),
    status: 400,
    message: /^input "tokens": expected 1\.\.1024 rows, found 2000$/,
  },
  {
    kind: 'KServe: token outside the vocabulary',
    path: INFER,
    body: kserve(kserveInputs({ tokens: { data: [256, 999, 105] } })),
    status: 400,
    message: new RegExp(
      `^input "tokens": element 1 \\(row 0\\) expected a token id in \\[0, ${VOCAB}\\), found 999$`,
    ),
  },
  {
    kind: 'KServe: prompt_len beyond the row',
    path: INFER,
    body: kserve(kserveInputs({ prompt_len: { data: [9] } })),
    status: 400,
    message: /^input "prompt_len": row 0 expected a length in 1\.\.3/,
  },
  {
    kind: 'KServe: non-number in h',
    path: INFER,
    body: kserve(kserveInputs({ h: { data: ['x', ...new Array(H - 1).fill(0)] } })),
    status: 400,
    message: /^input "h": data\[0\] expected a finite number, found "x"$/,
  },
  {
    kind: 'KServe: NaN in a binary h',
    path: INFER,
    body: async () => {
      const h = new Float32Array(H).fill(NaN);
      const head = new TextEncoder().encode(
        JSON.stringify({
          inputs: [
            ...kserveInputs().inputs.slice(0, 2),
            { name: 'h', datatype: 'FP32', shape: [1, H], parameters: { binary_data_size: h.byteLength } },
          ],
        }),
      );
      return {
        bytes: bytes([...head], [...new Uint8Array(h.buffer)]),
        headers: { 'content-type': 'application/octet-stream', [INFERENCE_HEADER]: String(head.length) },
      };
    },
    status: 400,
    message: /^input "h": element 0 expected a finite number, found NaN$/,
  },
];
