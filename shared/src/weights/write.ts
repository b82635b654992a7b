// Writes a Switchyard weights file: a safetensors file whose entries are laid out so that every typed
// array can view the file in place (FORMAT.md, "Layout").
import type { ModelConfig } from '../config.ts';
import { numel, paramSpecs, type ParamMap, type ParamSpec } from '../params.ts';
import { quantizeAs, type QuantScheme, type StoredTensor } from '../quant.ts';
import { crc32Hex } from './crc32.ts';
import {
  check24Index,
  checkConfig,
  checkTensorScheme,
  WEIGHTS_DATA_ALIGNMENT,
  defaultScheme,
  STORED_DTYPE_SIZE,
  entryBytes,
  storedEntrySpecs,
  WEIGHTS_FORMAT_ID,
  WEIGHTS_FORMAT_VERSION,
  listNames,
  normalizeShard,
  shapeText,
  shardSpecs,
  WeightsError,
  type StoredEntrySpec,
  type ShardInfo,
  type ShardInput,
} from './format.ts';

export interface WriteOptions {
  /**
   * How each tensor is stored: a chooser per spec, or a scheme name read as `defaultScheme(name)`.
   * Default 'int8' (DESIGN.md §2: 2-D weights are stored as int8; vectors stay f32).
   */
  scheme?: QuantScheme | ((spec: ParamSpec) => QuantScheme);
  /** Which part of the model to write; default the full model. */
  shard?: ShardInput;
}

/**
 * Quantizes and writes the tensors the shard holds. Tensors of the config that the shard does not hold
 * are left out (so a full ParamMap can be written as an edge file); names the config does not know are
 * an error.
 */
export function writeWeights(config: ModelConfig, params: ParamMap, opts: WriteOptions = {}): Uint8Array {
  const cfg = checkConfig(config, 'config');
  const shard = normalizeShard(cfg, opts.shard ?? { kind: 'full' });
  const choose = typeof opts.scheme === 'function' ? opts.scheme : defaultScheme(opts.scheme ?? 'int8');
  rejectUnknown(cfg, params.keys(), 'params');
  const stored = new Map<string, StoredTensor>();
  for (const spec of shardSpecs(cfg, shard)) {
    const t = params.get(spec.name);
    if (!t)
      throw new WeightsError(
        `tensor "${spec.name}": expected shape ${shapeText(spec.shape)} in params (shard "${shard.kind}"), found no such tensor`,
        spec.name,
      );
    checkShape(spec, t.shape, 'params');
    if (t.data.length !== numel(spec.shape))
      throw new WeightsError(
        `tensor "${spec.name}": expected ${numel(spec.shape)} elements, found ${t.data.length}`,
        spec.name,
      );
    const scheme = choose(spec);
    checkTensorScheme(spec, scheme);
    stored.set(spec.name, quantizeAs(t, scheme));
  }
  return writeStored(cfg, stored, shard);
}

/**
 * Writes tensors that are already stored (quantized), byte for byte: split and re-save go through here,
 * so they never quantize twice. Same selection rule as writeWeights.
 */
export function writeStored(
  config: ModelConfig,
  stored: ReadonlyMap<string, StoredTensor>,
  shard: ShardInput = { kind: 'full' },
): Uint8Array {
  const cfg = checkConfig(config, 'config');
  const sh = normalizeShard(cfg, shard);
  rejectUnknown(cfg, stored.keys(), 'stored tensors');
  const entries: { spec: StoredEntrySpec; bytes: Uint8Array }[] = [];
  const quantization: Record<string, QuantScheme> = {};
  for (const spec of shardSpecs(cfg, sh)) {
    const t = stored.get(spec.name);
    if (!t)
      throw new WeightsError(
        `tensor "${spec.name}": expected shape ${shapeText(spec.shape)} in the stored tensors (shard "${sh.kind}"), found no such tensor`,
        spec.name,
      );
    checkTensorScheme(spec, t.scheme);
    checkShape(spec, t.shape, 'stored tensors');
    quantization[spec.name] = t.scheme;
    const arrays = storedArrays(t);
    for (const e of storedEntrySpecs(spec, t.scheme)) {
      const a = arrays[e.role]!;
      const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      if (bytes.length !== entryBytes(e))
        throw new WeightsError(
          `tensor "${e.name}": expected ${numel(e.shape)} ${e.dtype} values (shape ${shapeText(e.shape)}), found ${a.length}`,
          e.name,
        );
      if (e.role === 'idx') check24Index(e.name, bytes, spec.shape[0], spec.shape[1]);
      entries.push({ spec: e, bytes });
    }
  }
  return assemble(cfg, sh, quantization, entries);
}

