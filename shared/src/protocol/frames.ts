// The native edge ↔ GPU-tier wire protocol (DESIGN.md §3; byte-level spec in shared/PROTOCOL.md).
// Every frame: "SWYD", u16 version, u16 type, u32 payload length, payload; all little-endian.
// Decoding is strict and canonical: anything the decoder accepts re-encodes to the very same bytes, so there is
// exactly one wire form per frame and a fuzzer can check the codec against itself.
import { ProtocolError } from './errors.ts';
import {
  type WireDtype,
  Reader,
  Writer,
  checkVector,
  describeValue,
  hex,
  isWellFormedString,
  utf8Encode,
} from './wire.ts';

export type { WireDtype } from './wire.ts';

export const PROTOCOL_MAGIC = 'SWYD';
export const PROTOCOL_VERSION = 1;
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [1];
export const FRAME_HEADER_BYTES = 12;
export const DIGEST_BYTES = 32;
export const MAX_ID_BYTES = 128;
export const MAX_TOP_K = 64;
export const MAX_HIDDEN = 0xffff;
export const MAX_ERROR_MESSAGE_BYTES = 0xffff;
export const DEFAULT_MAX_PROMPT_TOKENS = 1 << 20;
/** The id length the size helpers assume when not told: a UUID string. */
export const DEFAULT_ID_BYTES = 36;

const MAGIC_BYTES = utf8Encode(PROTOCOL_MAGIC);

export const FrameType = {
  StepRequest: 1,
  StepResponse: 2,
  NeedPrompt: 3,
  Error: 4,
  DropSession: 5,
} as const;
export type FrameTypeId = (typeof FrameType)[keyof typeof FrameType];

const TYPE_NAMES: Record<FrameTypeId, string> = {
  1: 'STEP_REQUEST',
  2: 'STEP_RESPONSE',
  3: 'NEED_PROMPT',
  4: 'ERROR',
  5: 'DROP_SESSION',
};
const VALID_TYPES = Object.entries(TYPE_NAMES)
  .map(([id, name]) => `${id} (${name})`)
  .join(', ');

export function frameTypeName(type: number): string {
  return TYPE_NAMES[type as FrameTypeId] ?? `unknown type ${type}`;
}

/** Bits of a STEP_REQUEST's flags byte. The other bits are reserved and must be zero. */
export const StepRequestFlag = {
  /** h is f16 (else f32). */
  HalfInput: 0x01,
  /** The prompt tokens follow h. */
  PromptTokens: 0x02,
  /** Return each expert's output instead of the gated mixture. */
  PerExpert: 0x04,
  /** Return the output as f16 (else f32). */
  HalfResponse: 0x08,
} as const;

/** Bits of a STEP_RESPONSE's flags byte. The other bits are reserved and must be zero. */
export const StepResponseFlag = {
  /** The values are f16 (else f32). */
  Half: 0x01,
  /** K × H per-expert outputs (else H mixture values). */
  PerExpert: 0x02,
} as const;

/**
 * ERROR frame codes. Receivers treat a code they do not know as Internal; 0 and 1000+ are free for
 * deployment-specific use.
 */
export const WireErrorCode = {
  /** The frame did not decode, or broke the tier's DecodeLimits (the message is the ProtocolError message). */
  BadFrame: 1,
  /** The frame decoded but cannot be served: an expert this tier does not host, tokens that do not match the
   * digest. */
  InvalidRequest: 2,
  /** The tier is over capacity; retry later. */
  Overloaded: 3,
  /** A failure inside the tier. */
  Internal: 4,
  /** The tier is draining; retry against another. */
  ShuttingDown: 5,
} as const;

export interface StepRequest {
  type: 'step-request';
  sessionId: string; // 1..128 bytes of UTF-8
  requestId: string; // 1..128 bytes of UTF-8
  step: number; // u32
  digest: Uint8Array; // 32 bytes: promptDigest(tokens), the prompt-cache key
  hDtype: WireDtype; // how h travels
  responseDtype: WireDtype; // how the tier should send its output back
  perExpert: boolean; // ask for K × H per-expert outputs instead of the H mixture
  experts: readonly number[]; // K distinct ids, 1 ≤ K ≤ 64
  gates: readonly number[]; // K finite values ≥ 0, sent as f32
  h: Float32Array; // [H], 1 ≤ H ≤ 65535
  /** The prompt; present only when the edge sends it (first step of a turn, or after NEED_PROMPT). */
  tokens?: readonly number[];
}

