import { describe, it, expect, beforeEach } from 'vitest';
import { api, MODEL, useTestExperts, type Json } from './test-utils.ts';
import { firstInvalidUtf8 } from './body.ts';

beforeEach(() => {
  useTestExperts();
});

const user = (content: unknown) => [{ role: 'user', content }];
const ok = { model: MODEL, messages: user('hi'), max_tokens: 2, temperature: 0 };

interface Case {
  name: string;
  body: Json | string | Uint8Array;
  status: number;
  code: string;
  param?: string | null;
  says: RegExp;
}

const cases: Case[] = [
  {
    name: 'malformed JSON',
    body: '{"model": ',
    status: 400,
    code: 'invalid_json',
    param: null,
    says: /expected valid JSON/,
  },
  { name: 'empty body', body: '', status: 400, code: 'invalid_json', says: /found an empty body/ },
  {
    name: 'a JSON array',
    body: '[1, 2]',
    status: 400,
    code: 'invalid_json',
    says: /expected a JSON object, found an array/,
  },
  {
    name: 'bad UTF-8',
    body: new Uint8Array([
      ...new TextEncoder().encode('{"model": "'),
      0xc3,
      0x28,
      ...new TextEncoder().encode('"}'),
    ]),
    status: 400,
    code: 'invalid_encoding',
    says: /expected UTF-8 text, found an invalid byte sequence at byte 11/,
  },
  {
    name: 'missing model',
    body: { messages: user('hi') },
    status: 400,
    code: 'missing_required_parameter',
    param: 'model',
    says: /^model: expected a string .*found nothing/,
  },
  {
    name: 'model of the wrong type',
    body: { ...ok, model: 7 },
    status: 400,
    code: 'invalid_value',
    param: 'model',
    says: /found number 7/,
  },
  {
    name: 'unknown model',
    body: { ...ok, model: 'gpt-4o' },
    status: 404,
    code: 'model_not_found',
    param: 'model',
    says: /"gpt-4o" does not exist; this server serves "switchyard-tiny"/,
  },
  {
    name: 'missing messages',
    body: { model: MODEL },
    status: 400,
    code: 'missing_required_parameter',
    param: 'messages',
    says: /messages: expected an array of messages, found nothing/,
  },
  {
    name: 'empty messages',
    body: { ...ok, messages: [] },
    status: 400,
    code: 'invalid_value',
    param: 'messages',
    says: /expected at least one message, found an array of length 0/,
  },
  {
    name: 'messages not an array',
    body: { ...ok, messages: 'hi' },
    status: 400,
    code: 'invalid_value',
    param: 'messages',
    says: /expected an array of messages, found string "hi"/,
  },
  {
    name: 'unknown role',
    body: { ...ok, messages: [{ role: 'robot', content: 'x' }] },
    status: 400,
    code: 'invalid_value',
    param: 'messages[0].role',
    says: /expected one of system, developer, user, assistant, found string "robot"/,
  },
  {
    name: 'content of the wrong type',
    body: { ...ok, messages: user(42) },
    status: 400,
    code: 'invalid_value',
    param: 'messages[0].content',
    says: /expected a string or an array of .*found number 42/,
  },
  {
    name: 'image content',
    body: { ...ok, messages: user([{ type: 'image_url', image_url: { url: 'x' } }]) },
    status: 400,
    code: 'invalid_value',
    param: 'messages[0].content',
    says: /expected a string or an array of/,
  },
  {
    name: 'an unpaired surrogate',
    body: '{"model": "switchyard-tiny", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
    status: 400,
    code: 'invalid_value',
    param: 'messages[0].content',
    says: /unpaired surrogate/,
  },
  {
    name: 'max_tokens 0',
    body: { ...ok, max_tokens: 0 },
    status: 400,
    code: 'invalid_value',
    param: 'max_tokens',
    says: /expected at least 1, found number 0/,
  },
  {
    name: 'negative max_tokens',
    body: { ...ok, max_tokens: -5 },
    status: 400,
    code: 'invalid_value',
    param: 'max_tokens',
    says: /found number -5/,
  },
  {
    name: 'fractional max_tokens',
    body: { ...ok, max_tokens: 2.5 },
    status: 400,
    code: 'invalid_value',
    param: 'max_tokens',
    says: /expected an integer, found number 2.5/,
  },
  {
    name: 'huge max_tokens',
    body: { ...ok, max_tokens: 1e9 },
    status: 400,
    code: 'invalid_value',
    param: 'max_tokens',
    says: /max_tokens: expected at most 4096, found 1000000000/,
  },
  {
    name: 'conflicting token limits',
    body: { ...ok, max_tokens: 3, max_completion_tokens: 4 },
    status: 400,
    code: 'invalid_value',
    param: 'max_tokens',
    says: /found 3 and 4/,
  },
  {
    name: 'temperature above 2',
    body: { ...ok, temperature: 2.5 },
    status: 400,
    code: 'invalid_value',
    param: 'temperature',
    says: /expected a number in \[0, 2\], found number 2.5/,
  },
  {
    name: 'top_p 0',
    body: { ...ok, top_p: 0 },
    status: 400,
    code: 'invalid_value',
    param: 'top_p',
    says: /expected a number in \(0, 1\], found number 0/,
  },
  {
    name: 'a string seed',
    body: { ...ok, seed: 'x' },
    status: 400,
    code: 'invalid_value',
    param: 'seed',
    says: /expected an integer, found string "x"/,
  },
  {
    name: 'stream of the wrong type',
    body: { ...ok, stream: 'yes' },
    status: 400,
    code: 'invalid_value',
    param: 'stream',
    says: /stream: expected a boolean, found string "yes"/,
  },
  {
    name: 'stream_options without stream',
    body: { ...ok, stream_options: { include_usage: true } },
    status: 400,
    code: 'invalid_value',
    param: 'stream_options',
    says: /only together with "stream": true/,
  },
  {
    name: 'too many stop sequences',
    body: { ...ok, stop: ['a', 'b', 'c', 'd', 'e'] },
    status: 400,
    code: 'invalid_value',
    param: 'stop',
    says: /at most 4/,
  },
  {
    name: 'an empty stop sequence',
    body: { ...ok, stop: '' },
    status: 400,
    code: 'invalid_value',
    param: 'stop',
    says: /non-empty string/,
  },
  {
    name: 'an unknown field',
    body: { ...ok, temprature: 0.5 },
    status: 400,
    code: 'unknown_parameter',
    param: 'temprature',
    says: /temprature: unrecognized field; supported fields: .*temperature/,
  },
  {
    name: 'n = 2',
    body: { ...ok, n: 2 },
    status: 400,
    code: 'unsupported_parameter',
    param: 'n',
    says: /n: expected 1 .*found number 2/,
  },
  {
    name: 'tools',
    body: { ...ok, tools: [{ type: 'function' }] },
    status: 400,
    code: 'unsupported_parameter',
    param: 'tools',
    says: /tools are not supported/,
  },
  {
    name: 'logprobs',
    body: { ...ok, logprobs: true },
    status: 400,
    code: 'unsupported_parameter',
    param: 'logprobs',
    says: /log probabilities are not returned/,
  },
  {
    name: 'a bad memory namespace',
    body: { ...ok, switchyard: { memory: { namespace: 'a/b' } } },
    status: 400,
    code: 'invalid_value',
    param: 'switchyard.memory.namespace',
    says: /1-64 characters/,
  },
  {
    name: 'an unknown extension field',
    body: { ...ok, switchyard: { trace: true, debug: 1 } },
    status: 400,
    code: 'unknown_parameter',
    param: 'switchyard.debug',
    says: /switchyard.debug: unrecognized field/,
  },
];

