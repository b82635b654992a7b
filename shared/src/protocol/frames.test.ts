import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_ERROR_CODES, ProtocolError, type ProtocolErrorCode } from './errors.ts';
import { F16_MIN_NORMAL, roundToF16 } from './f16.ts';
import {
  DEFAULT_ID_BYTES,
  type DecodeLimits,
  type DropSession,
  type ErrorFrame,
  type Frame,
  type NeedPrompt,
  R1_SEED_STEP_BYTES,
  type StepRequest,
  type StepResponse,
  WireErrorCode,
  decodeDropSession,
  decodeErrorFrame,
  decodeFrame,
  decodeNeedPrompt,
  decodeStepRequest,
  decodeStepResponse,
  encodeDropSession,
  encodeErrorFrame,
  encodeFrame,
  encodeNeedPrompt,
  encodeStepRequest,
  encodeStepResponse,
  frameByteLength,
  frameTypeName,
  readFrameHeader,
  stepRequestByteLength,
  stepResponseByteLength,
} from './frames.ts';

// ----------------------------------------------------------------------------------------------------------------
// A byte builder written from PROTOCOL.md, independent of the codec, so malformed frames can be made field by field.

class Bytes {
  private readonly out: number[] = [];
  u8(v: number): this {
    this.out.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    this.out.push(v & 0xff, (v >>> 8) & 0xff);
    return this;
  }
  u32(v: number): this {
    this.out.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
    return this;
  }
  f32(v: number): this {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setFloat32(0, v, true);
    return this.u32(dv.getUint32(0, true));
  }
  raw(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.out.push(b[i]);
    return this;
  }
  str8(s: string | number[]): this {
    const b = typeof s === 'string' ? new TextEncoder().encode(s) : s;
    return this.u8(b.length).raw(b);
  }
  build(): Uint8Array {
    return new Uint8Array(this.out);
  }
}

function wrap(
  type: number,
  payload: Uint8Array,
  o: { magic?: number[]; version?: number; length?: number } = {},
): Uint8Array {
  return new Bytes()
    .raw(o.magic ?? [0x53, 0x57, 0x59, 0x44])
    .u16(o.version ?? 1)
    .u16(type)
    .u32(o.length ?? payload.length)
    .raw(payload)
    .build();
}

const fromHex = (s: string): Uint8Array =>
  new Uint8Array(
    s
      .trim()
      .split(/\s+/)
      .map((x) => parseInt(x, 16)),
  );

interface RawRequest {
  session: string | number[];
  request: string | number[];
  step: number;
  digest: number[];
  flags: number;
  H?: number;
  K?: number;
  experts: number[];
  gates: number[];
  h: number[]; // f32 values, or f16 bits when flags bit0 is set
  L?: number;
  tokens?: number[];
}

const DIGEST = Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);

const baseRaw = (): RawRequest => ({
  session: 'sess',
  request: 'req-1',
  step: 3,
  digest: DIGEST,
  flags: 0,
  experts: [2, 0, 3],
  gates: [0.5, 0.25, 0.25],
  h: [1, -2, 0.5, 3],
});

function rawRequest(o: Partial<RawRequest> = {}): Uint8Array {
  const r = { ...baseRaw(), ...o };
  const b = new Bytes().str8(r.session).str8(r.request).u32(r.step).raw(r.digest).u8(r.flags);
  b.u16(r.H ?? r.h.length).u8(r.K ?? r.experts.length);
  r.experts.forEach((e) => b.u16(e));
  r.gates.forEach((g) => b.f32(g));
  r.h.forEach((v) => (r.flags & 1 ? b.u16(v) : b.f32(v)));
  if (r.flags & 2) {
    b.u32(r.L ?? r.tokens!.length);
    r.tokens!.forEach((t) => b.u16(t));
  }
  return wrap(1, b.build());
}

interface RawResponse {
  flags: number;
  H?: number;
  experts: number[];
  values: number[]; // f32 values, or f16 bits when flags bit0 is set
}

function rawResponse(o: Partial<RawResponse> = {}): Uint8Array {
  const r: RawResponse = { flags: 0, experts: [2, 0], values: [1, 2, 3], ...o };
  const b = new Bytes()
    .str8('sess')
    .str8('req-1')
    .u32(3)
    .u8(r.flags)
    .u16(r.H ?? r.values.length);
  b.u8(r.experts.length);
  r.experts.forEach((e) => b.u16(e));
  b.u32(10).u32(20);
  r.values.forEach((v) => (r.flags & 1 ? b.u16(v) : b.f32(v)));
  return wrap(2, b.build());
}

function catchProtocol(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw new Error(`expected a ProtocolError, got ${String(e)}`);
  }
  throw new Error('expected a ProtocolError, but nothing was thrown');
}

function expectReject(
  bytes: Uint8Array,
  code: ProtocolErrorCode,
  ...parts: (string | RegExp)[]
): ProtocolError {
  const e = catchProtocol(() => decodeFrame(bytes));
  return checkError(e, code, parts);
}

function expectRejectWith(
  bytes: Uint8Array,
  limits: DecodeLimits,
  code: ProtocolErrorCode,
  ...parts: (string | RegExp)[]
): ProtocolError {
  return checkError(
    catchProtocol(() => decodeFrame(bytes, limits)),
    code,
    parts,
  );
}

function checkError(e: ProtocolError, code: ProtocolErrorCode, parts: (string | RegExp)[]): ProtocolError {
  expect(e.name).toBe('ProtocolError');
  expect(e.code, e.message).toBe(code);
  for (const p of parts) {
    if (typeof p === 'string') expect(e.message).toContain(p);
    else expect(e.message).toMatch(p);
  }
  return e;
}

const sampleRequest = (o: Partial<StepRequest> = {}): StepRequest => ({
  type: 'step-request',
  sessionId: 'session-7f3a',
  requestId: 'req-42',
  step: 5,
  digest: new Uint8Array(DIGEST),
  hDtype: 'f32',
  responseDtype: 'f32',
  perExpert: false,
  experts: [7, 1, 12, 4],
  gates: [0.5, 0.25, 0.125, 0.125],
  h: new Float32Array([0.1, -3.5, 1e-6, 42, -0, 7]),
  ...o,
});

