// A small ONNX graph builder over onnx-proto: typed inputs/outputs, initializers stored as raw little-endian
// bytes (protobufjs writes those with one copy, where repeated floats would be encoded one by one), nodes with
// unique names, and ModelProto encoding.
import onnxProto from 'onnx-proto';
import type { onnx as pb } from 'onnx-proto';

// onnx-proto is CommonJS: Node's ESM loader exposes only its default export, so the namespace is read from it.
const { onnx } = onnxProto;

/** IR version 10 (ONNX 1.16) covers opset 20; both ORT packages accept IR ≤ 13 (DESIGN.md §5). */
export const ONNX_IR_VERSION = 10;
/** Opset 20 is the first with an exact Gelu operator. */
export const ONNX_OPSET = 20;

export type ElemType = 'float32' | 'int64' | 'int8' | 'uint8' | 'bool';

const ELEM: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int8: onnx.TensorProto.DataType.INT8,
  uint8: onnx.TensorProto.DataType.UINT8,
  bool: onnx.TensorProto.DataType.BOOL,
};

const ELEM_NAMES = new Map<number, ElemType>(Object.entries(ELEM).map(([k, v]) => [v, k as ElemType]));

/** A dimension: a fixed size, or a symbolic name for a size chosen at run time. */
export type Dim = number | string;

/**
 * An attribute value. Plain numbers are ints (axis, hidden_size, ...); floats must be tagged, because ONNX
 * distinguishes `epsilon: 1` (int, rejected) from `epsilon: 1.0`.
 */
export type AttrValue =
  number | number[] | string | string[] | { float: number } | { tensor: pb.ITensorProto };

export class OnnxBuildError extends Error {
  override name = 'OnnxBuildError';
}

function bytesOf(a: Float32Array | Int8Array | BigInt64Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function attribute(name: string, v: AttrValue): pb.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') {
    if (!Number.isInteger(v))
      throw new OnnxBuildError(`attribute "${name}": expected an integer or { float }, found ${v}`);
    return { name, type: T.INT, i: v };
  }
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'number')) return { name, type: T.INTS, ints: v as number[] };
    if (v.every((x) => typeof x === 'string'))
      return { name, type: T.STRINGS, strings: (v as string[]).map((s) => new TextEncoder().encode(s)) };
    throw new OnnxBuildError(`attribute "${name}": expected a list of only ints or only strings`);
  }
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.TENSOR, t: v.tensor };
}

