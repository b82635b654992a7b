import { describe, expect, it } from 'vitest';
import { BadRequestError } from './errors.ts';
import {
  encodeInferResponse,
  expertOfModel,
  modelMetadata,
  parseInferRequest,
  type ExpertModelSpec,
} from './kserve.ts';

const spec: ExpertModelSpec = { expert: 2, hidden: 3, vocab: 10, maxPrompt: 4, maxRows: 8 };
const enc = new TextEncoder();
const jsonInputs = () => [
  {
    name: 'tokens',
    datatype: 'INT64',
    shape: [2, 3],
    data: [
      [1, 2, 3],
      [4, 0, 0],
    ],
  },
  { name: 'prompt_len', datatype: 'INT64', shape: [2], data: [3, 1] },
  { name: 'h', datatype: 'FP32', shape: [2, 3], data: [0.5, -1, 2, 0, 0.25, 1e-3] },
];
const parse = (body: unknown, header?: string) =>
  parseInferRequest(
    typeof body === 'string' || body instanceof Uint8Array
      ? typeof body === 'string'
        ? enc.encode(body)
        : body
      : enc.encode(JSON.stringify(body)),
    header,
    spec,
  );

describe('KServe V2 requests', () => {
  it('parses the JSON form, nested or flat data', () => {
    const r = parse({ id: 'x', inputs: jsonInputs() });
    expect(r.id).toBe('x');
    expect(r.binaryOutput).toBe(false);
    expect(Array.from(r.input.tokens, Number)).toEqual([1, 2, 3, 4, 0, 0]);
    expect(Array.from(r.input.promptLen, Number)).toEqual([3, 1]);
    expect(Array.from(r.input.h)).toEqual(Array.from(Float32Array.of(0.5, -1, 2, 0, 0.25, 1e-3)));
    expect([r.input.batch, r.input.width]).toEqual([2, 3]);
  });

  it('parses binary tensors after the JSON header, in input order, unaligned', () => {
    const tokens = new BigInt64Array([1n, 2n, 3n, 4n, 0n, 0n]);
    const h = Float32Array.of(1, 2, 3, 4, 5, 6);
    const head = enc.encode(
      JSON.stringify({
        inputs: [
          { name: 'h', datatype: 'FP32', shape: [2, 3], parameters: { binary_data_size: 24 } },
          { name: 'prompt_len', datatype: 'INT64', shape: [2], data: [3, 1] },
          { name: 'tokens', datatype: 'INT64', shape: [2, 3], parameters: { binary_data_size: 48 } },
        ],
        parameters: { binary_data_output: true },
      }) + ' ', // an odd length: the binary section starts unaligned
    );
    const body = new Uint8Array(head.length + 72);
    body.set(head);
    body.set(new Uint8Array(h.buffer), head.length);
    body.set(new Uint8Array(tokens.buffer), head.length + 24);
    const r = parse(body, String(head.length));
    expect(Array.from(r.input.h)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(r.input.tokens)).toEqual(Array.from(tokens));
    expect(r.binaryOutput).toBe(true);
    expect(() => parse(body, String(head.length + 1))).toThrow(/invalid JSON/);
    expect(() => parse(body.subarray(0, body.length - 1), String(head.length))).toThrow(
      'input "tokens": its 48 binary bytes run past the end of the body (47 binary bytes left)',
    );
  });

  it.each<[string, (b: ReturnType<typeof jsonInputs>) => unknown, string | RegExp]>([
    [
      'missing input',
      (i) => i.slice(0, 2),
      'inputs: missing "h"; model expert-2 takes tokens, prompt_len, h',
    ],
    [
      'unknown input',
      (i) => [...i, { name: 'z', datatype: 'FP32', shape: [1], data: [1] }],
      /unknown input "z"/,
    ],
    ['duplicate', (i) => [...i, i[0]], 'inputs: "tokens" appears more than once'],
    [
      'datatype',
      (i) => [{ ...i[0], datatype: 'INT32' }, i[1], i[2]],
      'input "tokens": expected datatype INT64, found "INT32"',
    ],
    [
      'rank',
      (i) => [{ ...i[0], shape: [6] }, i[1], i[2]],
      'input "tokens": expected a shape of 2 non-negative integers, found [6]',
    ],
    [
      'batch mismatch',
      (i) => [i[0], { ...i[1], shape: [3], data: [1, 1, 1] }, i[2]],
      /same batch size B.*found 2, 3 and 2/,
    ],
    [
      'width',
      (i) => [{ ...i[0], shape: [2, 5], data: Array(10).fill(1) }, i[1], i[2]],
      /prompt width of 1\.\.4 .* found 5/,
    ],
    [
      'count',
      (i) => [i[0], i[1], { ...i[2], data: [1, 2] }],
      'input "h": expected 6 values for its shape, found 2',
    ],
    [
      'non-integer',
      (i) => [{ ...i[0], data: [1, 2, 3.5, 4, 0, 0] }, i[1], i[2]],
      /data\[2\] expected an integer, found 3.5/,
    ],
    [
      'token range',
      (i) => [{ ...i[0], data: [1, 2, 10, 4, 0, 0] }, i[1], i[2]],
      /element 2 \(row 0\) expected a token id in \[0, 10\), found 10/,
    ],
    [
      'prompt_len range',
      (i) => [i[0], { ...i[1], data: [0, 1] }, i[2]],
      'input "prompt_len": row 0 expected a length in 1..3 (the tokens\' width), found 0',
    ],
    [
      'non-finite h',
      (i) => [i[0], i[1], { ...i[2], data: [1, 2, 3, 4, 5, 'x'] }],
      /data\[5\] expected a finite number, found "x"/,
    ],
  ])('refuses a request with a bad %s', (_what, change, message) => {
    let err: unknown;
    try {
      parse({ inputs: change(jsonInputs()) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as Error).message).toMatch(message);
  });

  it('refuses more rows than allowed and unknown outputs', () => {
    const [, len, h] = jsonInputs();
    const many = { ...jsonInputs()[0], shape: [9, 1], data: Array(9).fill(1) };
    expect(() => parse({ inputs: [many, len, h] })).toThrow('input "tokens": expected 1..8 rows, found 9');
    expect(() => parse({ inputs: jsonInputs(), outputs: [{ name: 'logits' }] })).toThrow(
      /outputs\[0\]: expected \{"name": "y"\}/,
    );
    expect(() => parse('[1, 2]')).toThrow('inference request: expected a JSON object, found [1,2]');
  });
});

describe('KServe V2 responses and metadata', () => {
  it('encodes y as JSON data or as a binary section', () => {
    const y = Float32Array.of(0.1, 2, -3, 4, 5, 6);
    const j = encodeInferResponse(2, 'id-1', y, 2, 3, false);
    expect(j.headers['content-type']).toBe('application/json');
    const out = JSON.parse(new TextDecoder().decode(j.body));
    expect(out).toMatchObject({ model_name: 'expert-2', model_version: '1', id: 'id-1' });
    expect(Float32Array.from(out.outputs[0].data)).toEqual(y);
    const b = encodeInferResponse(2, undefined, y, 2, 3, true);
    const n = Number(b.headers['inference-header-content-length']);
    const head = JSON.parse(new TextDecoder().decode(b.body.subarray(0, n)));
    expect(head.outputs[0]).toEqual({
      name: 'y',
      datatype: 'FP32',
      shape: [2, 3],
      parameters: { binary_data_size: 24 },
    });
    expect(new Float32Array(b.body.slice(n).buffer)).toEqual(y);
  });

  it('names models expert-{e} and describes their signature', () => {
    expect(expertOfModel('expert-12')).toBe(12);
    for (const bad of ['expert-', 'expert-01', 'expert-1x', 'Expert-1', 'model'])
      expect(expertOfModel(bad)).toBeUndefined();
    const m = modelMetadata(spec);
    expect(m.name).toBe('expert-2');
    expect(m.inputs).toEqual([
      { name: 'tokens', datatype: 'INT64', shape: [-1, -1] },
      { name: 'prompt_len', datatype: 'INT64', shape: [-1] },
      { name: 'h', datatype: 'FP32', shape: [-1, 3] },
    ]);
  });
});