const sampleResponse = (o: Partial<StepResponse> = {}): StepResponse => ({
  type: 'step-response',
  sessionId: 'session-7f3a',
  requestId: 'req-42',
  step: 5,
  dtype: 'f32',
  perExpert: false,
  experts: [7, 1, 12, 4],
  queueUs: 120,
  computeUs: 3400,
  values: new Float32Array([0.25, -1.5, 3, 1e-3]),
  ...o,
});

const sampleNeedPrompt = (): NeedPrompt => ({
  type: 'need-prompt',
  sessionId: 'session-7f3a',
  requestId: 'req-42',
  step: 1,
  digest: new Uint8Array(DIGEST),
});

// ----------------------------------------------------------------------------------------------------------------

describe('wire layout (the worked examples in PROTOCOL.md)', () => {
  const aa = Array(32).fill('aa').join(' ');
  const digest = new Uint8Array(32).fill(0xaa);

  it('DROP_SESSION "ab"', () => {
    const bytes = fromHex('53 57 59 44  01 00  05 00  03 00 00 00  02 61 62');
    expect(encodeFrame({ type: 'drop-session', sessionId: 'ab' })).toEqual(bytes);
    expect(decodeFrame(bytes)).toEqual({ type: 'drop-session', sessionId: 'ab' });
  });

  it('STEP_REQUEST: H = 2 as f16, K = 1, no tokens', () => {
    const bytes = fromHex(`53 57 59 44  01 00  01 00  38 00 00 00
      02 73 31  02 72 31  07 00 00 00  ${aa}  01  02 00  01  03 00  00 00 80 3f  00 3c 00 c0`);
    const frame: StepRequest = {
      type: 'step-request',
      sessionId: 's1',
      requestId: 'r1',
      step: 7,
      digest,
      hDtype: 'f16',
      responseDtype: 'f32',
      perExpert: false,
      experts: [3],
      gates: [1],
      h: new Float32Array([1, -2]),
    };
    expect(encodeFrame(frame)).toEqual(bytes);
    expect(decodeFrame(bytes)).toEqual(frame);
  });

  it('STEP_REQUEST with tokens, per-expert and f16 response flags', () => {
    const bytes = fromHex(`53 57 59 44  01 00  01 00  42 00 00 00
      02 73 31  02 72 31  00 00 00 00  ${aa}  0e  01 00  01  03 00  00 00 80 3f  00 00 80 3f
      03 00 00 00  00 01  68 00  0a 00`);
    const frame = decodeStepRequest(bytes);
    expect(frame).toEqual({
      type: 'step-request',
      sessionId: 's1',
      requestId: 'r1',
      step: 0,
      digest,
      hDtype: 'f32',
      responseDtype: 'f16',
      perExpert: true,
      experts: [3],
      gates: [1],
      h: new Float32Array([1]),
      tokens: [256, 104, 10],
    });
    expect(encodeFrame(frame)).toEqual(bytes);
  });

  it('STEP_RESPONSE: f32 mixture', () => {
    const bytes = fromHex(`53 57 59 44  01 00  02 00  20 00 00 00
      02 73 31  02 72 31  07 00 00 00  00  02 00  01  03 00  0a 00 00 00  fa 00 00 00
      00 00 00 3f  00 00 80 be`);
    const frame: StepResponse = {
      type: 'step-response',
      sessionId: 's1',
      requestId: 'r1',
      step: 7,
      dtype: 'f32',
      perExpert: false,
      experts: [3],
      queueUs: 10,
      computeUs: 250,
      values: new Float32Array([0.5, -0.25]),
    };
    expect(encodeFrame(frame)).toEqual(bytes);
    expect(decodeFrame(bytes)).toEqual(frame);
  });

  it('NEED_PROMPT and ERROR', () => {
    const need = fromHex(`53 57 59 44  01 00  03 00  2a 00 00 00  02 73 31  02 72 31  07 00 00 00  ${aa}`);
    expect(encodeFrame({ type: 'need-prompt', sessionId: 's1', requestId: 'r1', step: 7, digest })).toEqual(
      need,
    );
    const err = fromHex('53 57 59 44  01 00  04 00  0b 00 00 00  03 00  04 00 62 75 73 79  02 72 31');
    const frame: ErrorFrame = {
      type: 'error',
      code: WireErrorCode.Overloaded,
      message: 'busy',
      requestId: 'r1',
    };
    expect(encodeFrame(frame)).toEqual(err);
    expect(decodeFrame(err)).toEqual(frame);
  });

  it('the hand-built request matches the encoder byte for byte', () => {
    const frame = sampleRequest({
      experts: [2, 0, 3],
      gates: [0.5, 0.25, 0.25],
      h: new Float32Array([1, -2, 0.5, 3]),
    });
    expect(encodeFrame({ ...frame, sessionId: 'sess', requestId: 'req-1', step: 3 })).toEqual(rawRequest());
  });
});