export interface StepResponse {
  type: 'step-response';
  sessionId: string;
  requestId: string;
  step: number;
  dtype: WireDtype; // how the values travel
  perExpert: boolean;
  experts: readonly number[]; // the ids the values belong to, in order
  queueUs: number; // u32: time queued on the tier
  computeUs: number; // u32: time computing
  /** perExpert ? [K, H] row-major, row i for experts[i] : [H] the gated mixture. */
  values: Float32Array;
}

export interface NeedPrompt {
  type: 'need-prompt';
  sessionId: string;
  requestId: string;
  step: number;
  digest: Uint8Array;
}

export interface ErrorFrame {
  type: 'error';
  code: number; // u16, see WireErrorCode
  message: string; // up to 65535 bytes of UTF-8
  requestId: string; // 0..128 bytes; empty when the error is not tied to a request
}

export interface DropSession {
  type: 'drop-session';
  sessionId: string;
}

export type Frame = StepRequest | StepResponse | NeedPrompt | ErrorFrame | DropSession;

/** A frame object for a typed encoder: the `type` tag may be left out. */
export type FrameBody<F extends Frame> = Omit<F, 'type'> & { type?: F['type'] };

/** What the receiver knows about the model; each bound is checked only when given. */
export interface DecodeLimits {
  /** Expert ids must be below this (the model's E). */
  maxExperts?: number;
  /** H must equal this (the model's controller.hidden). */
  hidden?: number;
  /** Token ids must be below this (the model's vocab). */
  vocab?: number;
  /** The most prompt tokens a STEP_REQUEST may carry; default DEFAULT_MAX_PROMPT_TOKENS. */
  maxPromptTokens?: number;
}

export interface FrameHeader {
  version: number;
  type: FrameTypeId;
  payloadLength: number;
  /** FRAME_HEADER_BYTES + payloadLength: how many bytes of a stream this frame occupies. */
  frameLength: number;
}

const KIND_TO_TYPE: Record<Frame['type'], FrameTypeId> = {
  'step-request': FrameType.StepRequest,
  'step-response': FrameType.StepResponse,
  'need-prompt': FrameType.NeedPrompt,
  error: FrameType.Error,
  'drop-session': FrameType.DropSession,
};
const VALID_KINDS = Object.keys(KIND_TO_TYPE)
  .map((k) => `'${k}'`)
  .join(', ');

// ---------------------------------------------------------------------------------------------------------------
// Header

function readHeaderFields(bytes: Uint8Array): { r: Reader; header: FrameHeader } {
  if (!(bytes instanceof Uint8Array))
    throw new ProtocolError(
      'bad-field',
      `frame: expected a Uint8Array, found ${describeValue(bytes)}`,
      'frame',
    );
  // Compare what is there before complaining about length, so a stray HTTP body reads as bad magic.
  const seen = Math.min(bytes.length, MAGIC_BYTES.length);
  for (let i = 0; i < seen; i++) {
    if (bytes[i] !== MAGIC_BYTES[i]) {
      const found = bytes.subarray(0, MAGIC_BYTES.length);
      throw new ProtocolError(
        'bad-magic',
        `frame header: expected magic "${PROTOCOL_MAGIC}" (${hex(MAGIC_BYTES)}), found ${hex(found)} (${printable(found)})`,
        'magic',
      );
    }
  }
  const r = new Reader(bytes, 'frame header');
  r.skip(MAGIC_BYTES.length, 'magic');
  const version = r.u16('version');
  if (!SUPPORTED_PROTOCOL_VERSIONS.includes(version))
    throw new ProtocolError(
      'bad-version',
      `frame header: unsupported protocol version ${version}; this decoder supports version ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')}`,
      'version',
    );
  const type = r.u16('frame type');
  if (!(type in TYPE_NAMES))
    throw new ProtocolError(
      'bad-type',
      `frame header: unknown frame type ${type}; expected one of ${VALID_TYPES}`,
      'frame type',
    );
  const payloadLength = r.u32('payload length');
  return {
    r,
    header: {
      version,
      type: type as FrameTypeId,
      payloadLength,
      frameLength: FRAME_HEADER_BYTES + payloadLength,
    },
  };
}