function valueInfo(name: string, type: ElemType, dims: readonly Dim[], doc?: string): pb.IValueInfoProto {
  return {
    name,
    docString: doc,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export interface BuildInfo {
  graphName: string;
  doc?: string;
}

export class GraphBuilder {
  private readonly nodes: pb.INodeProto[] = [];
  private readonly initializers: pb.ITensorProto[] = [];
  private readonly inputs: pb.IValueInfoProto[] = [];
  private readonly outputs: pb.IValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private readonly counters = new Map<string, number>();
  private readonly memo = new Map<string, string>();

  /** A value name not used yet, derived from `base`. */
  fresh(base: string): string {
    let name = base;
    while (this.names.has(name)) {
      const n = (this.counters.get(base) ?? 0) + 1;
      this.counters.set(base, n);
      name = `${base}_${n}`;
    }
    this.names.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.names.has(name))
      throw new OnnxBuildError(`value "${name}": expected a new name, found it in use`);
    this.names.add(name);
    return name;
  }

  /** Returns the value built by `make` the first time `key` is seen, and that same value afterwards. */
  once(key: string, make: () => string): string {
    let v = this.memo.get(key);
    if (v === undefined) {
      v = make();
      this.memo.set(key, v);
    }
    return v;
  }

  input(name: string, type: ElemType, dims: readonly Dim[], doc?: string): string {
    this.inputs.push(valueInfo(this.claim(name), type, dims, doc));
    return name;
  }

  /** Declares `value` a graph output named `name` (through an Identity when the names differ). */
  output(value: string, name: string, type: ElemType, dims: readonly Dim[], doc?: string): void {
    if (value !== name) this.node('Identity', [value], {}, [this.claim(name)]);
    this.outputs.push(valueInfo(name, type, dims, doc));
  }

  private initializer(base: string, type: ElemType, dims: readonly number[], raw: Uint8Array): string {
    const name = this.fresh(base);
    this.initializers.push({ name, dataType: ELEM[type], dims: [...dims], rawData: raw });
    return name;
  }

  f32(base: string, data: Float32Array, dims: readonly number[]): string {
    return this.initializer(base, 'float32', dims, bytesOf(data));
  }

  i8(base: string, data: Int8Array, dims: readonly number[]): string {
    return this.initializer(base, 'int8', dims, bytesOf(data));
  }

  u8(base: string, data: Uint8Array, dims: readonly number[]): string {
    return this.initializer(base, 'uint8', dims, bytesOf(data));
  }

  i64(base: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.initializer(base, 'int64', dims, bytesOf(BigInt64Array.from(values, (v) => BigInt(v))));
  }

  /** A shared int64 constant: the same values give the same initializer. */
  ints(values: readonly number[], scalar = false): string {
    return this.once(`ints:${scalar}:${values.join(',')}`, () =>
      this.i64(`i64_${values.join('_')}`, values, scalar ? [] : [values.length]),
    );
  }

  /** A shared float32 scalar constant. */
  scalar(value: number): string {
    return this.once(`f32:${value}`, () => this.f32(`f32_${value}`, Float32Array.of(value), []));
  }

  /** Adds a node; returns its output names (fresh ones derived from the op type unless given). */
  node(
    op: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue> = {},
    outputs: number | string[] = 1,
  ) {
    const outs =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, () => this.fresh(op.toLowerCase()))
        : outputs;
    this.nodes.push({
      name: this.fresh(`n_${op}`),
      opType: op,
      input: [...inputs],
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** Adds a single-output node and returns that output. */
  op(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}): string {
    return this.node(op, inputs, attrs)[0];
  }

  build(info: BuildInfo): Uint8Array {
    const model: pb.IModelProto = {
      irVersion: ONNX_IR_VERSION,
      opsetImport: [{ domain: '', version: ONNX_OPSET }],
      producerName: 'switchyard',
      producerVersion: '1',
      docString: info.doc,
      graph: {
        name: info.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
    const bytes = onnx.ModelProto.encode(model).finish();
    // In Node protobufjs returns a Buffer (possibly a view into a shared pool); callers get a plain, owned array.
    return new Uint8Array(bytes);
  }
}

export interface ValueSummary {
  name: string;
  type: ElemType | 'other';
  dims: Dim[];
  doc?: string;
}

export interface GraphSummary {
  irVersion: number;
  opset: number;
  name: string;
  inputs: ValueSummary[];
  outputs: ValueSummary[];
  /** Node count per op type. */
  ops: Record<string, number>;
  initializers: number;
  /** Bytes of initializer data (raw data only; every builder here stores raw data). */
  initializerBytes: number;
}

function summarizeValue(v: pb.IValueInfoProto): ValueSummary {
  const t = v.type?.tensorType;
  return {
    name: v.name ?? '',
    type: ELEM_NAMES.get(t?.elemType ?? -1) ?? 'other',
    dims: (t?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue ?? 0))),
    ...(v.docString ? { doc: v.docString } : {}),
  };
}

/** Decodes model bytes into what a reader wants to check: interface, op counts, weight size. */
export function graphSummary(bytes: Uint8Array): GraphSummary {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph;
  if (!g) throw new OnnxBuildError('graphSummary: expected a ModelProto with a graph, found none');
  const ops: Record<string, number> = {};
  for (const n of g.node ?? []) if (n.opType) ops[n.opType] = (ops[n.opType] ?? 0) + 1;
  const opset = m.opsetImport.find((o) => !o.domain)?.version;
  const inits = g.initializer ?? [];
  return {
    irVersion: Number(m.irVersion),
    opset: Number(opset ?? 0),
    name: g.name ?? '',
    inputs: (g.input ?? []).map(summarizeValue),
    outputs: (g.output ?? []).map(summarizeValue),
    ops,
    initializers: inits.length,
    initializerBytes: inits.reduce((s, t) => s + (t.rawData?.length ?? 0), 0),
  };
}