describe('round trips', () => {
  it('STEP_REQUEST, f32 h, no tokens: exact', () => {
    const f = sampleRequest();
    const back = decodeFrame(encodeFrame(f)) as StepRequest;
    expect(back).toEqual(f);
    expect(Object.is(back.h[4], -0)).toBe(true);
    expect('tokens' in back).toBe(false);
  });

  it('STEP_REQUEST, f16 h, with tokens, per-expert, f16 response', () => {
    const f = sampleRequest({
      hDtype: 'f16',
      responseDtype: 'f16',
      perExpert: true,
      tokens: [256, 72, 105, 10, 259, 65535, 0],
    });
    const back = decodeStepRequest(encodeStepRequest(f));
    expect(back).toEqual({ ...f, h: new Float32Array(Array.from(f.h, roundToF16)) });
    expect(back.h[0]).not.toBe(Math.fround(0.1)); // 0.1 is not an f16 value: it did travel as f16
    expect(Math.abs(back.h[0] - 0.1) / 0.1).toBeLessThan(2 ** -11);
  });

  it('STEP_RESPONSE: mixture and per-expert, f32 and f16', () => {
    for (const dtype of ['f32', 'f16'] as const) {
      const mixture = sampleResponse({ dtype });
      const perExpert = sampleResponse({
        dtype,
        perExpert: true,
        values: Float32Array.from({ length: 4 * 3 }, (_, i) => (i - 5) * 0.75),
      });
      for (const f of [mixture, perExpert]) {
        const back = decodeStepResponse(encodeStepResponse(f));
        if (dtype === 'f32') expect(back).toEqual(f);
        else expect(back).toEqual({ ...f, values: new Float32Array(Array.from(f.values, roundToF16)) });
        expect(back.values.length).toBe(f.values.length);
      }
    }
  });

  it('NEED_PROMPT, ERROR (with and without a request id), DROP_SESSION', () => {
    const need = sampleNeedPrompt();
    expect(decodeNeedPrompt(encodeNeedPrompt(need))).toEqual(need);
    const errors: ErrorFrame[] = [
      {
        type: 'error',
        code: WireErrorCode.InvalidRequest,
        message: 'expert 20 is not hosted here',
        requestId: 'r',
      },
      { type: 'error', code: 65535, message: '', requestId: '' },
      { type: 'error', code: 0, message: 'ünïcødé ✓ 🚀', requestId: '\uFEFFbom' },
    ];
    for (const e of errors) expect(decodeErrorFrame(encodeErrorFrame(e))).toEqual(e);
    const drop: DropSession = { type: 'drop-session', sessionId: 'x'.repeat(128) };
    expect(decodeDropSession(encodeDropSession(drop))).toEqual(drop);
  });

  it('ids at the 128-byte limit in multi-byte UTF-8, step at u32 max, timings at u32 max', () => {
    const f = sampleRequest({
      sessionId: '€'.repeat(42) + 'ab',
      requestId: '🚀'.repeat(32),
      step: 0xffffffff,
    });
    expect(new TextEncoder().encode(f.sessionId).length).toBe(128);
    expect(decodeFrame(encodeFrame(f))).toEqual(f);
    const r = sampleResponse({ queueUs: 0xffffffff, computeUs: 0 });
    expect(decodeFrame(encodeFrame(r))).toEqual(r);
  });

  it('typed encoders accept a body without the type tag', () => {
    const { type: _t, ...body } = sampleNeedPrompt();
    expect(encodeNeedPrompt(body)).toEqual(encodeFrame(sampleNeedPrompt()));
  });

  it('decodes from a view at an odd offset into a larger buffer, and returns copies', () => {
    const bytes = encodeFrame(sampleRequest({ tokens: [1, 2, 3] }));
    const big = new Uint8Array(bytes.length + 7);
    big.set(bytes, 3);
    const view = big.subarray(3, 3 + bytes.length);
    const back = decodeStepRequest(view);
    expect(back).toEqual(sampleRequest({ tokens: [1, 2, 3] }));
    big.fill(0);
    expect(back.digest).toEqual(new Uint8Array(DIGEST));
    expect(back.h).toEqual(sampleRequest().h);
  });

  it('readFrameHeader delimits consecutive frames in a stream', () => {
    const a = encodeFrame(sampleRequest());
    const b = encodeFrame({ type: 'drop-session', sessionId: 'gone' });
    const stream = new Uint8Array(a.length + b.length);
    stream.set(a);
    stream.set(b, a.length);
    const h1 = readFrameHeader(stream);
    expect(h1).toEqual({ version: 1, type: 1, payloadLength: a.length - 12, frameLength: a.length });
    expect(decodeFrame(stream.subarray(0, h1.frameLength))).toEqual(sampleRequest());
    const rest = stream.subarray(h1.frameLength);
    const h2 = readFrameHeader(rest);
    expect(decodeFrame(rest.subarray(0, h2.frameLength))).toEqual({
      type: 'drop-session',
      sessionId: 'gone',
    });
  });
});

describe('sizes', () => {
  it('frameByteLength equals the encoded length for every frame type', () => {
    const frames: Frame[] = [
      sampleRequest(),
      sampleRequest({ hDtype: 'f16', tokens: [1, 2, 3] }),
      sampleResponse(),
      sampleResponse({ dtype: 'f16', perExpert: true, values: new Float32Array(8) }),
      sampleNeedPrompt(),
      { type: 'error', code: 4, message: 'boom', requestId: '' },
      { type: 'drop-session', sessionId: 's' },
    ];
    for (const f of frames) expect(frameByteLength(f)).toBe(encodeFrame(f).length);
  });

  it('step size helpers match real frames with UUID ids', () => {
    const uuid = '123e4567-e89b-12d3-a456-426614174000';
    expect(uuid.length).toBe(DEFAULT_ID_BYTES);
    const h = new Float32Array(512).map((_, i) => Math.sin(i));
    const req = sampleRequest({ sessionId: uuid, requestId: uuid, h, hDtype: 'f16' });
    expect(encodeFrame(req).length).toBe(stepRequestByteLength({ hidden: 512, topK: 4 }));
    const withTokens = { ...req, hDtype: 'f32' as const, tokens: new Array(1024).fill(7) };
    expect(encodeFrame(withTokens).length).toBe(
      stepRequestByteLength({ hidden: 512, topK: 4, hDtype: 'f32', promptTokens: 1024 }),
    );
    const resp = sampleResponse({ sessionId: uuid, requestId: uuid, values: h });
    expect(encodeFrame(resp).length).toBe(stepResponseByteLength({ hidden: 512, topK: 4 }));
    const per = { ...resp, perExpert: true, dtype: 'f16' as const, values: new Float32Array(4 * 512) };
    expect(encodeFrame(per).length).toBe(
      stepResponseByteLength({ hidden: 512, topK: 4, perExpert: true, responseDtype: 'f16' }),
    );
  });

  it('an r1-seed steady-state step is 1174 + 2158 bytes (derived by hand in PROTOCOL.md)', () => {
    // request: 12 header + 37 + 37 ids + 4 step + 32 digest + 1 flags + 2 H + 1 K + 4·2 ids + 4·4 gates + 512·2 h
    expect(R1_SEED_STEP_BYTES.request).toBe(12 + 37 + 37 + 4 + 32 + 1 + 2 + 1 + 8 + 16 + 1024);
    expect(R1_SEED_STEP_BYTES.request).toBe(1174);
    // response: 12 + 37 + 37 + 4 step + 1 flags + 2 H + 1 K + 8 ids + 4 + 4 timings + 512·4 mixture
    expect(R1_SEED_STEP_BYTES.response).toBe(2158);
  });
});

