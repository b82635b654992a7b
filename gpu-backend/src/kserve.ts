// The Open Inference Protocol (KServe V2) for the stateless expert-{e} models: request parsing in the JSON
// form and the binary-tensor extension, checked against the model's signature, and the response in either
// form. The handlers live in routes.ts; this file is pure data in, data out.
import { BadRequestError } from './errors.ts';

export const INFERENCE_HEADER = 'inference-header-content-length';
export const MODEL_PREFIX = 'expert-';
export const MODEL_VERSION = '1';

export type V2Datatype = 'INT64' | 'FP32';
const ELEMENT_BYTES: Record<V2Datatype, number> = { INT64: 8, FP32: 4 };

export interface ExpertModelSpec {
  expert: number;
  hidden: number;
  vocab: number;
  maxPrompt: number;
  /** Most rows one request may carry. */
  maxRows: number;
}

export const modelName = (e: number) => `${MODEL_PREFIX}${e}`;

/** expert-{e} → e, or undefined for any other name. */
export function expertOfModel(name: string): number | undefined {
  const m = /^expert-(0|[1-9]\d{0,4})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

interface TensorMeta {
  name: string;
  datatype: V2Datatype;
  shape: number[];
}

export function modelMetadata(spec: ExpertModelSpec) {
  const inputs: TensorMeta[] = [
    { name: 'tokens', datatype: 'INT64', shape: [-1, -1] },
    { name: 'prompt_len', datatype: 'INT64', shape: [-1] },
    { name: 'h', datatype: 'FP32', shape: [-1, spec.hidden] },
  ];
  return {
    name: modelName(spec.expert),
    versions: [MODEL_VERSION],
    platform: 'onnxruntime_onnx',
    inputs,
    outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, spec.hidden] }],
    parameters: {
      description:
        'switchyard rru-moe expert, stateless: tokens [B, P] (row b padded past prompt_len[b]), prompt_len [B], h [B, H] → y [B, H]',
      max_prompt: spec.maxPrompt,
      vocab: spec.vocab,
    },
  };
}

export interface InferInput {
  tokens: BigInt64Array; // [B, P]
  promptLen: BigInt64Array; // [B]
  h: Float32Array; // [B, H]
  batch: number;
  width: number;
}

export interface ParsedInfer {
  id?: string;
  input: InferInput;
  /** The caller asked for y as binary data. */
  binaryOutput: boolean;
}

const bad = (msg: string) => new BadRequestError(msg);
const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);

function show(x: unknown): string {
  const s = JSON.stringify(x);
  return s === undefined ? String(x) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

const EXPECTED: Record<string, V2Datatype> = { tokens: 'INT64', prompt_len: 'INT64', h: 'FP32' };

/**
 * Splits the body into the JSON header and the binary section. `headerLength` is the
 * Inference-Header-Content-Length value, when present.
 */
function splitBody(
  body: Uint8Array,
  headerLength: string | undefined,
): { json: unknown; binary: Uint8Array } {
  let jsonBytes = body;
  let binary: Uint8Array = new Uint8Array(0);
  if (headerLength !== undefined) {
    const n = Number(headerLength);
    if (!/^\d+$/.test(headerLength) || n > body.length)
      throw bad(
        `${INFERENCE_HEADER}: expected the JSON header's byte length, 0..${body.length} (the body size), found ${show(headerLength)}`,
      );
    jsonBytes = body.subarray(0, n);
    binary = body.subarray(n);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(jsonBytes));
  } catch (e) {
    throw bad(`inference request: expected a JSON object, found invalid JSON (${(e as Error).message})`);
  }
  return { json, binary };
}

function checkShape(name: string, shape: unknown, rank: number): number[] {
  if (
    !Array.isArray(shape) ||
    shape.length !== rank ||
    !shape.every((d) => Number.isSafeInteger(d) && d >= 0)
  )
    throw bad(`input "${name}": expected a shape of ${rank} non-negative integers, found ${show(shape)}`);
  return shape as number[];
}