async function send(body: Case['body'], headers: Record<string, string> = {}): Promise<Response> {
  const raw = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
  return api('/v1/chat/completions', {
    method: 'POST',
    body: raw as BodyInit,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

describe('request validation', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    const res = await send(c.body);
    const body = (await res.json()) as Json;
    expect(res.status, JSON.stringify(body)).toBe(c.status);
    expect(Object.keys(body)).toEqual(['error']);
    expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    expect(body.error.code).toBe(c.code);
    if (c.param !== undefined) expect(body.error.param).toBe(c.param);
    expect(body.error.type).toBe('invalid_request_error');
    expect(body.error.message).toMatch(c.says);
  });

  it('accepts the neutral values of unsupported OpenAI fields and ignores caller metadata', async () => {
    const res = await send({
      ...ok,
      n: 1,
      logprobs: false,
      tools: [],
      presence_penalty: 0,
      user: 'u-1',
      metadata: { a: 'b' },
    });
    expect(res.status).toBe(200);
  });

  it('accepts content as text parts and echoed assistant messages with extra fields', async () => {
    const res = await send({
      ...ok,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'h' },
            { type: 'text', text: 'i' },
          ],
        },
        { role: 'assistant', content: 'yo', refusal: null, reasoning_content: 'x' },
        { role: 'user', content: 'again' },
      ],
    });
    expect(res.status).toBe(200);
  });

  it('refuses a body over MAX_BODY_BYTES with 413, by Content-Length or by counting', async () => {
    const big = JSON.stringify({ ...ok, messages: user('x'.repeat(70_000)) });
    const declared = await send(big);
    expect(declared.status).toBe(413);
    expect(((await declared.json()) as Json).error.message).toMatch(
      /expected at most 65536 bytes, found a Content-Length of \d+/,
    );
    const bytes = new TextEncoder().encode(big);
    const streamed = await api('/v1/chat/completions', {
      method: 'POST',
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < bytes.length; i += 8192) c.enqueue(bytes.subarray(i, i + 8192));
          c.close();
        },
      }),
      // @ts-expect-error workerd needs duplex for a streamed request body
      duplex: 'half',
    });
    expect(streamed.status).toBe(413);
    expect(((await streamed.json()) as Json).error.code).toBe('payload_too_large');
  });

  it('refuses a prompt over Lmax, saying by how much, unless truncation is asked for', async () => {
    // Lmax = 128 for the tiny model: <bos> + "user: " + 60 bytes + "\n" = 68 tokens per such message.
    const messages = [
      user('a'.repeat(60))[0],
      { role: 'assistant', content: 'b'.repeat(60) },
      user('c'.repeat(20))[0],
    ];
    const res = await send({ ...ok, messages });
    const body = (await res.json()) as Json;
    expect(res.status).toBe(400);
    expect(body.error.code).toBe('context_length_exceeded');
    // 1 + (6 + 60 + 1) + (11 + 60 + 1) + (6 + 20 + 1) = 167 tokens, 39 over.
    expect(body.error.message).toMatch(/needs 167 tokens .* 39 more than this model's limit of 128/);
    const truncated = await send({ ...ok, messages, switchyard: { truncate: true } });
    const tb = (await truncated.json()) as Json;
    expect(truncated.status).toBe(200);
    expect(tb.switchyard.dropped_messages).toBe(1);
    expect(tb.usage.prompt_tokens).toBe(1 + 72 + 27);
  });

  it('refuses a newest message that alone exceeds Lmax, even with truncation', async () => {
    const res = await send({ ...ok, messages: user('z'.repeat(200)), switchyard: { truncate: true } });
    const body = (await res.json()) as Json;
    expect(res.status).toBe(400);
    expect(body.error.param).toBe('messages[0].content');
    expect(body.error.message).toMatch(
      /this message alone needs 208 prompt tokens .* 80 more than this model's limit of 128/,
    );
  });
});