describe('decoder rejections', () => {
  it('accepts the hand-built baseline (so each case below fails for its own reason)', () => {
    expect(decodeFrame(rawRequest())).toMatchObject({ type: 'step-request', experts: [2, 0, 3] });
    expect(decodeFrame(rawResponse())).toMatchObject({ type: 'step-response', experts: [2, 0] });
  });

  describe('header', () => {
    it('wrong magic names the expected and found bytes', () => {
      const e = expectReject(wrap(1, new Uint8Array(0), { magic: [0x53, 0x57, 0x59, 0x45] }), 'bad-magic');
      expect(e.message).toContain('"SWYD"');
      expect(e.message).toContain('53 57 59 44');
      expect(e.message).toContain('53 57 59 45');
      expect(e.field).toBe('magic');
    });

    it('a short buffer that already differs is bad magic, one that matches so far is truncated', () => {
      expectReject(new TextEncoder().encode('GE'), 'bad-magic', '47 45');
      expectReject(new Uint8Array([0x53, 0x57]), 'truncated', 'magic', 'needed 4 bytes, 2 available');
      expectReject(new Uint8Array(0), 'truncated', 'needed 4 bytes, 0 available');
    });

    it('unsupported version names the supported ones', () => {
      for (const v of [0, 2, 0xffff])
        expectReject(
          wrap(5, new Bytes().str8('s').build(), { version: v }),
          'bad-version',
          `version ${v}`,
          'supports version 1',
        );
    });

    it('unknown frame type lists the valid ones', () => {
      for (const t of [0, 6, 0x0100]) {
        const e = expectReject(wrap(t, new Uint8Array(0)), 'bad-type', `unknown frame type ${t}`);
        for (const name of [
          '1 (STEP_REQUEST)',
          '2 (STEP_RESPONSE)',
          '3 (NEED_PROMPT)',
          '4 (ERROR)',
          '5 (DROP_SESSION)',
        ])
          expect(e.message).toContain(name);
      }
    });

    it('a truncated header names the field and the byte counts', () => {
      const full = wrap(5, new Bytes().str8('s').build());
      expectReject(full.subarray(0, 5), 'truncated', 'version', 'needed 2 bytes, 1 available');
      expectReject(full.subarray(0, 8), 'truncated', 'payload length', 'needed 4 bytes, 0 available');
      expectReject(full.subarray(0, 10), 'truncated', 'payload length', 'needed 4 bytes, 2 available');
    });

    it('payload length larger than the bytes is truncation; smaller is trailing bytes', () => {
      const payload = new Bytes().str8('abc').build();
      const long = expectReject(
        wrap(5, payload, { length: 10 }),
        'truncated',
        '10-byte payload',
        '4 bytes available',
      );
      expect(long.field).toBe('payload length');
      expectReject(wrap(5, payload, { length: 2 }), 'trailing-bytes', '2 trailing bytes', '2-byte payload');
      expectReject(wrap(5, payload, { length: 0xffffffff }), 'truncated', '4294967295-byte payload');
    });

    it('extra bytes inside the declared payload are trailing bytes, naming the last field', () => {
      const payload = new Bytes().str8('abc').raw([1, 2, 3]).build();
      expectReject(wrap(5, payload), 'trailing-bytes', '3 bytes left', 'after the last field (session id)');
      const req = rawRequest();
      const padded = new Bytes().raw(req.subarray(12)).u8(0).build();
      expectReject(wrap(1, padded), 'trailing-bytes', '1 bytes left', '(h)');
    });

    it('a non-Uint8Array input is a ProtocolError, not a TypeError', () => {
      expect(catchProtocol(() => decodeFrame('SWYD' as unknown as Uint8Array)).message).toContain(
        'Uint8Array',
      );
    });
  });

  describe('truncation anywhere in the payload', () => {
    const valid = [
      ['STEP_REQUEST', rawRequest({ flags: 0x03, h: [0x3c00, 0x4000, 0x3800, 0], tokens: [1, 2, 300] })],
      ['STEP_RESPONSE', rawResponse({ flags: 0x02, values: [1, 2, 3, 4], H: 2 })],
      ['NEED_PROMPT', encodeFrame(sampleNeedPrompt())],
      ['ERROR', encodeFrame({ type: 'error', code: 2, message: 'bad', requestId: 'r' })],
      ['DROP_SESSION', encodeFrame({ type: 'drop-session', sessionId: 'abc' })],
    ] as const;
    for (const [name, bytes] of valid)
      it(`${name}: every shorter payload (with a consistent length field) is rejected as truncated`, () => {
        expect(() => decodeFrame(bytes)).not.toThrow();
        const payload = bytes.subarray(12);
        for (let n = 0; n < payload.length; n++) {
          const e = catchProtocol(() => decodeFrame(wrap(bytes[6], payload.subarray(0, n))));
          expect(e.code, `cut at ${n}: ${e.message}`).toBe('truncated');
          expect(e.message).toContain(name);
          expect(e.message).toMatch(/needed \d+ bytes, \d+ available/);
          expect(e.field).toBeTruthy();
        }
      });

    it('names the field and the counts', () => {
      const req = rawRequest(); // H = 4 f32 values at the end
      const cut = wrap(1, req.subarray(12, req.length - 10));
      expectReject(cut, 'truncated', 'STEP_REQUEST', 'h (4 × f32)', 'needed 16 bytes, 6 available');
      const k = new Bytes().str8('s').str8('r').u32(0).raw(DIGEST).u8(0).u16(4).u8(5).u16(1).u16(2).build();
      expectReject(wrap(1, k), 'truncated', 'experts (5 × u16)', 'needed 10 bytes, 4 available');
      const tokens = rawRequest({ flags: 0x02, tokens: [1, 2], L: 3 });
      expectReject(tokens, 'truncated', 'tokens (3 × u16)', 'needed 6 bytes, 4 available');
    });
  });

  describe('strings', () => {
    const invalidUtf8: [string, number[]][] = [
      ['a lone continuation byte', [0x80]],
      ['0xff', [0x61, 0xff]],
      ['an overlong NUL', [0xc0, 0x80]],
      ['an encoded surrogate', [0xed, 0xa0, 0x80]],
      ['a cut multi-byte sequence', [0xe2, 0x82]],
    ];
    for (const [what, bytes] of invalidUtf8)
      it(`non-UTF-8 session id (${what})`, () => {
        const e = expectReject(rawRequest({ session: bytes }), 'bad-field', 'session id', 'valid UTF-8');
        expect(e.message).toContain(bytes.map((b) => b.toString(16).padStart(2, '0')).join(' '));
      });

    it('non-UTF-8 request id and error message', () => {
      expectReject(rawRequest({ request: [0xfe] }), 'bad-field', 'request id', 'valid UTF-8', 'fe');
      const err = new Bytes().u16(1).u16(2).raw([0xc3, 0x28]).str8('r').build();
      expectReject(wrap(4, err), 'bad-field', 'ERROR message', 'valid UTF-8');
    });

    it('zero and oversized id lengths', () => {
      expectReject(rawRequest({ session: '' }), 'bad-field', 'session id length', '1..128 bytes', 'found 0');
      expectReject(rawRequest({ request: '' }), 'bad-field', 'request id length', 'found 0');
      expectReject(rawRequest({ session: 'x'.repeat(129) }), 'bad-field', 'session id length', 'found 129');
      expectReject(wrap(5, new Bytes().str8('y'.repeat(255)).build()), 'bad-field', 'found 255');
      const err = new Bytes().u16(1).u16(0).str8('r'.repeat(129)).build();
      expectReject(wrap(4, err), 'bad-field', 'ERROR request id length', '0..128 bytes', 'found 129');
    });

    it('a BOM at the start of an id is kept, not stripped', () => {
      const f = decodeFrame(wrap(5, new Bytes().str8([0xef, 0xbb, 0xbf, 0x61]).build())) as DropSession;
      expect(f.sessionId).toBe('\uFEFFa');
    });
  });

  describe('numbers and vectors', () => {
    it('H = 0, K = 0 and K > 64', () => {
      expectReject(rawRequest({ H: 0, h: [] }), 'bad-field', 'H: expected 1..65535, found 0');
      expectReject(rawRequest({ K: 0, experts: [], gates: [] }), 'bad-field', 'K: expected 1..64, found 0');
      expectReject(rawRequest({ K: 65 }), 'bad-field', 'K: expected 1..64, found 65');
      expectReject(rawResponse({ H: 0, values: [] }), 'bad-field', 'STEP_RESPONSE H');
    });

    it('duplicate expert ids, in requests and responses', () => {
      expectReject(
        rawRequest({ experts: [3, 1, 3], gates: [0.3, 0.3, 0.4] }),
        'bad-field',
        'distinct ids',
        '3 twice, at positions 0 and 2',
      );
      expectReject(rawResponse({ experts: [5, 5] }), 'bad-field', 'distinct ids', '5 twice');
    });

    it('NaN, ±Inf and negative gates', () => {
      for (const g of [NaN, Infinity, -Infinity, -0.25])
        expectReject(
          rawRequest({ gates: [0.5, g, 0.25] }),
          'bad-field',
          'gates[1]',
          'finite value ≥ 0',
          `found ${g}`,
        );
    });

    it('NaN and ±Inf in h, as f32 and as f16', () => {
      for (const v of [NaN, Infinity, -Infinity])
        expectReject(rawRequest({ h: [1, 2, v, 4] }), 'bad-field', 'h[2]', 'a finite value', `found ${v}`);
      expectReject(rawRequest({ flags: 1, h: [0x3c00, 0x7e00, 0, 0] }), 'bad-field', 'h[1]', 'NaN', '0x7e00');
      expectReject(rawRequest({ flags: 1, h: [0xfc00, 0, 0, 0] }), 'bad-field', 'h[0]', 'Infinity', '0xfc00');
      expectReject(rawRequest({ flags: 1, h: [0, 0, 0, 0x7c01] }), 'bad-field', 'h[3]', 'NaN');
    });

    it('NaN and Inf in response mixtures and per-expert outputs', () => {
      expectReject(rawResponse({ values: [1, NaN, 3] }), 'bad-field', 'mixture[1]', 'finite');
      expectReject(
        rawResponse({ flags: 3, H: 2, values: [0x3c00, 0x3c00, 0x3c00, 0x7c00] }),
        'bad-field',
        'outputs[3]',
        'Infinity',
      );
    });

    it('reserved flag bits list the defined ones', () => {
      const e = expectReject(rawRequest({ flags: 0x10 }), 'bad-field', 'flags', 'found 0x10');
      for (const bit of ['0x01 h-f16', '0x02 prompt-tokens', '0x04 per-expert', '0x08 response-f16'])
        expect(e.message).toContain(bit);
      expectReject(
        rawResponse({ flags: 0x04 }),
        'bad-field',
        'flags',
        '0x01 f16, 0x02 per-expert',
        'found 0x04',
      );
    });

    it('token count 0, and over the default maximum, without allocating', () => {
      expectReject(rawRequest({ flags: 2, tokens: [], L: 0 }), 'bad-field', 'token count L', 'found 0');
      expectReject(
        rawRequest({ flags: 2, tokens: [], L: (1 << 20) + 1 }),
        'bad-field',
        'token count L: expected 1..1048576, found 1048577',
      );
      expectReject(rawRequest({ flags: 2, tokens: [], L: 0xffffffff }), 'bad-field', 'found 4294967295');
    });
  });

  describe('limits', () => {
    it('maxExperts: ids must be below it', () => {
      const bytes = rawRequest({ experts: [2, 16, 3] });
      expect(() => decodeFrame(bytes, { maxExperts: 17 })).not.toThrow();
      expectRejectWith(
        bytes,
        { maxExperts: 16 },
        'bad-field',
        'experts[1]',
        'below 16 (limits.maxExperts)',
        'found 16',
      );
      expectRejectWith(rawResponse({ experts: [0, 4] }), { maxExperts: 4 }, 'bad-field', 'experts[1]');
    });

    it('hidden: H must equal it', () => {
      expect(() => decodeFrame(rawRequest(), { hidden: 4 })).not.toThrow();
      expectRejectWith(rawRequest(), { hidden: 8 }, 'bad-field', 'H: expected 8 (limits.hidden), found 4');
      expectRejectWith(rawResponse(), { hidden: 512 }, 'bad-field', 'STEP_RESPONSE H', 'found 3');
    });

    it('vocab: token ids must be below it', () => {
      const bytes = rawRequest({ flags: 2, tokens: [256, 259, 12] });
      expect(() => decodeFrame(bytes, { vocab: 260 })).not.toThrow();
      expectRejectWith(
        bytes,
        { vocab: 259 },
        'bad-field',
        'tokens[1]',
        'below 259 (limits.vocab)',
        'found 259',
      );
    });

    it('maxPromptTokens bounds L', () => {
      const bytes = rawRequest({ flags: 2, tokens: [1, 2, 3, 4, 5] });
      expect(() => decodeFrame(bytes, { maxPromptTokens: 5 })).not.toThrow();
      expectRejectWith(bytes, { maxPromptTokens: 4 }, 'bad-field', 'token count L: expected 1..4, found 5');
    });

    it('nonsense limits are a programming error (RangeError), not a protocol error', () => {
      expect(() => decodeFrame(rawRequest(), { hidden: 0 })).toThrow(RangeError);
      expect(() => decodeFrame(rawRequest(), { maxExperts: 1.5 })).toThrow(/maxExperts: expected an integer/);
    });
  });

  describe('typed decoders', () => {
    it('assert the frame type, naming both', () => {
      const drop = encodeFrame({ type: 'drop-session', sessionId: 's' });
      const e = catchProtocol(() => decodeStepRequest(drop));
      checkError(e, 'bad-type', ['expected a STEP_REQUEST frame (type 1)', 'found DROP_SESSION (type 5)']);
      expect(() => decodeStepResponse(encodeFrame(sampleRequest()))).toThrow(/found STEP_REQUEST/);
      expect(() => decodeNeedPrompt(drop)).toThrow(ProtocolError);
      expect(() => decodeErrorFrame(drop)).toThrow(ProtocolError);
      expect(() => decodeDropSession(encodeFrame(sampleNeedPrompt()))).toThrow(ProtocolError);
    });

    it("surface the peer's ERROR when that is what arrived", () => {
      const err = encodeFrame({ type: 'error', code: 3, message: 'queue full', requestId: 'r' });
      const e = catchProtocol(() => decodeStepResponse(err));
      checkError(e, 'bad-type', ['found ERROR (type 4)', 'code 3', '"queue full"']);
    });

    it('still validate the header first', () => {
      expectReject(wrap(9, new Uint8Array(0)), 'bad-type');
      const e = catchProtocol(() => decodeStepRequest(wrap(1, new Uint8Array(0), { version: 3 })));
      expect(e.code).toBe('bad-version');
    });
  });

  it('frameTypeName', () => {
    expect(frameTypeName(3)).toBe('NEED_PROMPT');
    expect(frameTypeName(42)).toBe('unknown type 42');
  });
});