function storedArrays(
  t: StoredTensor,
): Partial<Record<StoredEntrySpec['role'], Float32Array | Int8Array | Uint8Array>> {
  if (t.scheme === 'f32') return { f32: t.data };
  if (t.scheme === 'int8') return { q: t.q, scale: t.scale };
  return { q: t.q, idx: t.idx, scale: t.scale };
}

function rejectUnknown(config: ModelConfig, names: Iterable<string>, where: string): void {
  const known = new Set(paramSpecs(config).map((s) => s.name));
  const unknown = [...names].filter((n) => !known.has(n));
  if (unknown.length)
    throw new WeightsError(
      `${where}: expected only tensors of this config (FORMAT.md lists them), found unknown ${listNames(unknown)}`,
      unknown[0],
    );
}

function checkShape(spec: ParamSpec, shape: readonly number[], where: string): void {
  if (shape.length !== spec.shape.length || shape.some((d, i) => d !== spec.shape[i]))
    throw new WeightsError(
      `tensor "${spec.name}" in ${where}: expected shape ${shapeText(spec.shape)}, found ${shapeText(shape)}`,
      spec.name,
    );
}

const encoder = new TextEncoder();

function assemble(
  config: ModelConfig,
  shard: ShardInfo,
  quantization: Record<string, QuantScheme>,
  entries: { spec: StoredEntrySpec; bytes: Uint8Array }[],
): Uint8Array {
  // Larger elements first: the data section starts 8-aligned and every F32 entry is a multiple of 4
  // bytes long, so all F32 offsets stay 4-aligned; 1-byte entries need no alignment. No padding, no holes.
  const ordered = entries
    .map((e, i) => ({ ...e, i }))
    .sort((a, b) => STORED_DTYPE_SIZE[b.spec.dtype] - STORED_DTYPE_SIZE[a.spec.dtype] || a.i - b.i);
  const checksums: Record<string, string> = {};
  for (const e of entries) checksums[e.spec.name] = crc32Hex(e.bytes);
  const header: Record<string, unknown> = {
    __metadata__: {
      format: WEIGHTS_FORMAT_ID,
      format_version: String(WEIGHTS_FORMAT_VERSION),
      config: JSON.stringify(config),
      quantization: JSON.stringify(quantization),
      checksums: JSON.stringify(checksums),
      shard: JSON.stringify(shard),
    },
  };
  let offset = 0;
  for (const e of ordered) {
    header[e.spec.name] = {
      dtype: e.spec.dtype,
      shape: e.spec.shape,
      data_offsets: [offset, offset + e.bytes.length],
    };
    offset += e.bytes.length;
  }
  const json = encoder.encode(JSON.stringify(header));
  const pad =
    (WEIGHTS_DATA_ALIGNMENT - ((8 + json.length) % WEIGHTS_DATA_ALIGNMENT)) % WEIGHTS_DATA_ALIGNMENT;
  const headerLen = json.length + pad;
  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let at = 8 + headerLen;
  for (const e of ordered) {
    out.set(e.bytes, at);
    at += e.bytes.length;
  }
  return out;
}