describe('routes', () => {
  it('answers an unknown route with 404 listing the routes', async () => {
    const res = await api('/v1/completions', { json: ok });
    expect(res.status).toBe(404);
    const body = (await res.json()) as Json;
    expect(body.error.code).toBe('unknown_route');
    expect(body.error.message).toContain('POST /v1/chat/completions');
  });

  it('answers a wrong method with 405 and Allow', async () => {
    const res = await api('/v1/chat/completions');
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect(((await res.json()) as Json).error.code).toBe('method_not_allowed');
  });

  it('lists the model and describes it', async () => {
    const list = (await (await api('/v1/models')).json()) as Json;
    expect(list.object).toBe('list');
    expect(list.data.map((m: Json) => m.id)).toEqual([MODEL]);
    expect(list.data[0].switchyard.max_prompt_tokens).toBe(128);
    const one = await api(`/v1/models/${MODEL}`);
    expect(((await one.json()) as Json).id).toBe(MODEL);
    const missing = await api('/v1/models/nope');
    expect(missing.status).toBe(404);
  });

  it('reports liveness without a key', async () => {
    const res = await api('/health', { key: null });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: 'ok',
      model: MODEL,
      compute: 'reference',
      weights: 'bundled',
    });
  });
});

describe('firstInvalidUtf8', () => {
  const bytes = (...b: number[]) => new Uint8Array(b);
  it.each([
    ['ASCII', bytes(0x61, 0x62), -1],
    ['a valid 2-, 3- and 4-byte sequence', bytes(0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80), -1],
    ['a lone continuation byte', bytes(0x61, 0x80), 1],
    ['an overlong 2-byte form', bytes(0xc0, 0xaf), 0],
    ['an overlong 3-byte form', bytes(0x61, 0xe0, 0x80, 0xaf), 1],
    ['an encoded surrogate', bytes(0xed, 0xa0, 0x80), 0],
    ['a code point above U+10FFFF', bytes(0xf4, 0x90, 0x80, 0x80), 0],
    ['a truncated sequence at the end', bytes(0x61, 0x62, 0xe2, 0x82), 2],
    ['a broken continuation', bytes(0xe2, 0x28, 0xa1), 0],
  ])('%s', (_, b, at) => {
    expect(firstInvalidUtf8(b as Uint8Array)).toBe(at);
    let fatal = true;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(b as Uint8Array);
      fatal = false;
    } catch {
      // the platform decoder agrees that it is invalid
    }
    expect(fatal).toBe(at >= 0);
  });
});