describe('encoder rejections', () => {
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['empty session id', { sessionId: '' }, 'sessionId', /1\.\.128 bytes of UTF-8, found 0 bytes/],
    ['129-byte request id', { requestId: 'é'.repeat(64) + 'x' }, 'requestId', /found 129 bytes/],
    [
      'lone surrogate',
      { sessionId: 'a\uD800b' },
      'sessionId',
      /well-formed string, found an unpaired surrogate/,
    ],
    ['non-string id', { requestId: 7 }, 'requestId', /a string, found 7/],
    ['negative step', { step: -1 }, 'step', /0\.\.4294967295, found -1/],
    ['step over u32', { step: 2 ** 32 }, 'step', /found 4294967296/],
    ['fractional step', { step: 1.5 }, 'step', /found 1\.5/],
    ['short digest', { digest: new Uint8Array(31) }, 'digest', /32 bytes, found Uint8Array\(31\)/],
    ['bad hDtype', { hDtype: 'bf16' }, 'hDtype', /one of 'f16', 'f32', found "bf16"/],
    ['bad responseDtype', { responseDtype: undefined }, 'responseDtype', /found undefined/],
    ['perExpert not boolean', { perExpert: 1 }, 'perExpert', /a boolean, found 1/],
    ['no experts', { experts: [], gates: [] }, 'experts', /1\.\.64 ids, found 0/],
    ['65 experts', { experts: Array.from({ length: 65 }, (_, i) => i) }, 'experts', /found 65/],
    [
      'duplicate experts',
      { experts: [1, 2, 1, 3] },
      'experts',
      /distinct ids, found 1 twice, at positions 0 and 2/,
    ],
    ['expert over u16', { experts: [1, 2, 65536, 3] }, 'experts[2]', /0\.\.65535, found 65536/],
    ['gate count mismatch', { gates: [1] }, 'gates', /4 gates/],
    ['NaN gate', { gates: [0.5, NaN, 0.25, 0.25] }, 'gates[1]', /finite f32 value ≥ 0, found NaN/],
    ['negative gate', { gates: [0.5, 0.25, -0.25, 0.5] }, 'gates[2]', /found -0\.25/],
    ['gate overflowing f32', { gates: [1e39, 0, 0, 0] }, 'gates[0]', /found 1e\+39/],
    ['NaN in h', { h: new Float32Array([1, NaN]) }, 'h[1]', /a finite value, found NaN/],
    ['Inf in h', { h: new Float32Array([-Infinity]) }, 'h[0]', /found -Infinity/],
    [
      'h past the f16 range',
      { hDtype: 'f16', h: new Float32Array([1, -70000]) },
      'h[1]',
      /fits f16.*65520.*found -70000/,
    ],
    [
      'h as a plain array',
      { h: [1, 2] as unknown as Float32Array },
      'h',
      /a Float32Array, found an array of length 2/,
    ],
    ['empty h', { h: new Float32Array(0) }, 'h', /1\.\.65535 values, found 0/],
    ['empty tokens', { tokens: [] }, 'tokens', /at least 1 token/],
    ['token over u16', { tokens: [1, 70000] }, 'tokens[1]', /found 70000/],
  ];
  for (const [name, patch, field, re] of cases)
    it(`STEP_REQUEST: ${name}`, () => {
      const e = catchProtocol(() => encodeFrame({ ...sampleRequest(), ...patch } as StepRequest));
      expect(e.code).toBe('bad-field');
      expect(e.field).toBe(field);
      expect(e.message).toMatch(re);
      expect(e.message).toContain('STEP_REQUEST');
    });

  it('values that fit f16 are fine at f16; larger ones are fine at f32', () => {
    expect(() =>
      encodeFrame(sampleRequest({ hDtype: 'f16', h: new Float32Array([65519, -65519]) })),
    ).not.toThrow();
    expect(() => encodeFrame(sampleRequest({ h: new Float32Array([70000, 1e38]) }))).not.toThrow();
  });

  it('STEP_RESPONSE: values not K × H, bad timings, f16 overflow', () => {
    const perExpert = () => sampleResponse({ perExpert: true, values: new Float32Array(10) }); // K = 4
    expect(catchProtocol(() => encodeFrame(perExpert())).message).toMatch(
      /K × H values with K = 4.*found 10/,
    );
    expect(catchProtocol(() => encodeFrame(sampleResponse({ values: new Float32Array(0) }))).field).toBe(
      'values',
    );
    expect(catchProtocol(() => encodeFrame(sampleResponse({ queueUs: -1 }))).field).toBe('queueUs');
    expect(catchProtocol(() => encodeFrame(sampleResponse({ computeUs: 2 ** 32 }))).field).toBe('computeUs');
    const big = sampleResponse({ dtype: 'f16', values: new Float32Array([1e5]) });
    expect(catchProtocol(() => encodeFrame(big)).message).toMatch(/STEP_RESPONSE values\[0\].*f16/);
  });

  it('ERROR: code, message and request id bounds', () => {
    const err = (o: Partial<ErrorFrame>): ErrorFrame => ({
      type: 'error',
      code: 1,
      message: 'm',
      requestId: '',
      ...o,
    });
    expect(catchProtocol(() => encodeFrame(err({ code: 65536 }))).message).toMatch(
      /code: expected an integer in 0\.\.65535/,
    );
    expect(catchProtocol(() => encodeFrame(err({ message: 'x'.repeat(65536) }))).message).toMatch(
      /at most 65535 bytes of UTF-8, found 65536 bytes/,
    );
    expect(() => encodeFrame(err({ message: 'x'.repeat(65535) }))).not.toThrow();
    expect(catchProtocol(() => encodeFrame(err({ requestId: 'r'.repeat(129) }))).field).toBe('requestId');
  });

  it('NEED_PROMPT and DROP_SESSION fields', () => {
    expect(
      catchProtocol(() => encodeFrame({ ...sampleNeedPrompt(), digest: new Uint8Array(33) })).field,
    ).toBe('digest');
    expect(catchProtocol(() => encodeFrame({ type: 'drop-session', sessionId: '' })).field).toBe('sessionId');
  });

  it('unknown frame kinds list the valid ones; typed encoders refuse a different tag', () => {
    const e = catchProtocol(() => encodeFrame({ type: 'hello' } as unknown as Frame));
    checkError(e, 'bad-type', [
      "'step-request'",
      "'step-response'",
      "'need-prompt'",
      "'error'",
      "'drop-session'",
      '"hello"',
    ]);
    const wrong = { ...sampleNeedPrompt(), type: 'drop-session' } as unknown as NeedPrompt;
    checkError(
      catchProtocol(() => encodeNeedPrompt(wrong)),
      'bad-type',
      ["expected type 'need-prompt'"],
    );
  });
});