function printable(b: Uint8Array): string {
  return JSON.stringify(
    Array.from(b, (c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.')).join(''),
  );
}

/**
 * Reads and checks the 12-byte header (magic, version, type) without looking at the payload. Over a byte stream,
 * `frameLength` says where this frame ends; bytes may hold more than one frame.
 */
export function readFrameHeader(bytes: Uint8Array): FrameHeader {
  return readHeaderFields(bytes).header;
}

function openFrame(bytes: Uint8Array): { r: Reader; header: FrameHeader } {
  const { r, header } = readHeaderFields(bytes);
  const name = TYPE_NAMES[header.type];
  const actual = bytes.length - FRAME_HEADER_BYTES;
  if (header.payloadLength > actual)
    throw new ProtocolError(
      'truncated',
      `${name}: truncated: the header declares a ${header.payloadLength}-byte payload, ${actual} bytes available`,
      'payload length',
    );
  if (header.payloadLength < actual)
    throw new ProtocolError(
      'trailing-bytes',
      `${name}: ${actual - header.payloadLength} trailing bytes: the header declares a ${header.payloadLength}-byte payload, ${actual} bytes follow it`,
      'payload length',
    );
  r.context = name;
  return { r, header };
}

function closeFrame(r: Reader, lastField: string): void {
  const left = r.remaining();
  if (left > 0)
    throw new ProtocolError(
      'trailing-bytes',
      `${r.context}: ${left} bytes left in the payload after the last field (${lastField}); expected none`,
      'payload',
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Limits

interface Limits {
  maxExperts: number;
  hidden: number | undefined;
  vocab: number;
  maxPromptTokens: number;
}

function resolveLimits(l: DecodeLimits | undefined): Limits {
  const check = (name: string, v: number | undefined, max: number): void => {
    if (v !== undefined && !(Number.isInteger(v) && v >= 1 && v <= max))
      throw new RangeError(
        `DecodeLimits.${name}: expected an integer in 1..${max}, found ${describeValue(v)}`,
      );
  };
  check('maxExperts', l?.maxExperts, 0x10000);
  check('hidden', l?.hidden, MAX_HIDDEN);
  check('vocab', l?.vocab, 0x10000);
  check('maxPromptTokens', l?.maxPromptTokens, 0xffffffff);
  return {
    maxExperts: l?.maxExperts ?? 0x10000,
    hidden: l?.hidden,
    vocab: l?.vocab ?? 0x10000,
    maxPromptTokens: l?.maxPromptTokens ?? DEFAULT_MAX_PROMPT_TOKENS,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Shared payload pieces (decode)

const REQUEST_FLAG_NAMES = '0x01 h-f16, 0x02 prompt-tokens, 0x04 per-expert, 0x08 response-f16';
const RESPONSE_FLAG_NAMES = '0x01 f16, 0x02 per-expert';

function readFlags(r: Reader, valid: number, names: string): number {
  const flags = r.u8('flags');
  if ((flags & ~valid) !== 0)
    r.fail(
      'flags',
      `only defined bits (${names}); reserved bits 0x${(~valid & 0xff).toString(16)} must be zero`,
      `0x${flags.toString(16).padStart(2, '0')}`,
    );
  return flags;
}

function readHidden(r: Reader, lim: Limits): number {
  const hidden = r.u16('H');
  if (hidden === 0) r.fail('H', `1..${MAX_HIDDEN}`, '0');
  if (lim.hidden !== undefined && hidden !== lim.hidden)
    r.fail('H', `${lim.hidden} (limits.hidden)`, `${hidden}`);
  return hidden;
}

function readExperts(r: Reader, lim: Limits): number[] {
  const k = r.u8('K');
  if (k < 1 || k > MAX_TOP_K) r.fail('K', `1..${MAX_TOP_K}`, `${k}`);
  const experts = r.u16Array(k, 'experts', (id, i) => {
    if (id >= lim.maxExperts)
      r.fail(`experts[${i}]`, `an id below ${lim.maxExperts} (limits.maxExperts)`, `${id}`);
  });
  for (let i = 1; i < k; i++)
    for (let j = 0; j < i; j++)
      if (experts[i] === experts[j])
        r.fail('experts', 'distinct ids', `${experts[i]} twice, at positions ${j} and ${i}`);
  return experts;
}

// ---------------------------------------------------------------------------------------------------------------
// Shared payload pieces (encode)

type Fail = (field: string, expected: string, found: string) => never;

function failer(context: string): Fail {
  return (field, expected, found) => {
    throw new ProtocolError('bad-field', `${context} ${field}: expected ${expected}, found ${found}`, field);
  };
}

function idBytes(fail: Fail, field: string, s: unknown, min: number): Uint8Array {
  if (typeof s !== 'string') fail(field, 'a string', describeValue(s));
  if (!isWellFormedString(s)) fail(field, 'a well-formed string', 'an unpaired surrogate');
  const b = utf8Encode(s);
  if (b.length < min || b.length > MAX_ID_BYTES)
    fail(field, `${min}..${MAX_ID_BYTES} bytes of UTF-8`, `${b.length} bytes`);
  return b;
}

function checkUint(fail: Fail, field: string, v: unknown, max: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
    fail(field, `an integer in 0..${max}`, describeValue(v));
}

function checkDtype(fail: Fail, field: string, v: unknown): asserts v is WireDtype {
  if (v !== 'f16' && v !== 'f32') fail(field, `one of 'f16', 'f32'`, describeValue(v));
}

function checkBool(fail: Fail, field: string, v: unknown): asserts v is boolean {
  if (typeof v !== 'boolean') fail(field, 'a boolean', describeValue(v));
}

function checkDigest(fail: Fail, d: unknown): asserts d is Uint8Array {
  if (!(d instanceof Uint8Array) || d.length !== DIGEST_BYTES)
    fail('digest', `a Uint8Array of ${DIGEST_BYTES} bytes`, describeValue(d));
}

function checkExperts(fail: Fail, experts: unknown): asserts experts is readonly number[] {
  if (!Array.isArray(experts)) fail('experts', 'an array of expert ids', describeValue(experts));
  if (experts.length < 1 || experts.length > MAX_TOP_K)
    fail('experts', `1..${MAX_TOP_K} ids`, `${experts.length}`);
  experts.forEach((id, i) => checkUint(fail, `experts[${i}]`, id, 0xffff));
  const seen = new Map<number, number>();
  experts.forEach((id: number, i) => {
    const j = seen.get(id);
    if (j !== undefined) fail('experts', 'distinct ids', `${id} twice, at positions ${j} and ${i}`);
    seen.set(id, i);
  });
}

function checkTag(context: string, frame: { type?: unknown }, kind: Frame['type']): void {
  if (frame.type !== undefined && frame.type !== kind)
    throw new ProtocolError(
      'bad-type',
      `${context}: expected type '${kind}' (or none), found ${describeValue(frame.type)}`,
      'type',
    );
}

interface Plan {
  type: FrameTypeId;
  payloadBytes: number;
  write(w: Writer): void;
}

function seal(plan: Plan): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + plan.payloadBytes);
  const w = new Writer(out);
  w.raw(MAGIC_BYTES);
  w.u16(PROTOCOL_VERSION);
  w.u16(plan.type);
  w.u32(plan.payloadBytes);
  plan.write(w);
  if (w.offset !== out.length)
    throw new Error(
      `internal: wrote ${w.offset} bytes of a ${out.length}-byte ${TYPE_NAMES[plan.type]} frame`,
    );
  return out;
}

const dtypeBytes = (d: WireDtype): number => (d === 'f16' ? 2 : 4);

// ---------------------------------------------------------------------------------------------------------------
// STEP_REQUEST

// Every per-step frame (STEP_REQUEST, STEP_RESPONSE, NEED_PROMPT) starts with the same three fields.
interface StepIds {
  session: Uint8Array;
  request: Uint8Array;
  step: number;
  /** Their size on the wire: u8 + session id, u8 + request id, u32 step. */
  bytes: number;
}

function planStepIds(
  fail: ReturnType<typeof failer>,
  f: { sessionId: unknown; requestId: unknown; step: unknown },
): StepIds {
  const session = idBytes(fail, 'sessionId', f.sessionId, 1);
  const request = idBytes(fail, 'requestId', f.requestId, 1);
  checkUint(fail, 'step', f.step, 0xffffffff);
  const step = f.step as number;
  return { session, request, step, bytes: 1 + session.length + 1 + request.length + 4 };
}

function writeStepIds(w: Writer, ids: StepIds): void {
  w.u8(ids.session.length);
  w.raw(ids.session);
  w.u8(ids.request.length);
  w.raw(ids.request);
  w.u32(ids.step);
}

function readStepIds(r: Reader): { sessionId: string; requestId: string; step: number } {
  const sessionId = r.string('session id', 'u8', 1, MAX_ID_BYTES);
  const requestId = r.string('request id', 'u8', 1, MAX_ID_BYTES);
  return { sessionId, requestId, step: r.u32('step') };
}

function planStepRequest(f: FrameBody<StepRequest>): Plan {
  const context = 'STEP_REQUEST';
  checkTag(context, f, 'step-request');
  const fail = failer(context);
  const ids = planStepIds(fail, f);
  checkDigest(fail, f.digest);
  checkDtype(fail, 'hDtype', f.hDtype);
  checkDtype(fail, 'responseDtype', f.responseDtype);
  checkBool(fail, 'perExpert', f.perExpert);
  checkExperts(fail, f.experts);
  const k = f.experts.length;
  if (!Array.isArray(f.gates) || f.gates.length !== k)
    fail('gates', `an array of ${k} gates (one per expert)`, describeValue(f.gates));
  f.gates.forEach((g: unknown, i) => {
    if (typeof g !== 'number' || !Number.isFinite(Math.fround(g)) || !(g >= 0))
      fail(`gates[${i}]`, 'a finite f32 value ≥ 0', describeValue(g));
  });
  checkVector(f.h, f.hDtype, fail, 'h');
  const hidden = f.h.length;
  if (hidden < 1 || hidden > MAX_HIDDEN) fail('h', `1..${MAX_HIDDEN} values`, `${hidden}`);
  const tokens = f.tokens;
  if (tokens !== undefined) {
    if (!Array.isArray(tokens)) fail('tokens', 'an array of token ids or undefined', describeValue(tokens));
    if (tokens.length < 1) fail('tokens', 'at least 1 token (leave tokens out to send none)', '0');
    if (tokens.length > 0xffffffff) fail('tokens', `at most ${0xffffffff} tokens`, `${tokens.length}`);
    tokens.forEach((t, i) => checkUint(fail, `tokens[${i}]`, t, 0xffff));
  }
  const flags =
    (f.hDtype === 'f16' ? StepRequestFlag.HalfInput : 0) |
    (tokens !== undefined ? StepRequestFlag.PromptTokens : 0) |
    (f.perExpert ? StepRequestFlag.PerExpert : 0) |
    (f.responseDtype === 'f16' ? StepRequestFlag.HalfResponse : 0);
  const payloadBytes =
    ids.bytes +
    DIGEST_BYTES +
    1 +
    2 +
    1 +
    k * 2 +
    k * 4 +
    hidden * dtypeBytes(f.hDtype) +
    (tokens !== undefined ? 4 + tokens.length * 2 : 0);
  return {
    type: FrameType.StepRequest,
    payloadBytes,
    write(w) {
      writeStepIds(w, ids);
      w.raw(f.digest);
      w.u8(flags);
      w.u16(hidden);
      w.u8(k);
      for (const id of f.experts) w.u16(id);
      for (const g of f.gates) w.f32(g);
      w.vector(f.h, f.hDtype);
      if (tokens !== undefined) {
        w.u32(tokens.length);
        for (const t of tokens) w.u16(t);
      }
    },
  };
}

function readStepRequest(r: Reader, lim: Limits): StepRequest {
  const { sessionId, requestId, step } = readStepIds(r);
  const digest = r.bytesCopy(DIGEST_BYTES, 'prompt digest');
  const flags = readFlags(r, 0x0f, REQUEST_FLAG_NAMES);
  const hidden = readHidden(r, lim);
  const experts = readExperts(r, lim);
  const gates = r.f32List(experts.length, 'gates', (g, i) => {
    if (!Number.isFinite(g) || !(g >= 0)) r.fail(`gates[${i}]`, 'a finite value ≥ 0', `${g}`);
  });
  const hDtype: WireDtype = flags & StepRequestFlag.HalfInput ? 'f16' : 'f32';
  const h = r.finiteVector(hidden, hDtype, 'h');
  const frame: StepRequest = {
    type: 'step-request',
    sessionId,
    requestId,
    step,
    digest,
    hDtype,
    responseDtype: flags & StepRequestFlag.HalfResponse ? 'f16' : 'f32',
    perExpert: (flags & StepRequestFlag.PerExpert) !== 0,
    experts,
    gates,
    h,
  };
  let last = 'h';
  if (flags & StepRequestFlag.PromptTokens) {
    const n = r.u32('token count L');
    if (n < 1 || n > lim.maxPromptTokens) r.fail('token count L', `1..${lim.maxPromptTokens}`, `${n}`);
    frame.tokens = r.u16Array(n, 'tokens', (t, i) => {
      if (t >= lim.vocab) r.fail(`tokens[${i}]`, `a token id below ${lim.vocab} (limits.vocab)`, `${t}`);
    });
    last = 'tokens';
  }
  closeFrame(r, last);
  return frame;
}

// ---------------------------------------------------------------------------------------------------------------
// STEP_RESPONSE

function planStepResponse(f: FrameBody<StepResponse>): Plan {
  const context = 'STEP_RESPONSE';
  checkTag(context, f, 'step-response');
  const fail = failer(context);
  const ids = planStepIds(fail, f);
  checkDtype(fail, 'dtype', f.dtype);
  checkBool(fail, 'perExpert', f.perExpert);
  checkExperts(fail, f.experts);
  checkUint(fail, 'queueUs', f.queueUs, 0xffffffff);
  checkUint(fail, 'computeUs', f.computeUs, 0xffffffff);
  checkVector(f.values, f.dtype, fail, 'values');
  const k = f.experts.length;
  const rows = f.perExpert ? k : 1;
  const hidden = f.values.length / rows;
  if (!Number.isInteger(hidden) || hidden < 1 || hidden > MAX_HIDDEN)
    fail(
      'values',
      f.perExpert
        ? `K × H values with K = ${k} and H in 1..${MAX_HIDDEN}`
        : `H values (the mixture) with H in 1..${MAX_HIDDEN}`,
      `${f.values.length}`,
    );
  const flags =
    (f.dtype === 'f16' ? StepResponseFlag.Half : 0) | (f.perExpert ? StepResponseFlag.PerExpert : 0);
  const payloadBytes = ids.bytes + 1 + 2 + 1 + k * 2 + 4 + 4 + f.values.length * dtypeBytes(f.dtype);
  return {
    type: FrameType.StepResponse,
    payloadBytes,
    write(w) {
      writeStepIds(w, ids);
      w.u8(flags);
      w.u16(hidden);
      w.u8(k);
      for (const id of f.experts) w.u16(id);
      w.u32(f.queueUs);
      w.u32(f.computeUs);
      w.vector(f.values, f.dtype);
    },
  };
}

function readStepResponse(r: Reader, lim: Limits): StepResponse {
  const { sessionId, requestId, step } = readStepIds(r);
  const flags = readFlags(r, 0x03, RESPONSE_FLAG_NAMES);
  const hidden = readHidden(r, lim);
  const experts = readExperts(r, lim);
  const queueUs = r.u32('queue_us');
  const computeUs = r.u32('compute_us');
  const dtype: WireDtype = flags & StepResponseFlag.Half ? 'f16' : 'f32';
  const perExpert = (flags & StepResponseFlag.PerExpert) !== 0;
  const values = r.finiteVector(
    perExpert ? experts.length * hidden : hidden,
    dtype,
    perExpert ? 'outputs' : 'mixture',
  );
  closeFrame(r, perExpert ? 'outputs' : 'mixture');
  return {
    type: 'step-response',
    sessionId,
    requestId,
    step,
    dtype,
    perExpert,
    experts,
    queueUs,
    computeUs,
    values,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// NEED_PROMPT, ERROR, DROP_SESSION

function planNeedPrompt(f: FrameBody<NeedPrompt>): Plan {
  const context = 'NEED_PROMPT';
  checkTag(context, f, 'need-prompt');
  const fail = failer(context);
  const ids = planStepIds(fail, f);
  checkDigest(fail, f.digest);
  return {
    type: FrameType.NeedPrompt,
    payloadBytes: ids.bytes + DIGEST_BYTES,
    write(w) {
      writeStepIds(w, ids);
      w.raw(f.digest);
    },
  };
}

function readNeedPrompt(r: Reader): NeedPrompt {
  const { sessionId, requestId, step } = readStepIds(r);
  const digest = r.bytesCopy(DIGEST_BYTES, 'prompt digest');
  closeFrame(r, 'prompt digest');
  return { type: 'need-prompt', sessionId, requestId, step, digest };
}

function planError(f: FrameBody<ErrorFrame>): Plan {
  const context = 'ERROR';
  checkTag(context, f, 'error');
  const fail = failer(context);
  checkUint(fail, 'code', f.code, 0xffff);
  if (typeof f.message !== 'string') fail('message', 'a string', describeValue(f.message));
  if (!isWellFormedString(f.message)) fail('message', 'a well-formed string', 'an unpaired surrogate');
  const message = utf8Encode(f.message);
  if (message.length > MAX_ERROR_MESSAGE_BYTES)
    fail('message', `at most ${MAX_ERROR_MESSAGE_BYTES} bytes of UTF-8`, `${message.length} bytes`);
  const request = idBytes(fail, 'requestId', f.requestId, 0);
  return {
    type: FrameType.Error,
    payloadBytes: 2 + 2 + message.length + 1 + request.length,
    write(w) {
      w.u16(f.code);
      w.u16(message.length);
      w.raw(message);
      w.u8(request.length);
      w.raw(request);
    },
  };
}

function readError(r: Reader): ErrorFrame {
  const code = r.u16('code');
  const message = r.string('message', 'u16', 0, MAX_ERROR_MESSAGE_BYTES);
  const requestId = r.string('request id', 'u8', 0, MAX_ID_BYTES);
  closeFrame(r, 'request id');
  return { type: 'error', code, message, requestId };
}

function planDropSession(f: FrameBody<DropSession>): Plan {
  const context = 'DROP_SESSION';
  checkTag(context, f, 'drop-session');
  const session = idBytes(failer(context), 'sessionId', f.sessionId, 1);
  return {
    type: FrameType.DropSession,
    payloadBytes: 1 + session.length,
    write(w) {
      w.u8(session.length);
      w.raw(session);
    },
  };
}

function readDropSession(r: Reader): DropSession {
  const sessionId = r.string('session id', 'u8', 1, MAX_ID_BYTES);
  closeFrame(r, 'session id');
  return { type: 'drop-session', sessionId };
}

// ---------------------------------------------------------------------------------------------------------------
// Public entry points

function plan(frame: Frame): Plan {
  if (frame === null || typeof frame !== 'object')
    throw new ProtocolError('bad-type', `frame: expected an object, found ${describeValue(frame)}`, 'type');
  switch (frame.type) {
    case 'step-request':
      return planStepRequest(frame);
    case 'step-response':
      return planStepResponse(frame);
    case 'need-prompt':
      return planNeedPrompt(frame);
    case 'error':
      return planError(frame);
    case 'drop-session':
      return planDropSession(frame);
    default:
      throw new ProtocolError(
        'bad-type',
        `frame: expected type to be one of ${VALID_KINDS}, found ${describeValue((frame as { type?: unknown }).type)}`,
        'type',
      );
  }
}

/** Encodes any frame; throws ProtocolError ('bad-field' / 'bad-type') for a frame the decoder would reject. */
export function encodeFrame(frame: Frame): Uint8Array {
  return seal(plan(frame));
}

/** The encoded size of a frame, without encoding it (the frame is validated as encodeFrame would). */
export function frameByteLength(frame: Frame): number {
  return FRAME_HEADER_BYTES + plan(frame).payloadBytes;
}

function readPayload(r: Reader, type: FrameTypeId, lim: Limits): Frame {
  switch (type) {
    case FrameType.StepRequest:
      return readStepRequest(r, lim);
    case FrameType.StepResponse:
      return readStepResponse(r, lim);
    case FrameType.NeedPrompt:
      return readNeedPrompt(r);
    case FrameType.Error:
      return readError(r);
    case FrameType.DropSession:
      return readDropSession(r);
  }
}

/** Decodes exactly one frame occupying all of `bytes`. Throws ProtocolError for anything malformed. */
export function decodeFrame(bytes: Uint8Array, limits?: DecodeLimits): Frame {
  const lim = resolveLimits(limits);
  const { r, header } = openFrame(bytes);
  return readPayload(r, header.type, lim);
}

function decodeAs<F extends Frame>(bytes: Uint8Array, want: FrameTypeId, limits?: DecodeLimits): F {
  const lim = resolveLimits(limits);
  const { r, header } = openFrame(bytes);
  if (header.type !== want) {
    let detail = '';
    if (header.type === FrameType.Error) {
      // The peer's error is what the caller most needs to see, so surface it when it decodes.
      try {
        const e = readError(r);
        detail = `: code ${e.code}, ${JSON.stringify(e.message)}`;
      } catch {
        detail = '';
      }
    }
    throw new ProtocolError(
      'bad-type',
      `expected a ${TYPE_NAMES[want]} frame (type ${want}), found ${TYPE_NAMES[header.type]} (type ${header.type})${detail}`,
      'frame type',
    );
  }
  return readPayload(r, header.type, lim) as F;
}

export const encodeStepRequest = (f: FrameBody<StepRequest>): Uint8Array => seal(planStepRequest(f));
export const encodeStepResponse = (f: FrameBody<StepResponse>): Uint8Array => seal(planStepResponse(f));
export const encodeNeedPrompt = (f: FrameBody<NeedPrompt>): Uint8Array => seal(planNeedPrompt(f));
export const encodeErrorFrame = (f: FrameBody<ErrorFrame>): Uint8Array => seal(planError(f));
export const encodeDropSession = (f: FrameBody<DropSession>): Uint8Array => seal(planDropSession(f));

export const decodeStepRequest = (b: Uint8Array, limits?: DecodeLimits): StepRequest =>
  decodeAs(b, FrameType.StepRequest, limits);
export const decodeStepResponse = (b: Uint8Array, limits?: DecodeLimits): StepResponse =>
  decodeAs(b, FrameType.StepResponse, limits);
export const decodeNeedPrompt = (b: Uint8Array): NeedPrompt => decodeAs(b, FrameType.NeedPrompt);
export const decodeErrorFrame = (b: Uint8Array): ErrorFrame => decodeAs(b, FrameType.Error);
export const decodeDropSession = (b: Uint8Array): DropSession => decodeAs(b, FrameType.DropSession);

// ---------------------------------------------------------------------------------------------------------------
// Sizes

/** The shape of a step, for sizing frames without building them. */
export interface StepShape {
  hidden: number; // H
  topK: number; // K
  /** default 'f16' */
  hDtype?: WireDtype;
  /** default 'f32' */
  responseDtype?: WireDtype;
  /** default false */
  perExpert?: boolean;
  /** Prompt tokens carried; default 0 (steady state: the tier has the prompt cached). */
  promptTokens?: number;
  /** UTF-8 bytes of each id; default DEFAULT_ID_BYTES (a UUID). */
  sessionIdBytes?: number;
  requestIdBytes?: number;
}

/** Bytes of a STEP_REQUEST frame of this shape (header included). */
export function stepRequestByteLength(s: StepShape): number {
  const tokens = s.promptTokens ?? 0;
  return (
    FRAME_HEADER_BYTES +
    1 +
    (s.sessionIdBytes ?? DEFAULT_ID_BYTES) +
    1 +
    (s.requestIdBytes ?? DEFAULT_ID_BYTES) +
    4 +
    DIGEST_BYTES +
    1 +
    2 +
    1 +
    s.topK * (2 + 4) +
    s.hidden * dtypeBytes(s.hDtype ?? 'f16') +
    (tokens > 0 ? 4 + tokens * 2 : 0)
  );
}

/** Bytes of the STEP_RESPONSE frame answering a request of this shape (header included). */
export function stepResponseByteLength(s: StepShape): number {
  return (
    FRAME_HEADER_BYTES +
    1 +
    (s.sessionIdBytes ?? DEFAULT_ID_BYTES) +
    1 +
    (s.requestIdBytes ?? DEFAULT_ID_BYTES) +
    4 +
    1 +
    2 +
    1 +
    s.topK * 2 +
    4 +
    4 +
    (s.perExpert ? s.topK : 1) * s.hidden * dtypeBytes(s.responseDtype ?? 'f32')
  );
}

/**
 * Steady-state wire cost of one r1-seed step (H = 512, K = 4, UUID ids, f16 h, f32 mixture back, no tokens):
 * 1174 + 2158 bytes. PROTOCOL.md derives these by hand.
 */
export const R1_SEED_STEP_BYTES = {
  request: stepRequestByteLength({ hidden: 512, topK: 4 }),
  response: stepResponseByteLength({ hidden: 512, topK: 4 }),
} as const;