function flatten(data: unknown, out: unknown[]): void {
  if (Array.isArray(data)) for (const x of data) flatten(x, out);
  else out.push(data);
}

/** The tensor's values as a typed array: from JSON `data`, or from its slice of the binary section. */
function readValues(
  input: Record<string, unknown>,
  datatype: V2Datatype,
  count: number,
  binary: Uint8Array,
  offset: { at: number },
): BigInt64Array | Float32Array {
  const name = input.name as string;
  const params = input.parameters;
  const size = isObject(params) ? params.binary_data_size : undefined;
  if (size !== undefined) {
    const want = count * ELEMENT_BYTES[datatype];
    if (size !== want)
      throw bad(
        `input "${name}": binary_data_size ${show(size)} does not match shape and datatype: expected ${count} × ${ELEMENT_BYTES[datatype]} = ${want} bytes`,
      );
    if (offset.at + want > binary.length)
      throw bad(
        `input "${name}": its ${want} binary bytes run past the end of the body (${binary.length - offset.at} binary bytes left)`,
      );
    // Copy: the slice need not be aligned for a typed-array view.
    const bytes = new Uint8Array(want);
    bytes.set(binary.subarray(offset.at, offset.at + want));
    offset.at += want;
    return datatype === 'INT64' ? new BigInt64Array(bytes.buffer) : new Float32Array(bytes.buffer);
  }
  if (input.data === undefined)
    throw bad(`input "${name}": expected "data" or a binary_data_size parameter, found neither`);
  const flat: unknown[] = [];
  flatten(input.data, flat);
  if (flat.length !== count)
    throw bad(`input "${name}": expected ${count} values for its shape, found ${flat.length}`);
  if (datatype === 'INT64') {
    const out = new BigInt64Array(count);
    flat.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v))
        throw bad(`input "${name}": data[${i}] expected an integer, found ${show(v)}`);
      out[i] = BigInt(v);
    });
    return out;
  }
  const out = new Float32Array(count);
  flat.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw bad(`input "${name}": data[${i}] expected a finite number, found ${show(v)}`);
    out[i] = v;
  });
  return out;
}