// ----------------------------------------------------------------------------------------------------------------
// Property-based tests

const idArb = (min: number) => fc.string({ unit: 'binary', minLength: min, maxLength: 32 });
const digestArb = fc.uint8Array({ minLength: 32, maxLength: 32 });
const expertsArb = fc.uniqueArray(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 64 });
const gateArb = fc.float({ min: 0, noNaN: true, noDefaultInfinity: true });
const dtypeArb = fc.constantFrom('f16' as const, 'f32' as const);
const f32Vector = fc.float32Array({ minLength: 1, maxLength: 40, noNaN: true, noDefaultInfinity: true });
const f16Vector = fc.float32Array({ minLength: 1, maxLength: 40, noNaN: true, min: -65504, max: 65504 });
const vectorArb = (dtype: 'f16' | 'f32') => (dtype === 'f16' ? f16Vector : f32Vector);
const tokensArb = fc.option(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 80 }), {
  nil: undefined,
});

const requestArb: fc.Arbitrary<StepRequest> = fc
  .record({ hDtype: dtypeArb, experts: expertsArb })
  .chain(({ hDtype, experts }) =>
    fc.record({
      type: fc.constant('step-request' as const),
      sessionId: idArb(1),
      requestId: idArb(1),
      step: fc.nat({ max: 0xffffffff }),
      digest: digestArb,
      hDtype: fc.constant(hDtype),
      responseDtype: dtypeArb,
      perExpert: fc.boolean(),
      experts: fc.constant(experts),
      gates: fc.array(gateArb, { minLength: experts.length, maxLength: experts.length }),
      h: vectorArb(hDtype),
      tokens: tokensArb,
    }),
  )
  .map((f) => {
    if (f.tokens === undefined) delete f.tokens;
    return f;
  });

const responseArb: fc.Arbitrary<StepResponse> = fc
  .record({
    dtype: dtypeArb,
    perExpert: fc.boolean(),
    experts: fc.uniqueArray(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 8 }),
    hidden: fc.integer({ min: 1, max: 16 }),
  })
  .chain(({ dtype, perExpert, experts, hidden }) => {
    const n = (perExpert ? experts.length : 1) * hidden;
    const values =
      dtype === 'f16'
        ? fc.float32Array({ minLength: n, maxLength: n, noNaN: true, min: -65504, max: 65504 })
        : fc.float32Array({ minLength: n, maxLength: n, noNaN: true, noDefaultInfinity: true });
    return fc.record({
      type: fc.constant('step-response' as const),
      sessionId: idArb(1),
      requestId: idArb(1),
      step: fc.nat({ max: 0xffffffff }),
      dtype: fc.constant(dtype),
      perExpert: fc.constant(perExpert),
      experts: fc.constant(experts),
      queueUs: fc.nat({ max: 0xffffffff }),
      computeUs: fc.nat({ max: 0xffffffff }),
      values,
    });
  });

const needPromptArb: fc.Arbitrary<NeedPrompt> = fc.record({
  type: fc.constant('need-prompt' as const),
  sessionId: idArb(1),
  requestId: idArb(1),
  step: fc.nat({ max: 0xffffffff }),
  digest: digestArb,
});