export function parseInferRequest(
  body: Uint8Array,
  headerLength: string | undefined,
  spec: ExpertModelSpec,
): ParsedInfer {
  const { json, binary } = splitBody(body, headerLength);
  if (!isObject(json)) throw bad(`inference request: expected a JSON object, found ${show(json)}`);
  const id = json.id;
  if (id !== undefined && typeof id !== 'string') throw bad(`"id": expected a string, found ${show(id)}`);
  if (!Array.isArray(json.inputs))
    throw bad(`"inputs": expected an array of tensors tokens, prompt_len, h, found ${show(json.inputs)}`);
  const byName = new Map<string, Record<string, unknown>>();
  for (const [i, t] of json.inputs.entries()) {
    if (!isObject(t) || typeof t.name !== 'string')
      throw bad(`inputs[${i}]: expected an object with a "name", found ${show(t)}`);
    if (!(t.name in EXPECTED))
      throw bad(
        `inputs[${i}]: unknown input "${t.name}"; model ${modelName(spec.expert)} takes tokens, prompt_len, h`,
      );
    if (byName.has(t.name)) throw bad(`inputs: "${t.name}" appears more than once`);
    const dt = EXPECTED[t.name];
    if (t.datatype !== dt) throw bad(`input "${t.name}": expected datatype ${dt}, found ${show(t.datatype)}`);
    byName.set(t.name, t);
  }
  for (const name of Object.keys(EXPECTED))
    if (!byName.has(name))
      throw bad(`inputs: missing "${name}"; model ${modelName(spec.expert)} takes tokens, prompt_len, h`);

  const [B, P] = checkShape('tokens', byName.get('tokens')!.shape, 2);
  const [Bl] = checkShape('prompt_len', byName.get('prompt_len')!.shape, 1);
  const [Bh, H] = checkShape('h', byName.get('h')!.shape, 2);
  if (B < 1 || B > spec.maxRows) throw bad(`input "tokens": expected 1..${spec.maxRows} rows, found ${B}`);
  if (P < 1 || P > spec.maxPrompt)
    throw bad(
      `input "tokens": expected a prompt width of 1..${spec.maxPrompt} (the model's max_prompt), found ${P}`,
    );
  if (Bl !== B || Bh !== B)
    throw bad(
      `inputs: expected the same batch size B in tokens [B, P], prompt_len [B] and h [B, H], found ${B}, ${Bl} and ${Bh}`,
    );
  if (H !== spec.hidden) throw bad(`input "h": expected shape [${B}, ${spec.hidden}], found [${Bh}, ${H}]`);

  // Binary tensors follow the JSON header in the order the inputs are listed.
  const offset = { at: 0 };
  const values = new Map<string, BigInt64Array | Float32Array>();
  for (const t of json.inputs as Record<string, unknown>[]) {
    const name = t.name as string;
    const count = name === 'tokens' ? B * P : name === 'prompt_len' ? B : B * H;
    values.set(name, readValues(t, EXPECTED[name], count, binary, offset));
  }
  if (offset.at !== binary.length)
    throw bad(
      `inference request: ${binary.length - offset.at} binary bytes after the last binary input; expected none`,
    );
  const tokens = values.get('tokens') as BigInt64Array;
  const promptLen = values.get('prompt_len') as BigInt64Array;
  const h = values.get('h') as Float32Array;
  tokens.forEach((t, i) => {
    if (t < 0n || t >= BigInt(spec.vocab))
      throw bad(
        `input "tokens": element ${i} (row ${Math.floor(i / P)}) expected a token id in [0, ${spec.vocab}), found ${t}`,
      );
  });
  promptLen.forEach((n, b) => {
    if (n < 1n || n > BigInt(P))
      throw bad(`input "prompt_len": row ${b} expected a length in 1..${P} (the tokens' width), found ${n}`);
  });
  h.forEach((x, i) => {
    if (!Number.isFinite(x)) throw bad(`input "h": element ${i} expected a finite number, found ${x}`);
  });
  return {
    id,
    input: { tokens, promptLen, h, batch: B, width: P },
    binaryOutput: wantsBinary(json, spec),
  };
}

function wantsBinary(json: Record<string, unknown>, spec: ExpertModelSpec): boolean {
  let binary = isObject(json.parameters) && json.parameters.binary_data_output === true;
  if (json.outputs === undefined) return binary;
  if (!Array.isArray(json.outputs)) throw bad(`"outputs": expected an array, found ${show(json.outputs)}`);
  for (const [i, o] of json.outputs.entries()) {
    if (!isObject(o) || o.name !== 'y')
      throw bad(
        `outputs[${i}]: expected {"name": "y"} (model ${modelName(spec.expert)} has one output, y), found ${show(o)}`,
      );
    if (isObject(o.parameters) && typeof o.parameters.binary_data === 'boolean')
      binary = o.parameters.binary_data;
  }
  return binary;
}

export interface InferResponse {
  body: Uint8Array;
  headers: Record<string, string>;
}

export function encodeInferResponse(
  expert: number,
  id: string | undefined,
  y: Float32Array,
  batch: number,
  hidden: number,
  binary: boolean,
): InferResponse {
  const head = {
    model_name: modelName(expert),
    model_version: MODEL_VERSION,
    ...(id !== undefined ? { id } : {}),
    outputs: [
      {
        name: 'y',
        datatype: 'FP32',
        shape: [batch, hidden],
        ...(binary ? { parameters: { binary_data_size: y.byteLength } } : { data: Array.from(y) }),
      },
    ],
  };
  const json = new TextEncoder().encode(JSON.stringify(head));
  if (!binary) return { body: json, headers: { 'content-type': 'application/json' } };
  const body = new Uint8Array(json.length + y.byteLength);
  body.set(json, 0);
  body.set(new Uint8Array(y.buffer, y.byteOffset, y.byteLength), json.length);
  return {
    body,
    headers: { 'content-type': 'application/octet-stream', [INFERENCE_HEADER]: String(json.length) },
  };
}