const errorArb: fc.Arbitrary<ErrorFrame> = fc.record({
  type: fc.constant('error' as const),
  code: fc.integer({ min: 0, max: 0xffff }),
  message: fc.string({ unit: 'binary', maxLength: 200 }),
  requestId: idArb(0),
});

const dropArb: fc.Arbitrary<DropSession> = fc.record({
  type: fc.constant('drop-session' as const),
  sessionId: idArb(1),
});

const frameArb: fc.Arbitrary<Frame> = fc.oneof(requestArb, responseArb, needPromptArb, errorArb, dropArb);

/** What the receiver should see: h and values rounded to f16 where they travelled as f16. */
function expected(f: Frame): Frame {
  if (f.type === 'step-request' && f.hDtype === 'f16') return { ...f, h: f.h.map(roundToF16) };
  if (f.type === 'step-response' && f.dtype === 'f16') return { ...f, values: f.values.map(roundToF16) };
  return f;
}

const limitsArb: fc.Arbitrary<DecodeLimits | undefined> = fc.option(
  fc.record(
    {
      maxExperts: fc.integer({ min: 1, max: 0x10000 }),
      hidden: fc.integer({ min: 1, max: 64 }),
      vocab: fc.integer({ min: 1, max: 0x10000 }),
      maxPromptTokens: fc.integer({ min: 1, max: 100 }),
    },
    { requiredKeys: [] },
  ),
  { nil: undefined },
);

/** Decoding arbitrary bytes either fails with a ProtocolError, or yields a frame that re-encodes to those bytes. */
function decodeOrReject(bytes: Uint8Array, limits?: DecodeLimits): Frame | ProtocolError {
  let frame: Frame;
  try {
    frame = decodeFrame(bytes, limits);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    expect(PROTOCOL_ERROR_CODES).toContain(e.code);
    expect(e.message.length).toBeGreaterThan(0);
    return e;
  }
  expect(encodeFrame(frame)).toEqual(bytes);
  return frame;
}

type Mutation =
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
);

function mutate(bytes: Uint8Array, m: Mutation): Uint8Array {
  const at = bytes.length === 0 ? 0 : m.at % (bytes.length + 1);
  const arr = Array.from(bytes);
  switch (m.kind) {
    case 'set':
      if (arr.length > 0) arr[at % arr.length] = m.value;
      break;
    case 'truncate':
      arr.length = at;
      break;
    case 'insert':
      arr.splice(at, 0, ...m.bytes);
      break;
    case 'delete':
      arr.splice(at, m.count);
      break;
  }
  return new Uint8Array(arr);
}

/** Rewrites the payload-length field to match, so the mutation reaches the payload parser. */
function fixLength(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 12) return bytes;
  const out = bytes.slice();
  new DataView(out.buffer).setUint32(8, out.length - 12, true);
  return out;
}

describe('properties', () => {
  it('(a) random valid frames round-trip: exactly for f32, to the f16 rounding for f16', () => {
    fc.assert(
      fc.property(frameArb, (f) => {
        const bytes = encodeFrame(f);
        expect(bytes.length).toBe(frameByteLength(f));
        const back = decodeFrame(bytes);
        expect(back).toEqual(expected(f));
        expect(encodeFrame(back)).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
  });

  it('(a) f16 vectors arrive within f16 precision of what was sent', () => {
    fc.assert(
      fc.property(requestArb, (f) => {
        const back = decodeStepRequest(
          encodeFrame({ ...f, hDtype: 'f16', h: f.h.map((v) => Math.max(-65504, Math.min(65504, v))) }),
        );
        back.h.forEach((got, i) => {
          const sent = Math.max(-65504, Math.min(65504, f.h[i]));
          const tol = Math.abs(sent) >= F16_MIN_NORMAL ? Math.abs(sent) * 2 ** -11 : 2 ** -25;
          expect(Math.abs(got - sent)).toBeLessThanOrEqual(tol);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('(b) random bytes only ever raise ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), limitsArb, (bytes, limits) => {
        decodeOrReject(bytes, limits);
      }),
      { numRuns: 2000 },
    );
  });

  it('(b) random payloads behind a valid header only ever raise ProtocolError', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.uint8Array({ maxLength: 400 }),
        limitsArb,
        (type, payload, limits) => {
          decodeOrReject(wrap(type, payload), limits);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('(b) mutated and truncated valid frames only ever raise ProtocolError', () => {
    fc.assert(
      fc.property(
        frameArb,
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        limitsArb,
        (f, mutations, fix, limits) => {
          let bytes = encodeFrame(f);
          for (const m of mutations) bytes = mutate(bytes, m);
          if (fix) bytes = fixLength(bytes);
          decodeOrReject(bytes, limits);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('(b) every truncation of a valid frame is rejected as truncated', () => {
    fc.assert(
      fc.property(frameArb, fc.nat(), (f, cut) => {
        const bytes = encodeFrame(f);
        const n = cut % bytes.length;
        const e = decodeOrReject(bytes.subarray(0, n));
        expect(e).toBeInstanceOf(ProtocolError);
        expect((e as ProtocolError).code).toBe('truncated');
      }),
      { numRuns: 1000 },
    );
  });
});
