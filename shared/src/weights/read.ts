// Reads a Switchyard weights file in place: typed arrays view the caller's bytes wherever the alignment
// allows, and every structural rule of FORMAT.md is checked before a tensor is handed out.
import type { ModelConfig } from '../config.ts';
import { numel, type ParamMap, type Tensor } from '../params.ts';
import { dequantize, type QuantScheme, type StoredTensor } from '../quant.ts';
import { crc32Hex } from './crc32.ts';
import {
  assertLittleEndian,
  check24Index,
  checkConfig,
  checkTensorScheme,
  STORED_DTYPE_SIZE,
  STORED_DTYPES,
  entryBytes,
  storedEntrySpecs,
  WEIGHTS_FORMAT_ID,
  listNames,
  normalizeShard,
  shapeText,
  shardSpecs,
  show,
  SUPPORTED_WEIGHTS_VERSIONS,
  WeightsError,
  type StoredDtype,
  type StoredEntryRole,
  type ShardInfo,
} from './format.ts';

export interface ReadOptions {
  /** Check every entry's CRC-32 against metadata.checksums (default true). */
  verify?: boolean;
}

/** One safetensors entry of the file, where it lies, and what it is for. */
export interface StoredEntry {
  name: string;
  /** The logical tensor it belongs to. */
  tensor: string;
  role: StoredEntryRole;
  dtype: StoredDtype;
  shape: number[];
  /** data_offsets as in the header: relative to the first byte after the header. */
  begin: number;
  end: number;
  /** Absolute position of the first byte in the file. */
  offset: number;
  /** CRC-32 from metadata.checksums, 8 lowercase hex digits. */
  checksum: string;
}

export interface WeightsFile {
  readonly config: ModelConfig;
  readonly formatVersion: number;
  readonly shard: ShardInfo;
  /** Logical tensor name → how it is stored. */
  readonly schemes: Map<string, QuantScheme>;
  /** The raw __metadata__ strings. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Every stored entry, in file order. */
  readonly entries: readonly StoredEntry[];
  /** The bytes the file was read from (tensors view them; do not mutate them while the file is in use). */
  readonly bytes: Uint8Array;
  /** Logical tensors present, in canonical (paramSpecs) order. */
  names(): string[];
  has(name: string): boolean;
  /** The tensor as stored; its typed arrays view `bytes` wherever aligned. */
  stored(name: string): StoredTensor;
  /** The float32 tensor the model computes with (an f32 tensor is returned without a copy). */
  tensor(name: string): Tensor;
  /** Every logical tensor present, dequantized. */
  params(): ParamMap;
  /** The expert ids the file holds, ascending. */
  experts(): number[];
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** The header length field is a u64; headers past this size are refused as safetensors does. */
const MAX_HEADER_BYTES = 100_000_000;

export function readWeights(input: Uint8Array | ArrayBufferLike, opts: ReadOptions = {}): WeightsFile {
  assertLittleEndian();
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const verify = opts.verify ?? true;

  // ---- the safetensors envelope
  if (bytes.length < 8)
    throw new WeightsError(
      `file: expected at least 8 bytes (the u64 little-endian header length), found ${bytes.length}`,
    );
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES))
    throw new WeightsError(
      `header length: expected at most ${MAX_HEADER_BYTES} bytes (the safetensors limit), found ${n64}`,
    );
  if (n64 > BigInt(bytes.length - 8))
    throw new WeightsError(
      `header: expected ${n64} bytes of JSON after the 8-byte length, found ${bytes.length - 8} bytes (file truncated?)`,
    );
  const headerLen = Number(n64);
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  let header: unknown;
  try {
    header = JSON.parse(decoder.decode(bytes.subarray(8, dataStart)));
  } catch (e) {
    const head = new TextDecoder().decode(bytes.subarray(8, Math.min(dataStart, 48)));
    throw new WeightsError(
      `header: expected UTF-8 JSON (${headerLen} bytes), found ${JSON.stringify(head)}... (${(e as Error).message})`,
      undefined,
      { cause: e },
    );
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    throw new WeightsError(`header: expected a JSON object, found ${show(header)}`);
  const h = header as Record<string, unknown>;

  // ---- __metadata__
  const meta = h.__metadata__;
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta))
    throw new WeightsError(
      `header.__metadata__: expected an object of strings with format "${WEIGHTS_FORMAT_ID}", found ${show(meta)} (not a Switchyard weights file)`,
    );
  for (const [k, v] of Object.entries(meta))
    if (typeof v !== 'string')
      throw new WeightsError(
        `metadata.${k}: expected a string (safetensors metadata is string→string), found ${show(v)}`,
      );
  const metadata = meta as Record<string, string>;
  if (metadata.format !== WEIGHTS_FORMAT_ID)
    throw new WeightsError(
      `metadata.format: expected "${WEIGHTS_FORMAT_ID}", found ${show(metadata.format)} (not a Switchyard weights file)`,
    );
  const supported = SUPPORTED_WEIGHTS_VERSIONS.map((v) => `"${v}"`).join(', ');
  const formatVersion = /^[0-9]+$/.test(metadata.format_version ?? '')
    ? Number(metadata.format_version)
    : NaN;
  if (!SUPPORTED_WEIGHTS_VERSIONS.includes(formatVersion))
    throw new WeightsError(
      `metadata.format_version: expected one of ${supported} (the versions this reader supports), found ${show(metadata.format_version)}`,
    );
  const config = checkConfig(metaJson(metadata, 'config'), 'metadata.config');
  const shard = normalizeShard(config, metaJson(metadata, 'shard'), 'metadata.shard', true);
  const quantization = stringMap(metaJson(metadata, 'quantization'), 'metadata.quantization');
  const checksums = stringMap(metaJson(metadata, 'checksums'), 'metadata.checksums');

  // ---- what the shard should hold, against what the header declares
  const specs = shardSpecs(config, shard);
  const specNames = new Set(specs.map((s) => s.name));
  const strayQuant = Object.keys(quantization).filter((n) => !specNames.has(n));
  if (strayQuant.length)
    throw new WeightsError(
      `metadata.quantization: expected schemes only for the ${specs.length} tensors of a "${shard.kind}" file, found unknown ${listNames(strayQuant)}`,
      strayQuant[0],
    );
  const schemes = new Map<string, QuantScheme>();
  const expected = specs.flatMap((spec) => {
    const scheme = quantization[spec.name];
    if (scheme === undefined && !(spec.name in h))
      throw new WeightsError(
        `tensor "${spec.name}": missing; a "${shard.kind}" file expected it with shape ${shapeText(spec.shape)}, found no such tensor`,
        spec.name,
      );
    if (scheme === undefined)
      throw new WeightsError(
        `tensor "${spec.name}": metadata.quantization expected its scheme (one of f32, int8, int8-2:4), found nothing`,
        spec.name,
      );
    checkTensorScheme(spec, scheme);
    schemes.set(spec.name, scheme);
    return storedEntrySpecs(spec, scheme);
  });
  const expectedNames = new Set(expected.map((e) => e.name));
  const unknown = Object.keys(h).filter((k) => k !== '__metadata__' && !expectedNames.has(k));
  if (unknown.length)
    throw new WeightsError(
      `header: expected only the entries of a "${shard.kind}" file (FORMAT.md lists them), found unknown ${listNames(unknown)}`,
      unknown[0],
    );
  const strayChecksums = Object.keys(checksums).filter((n) => !expectedNames.has(n));
  if (strayChecksums.length)
    throw new WeightsError(
      `metadata.checksums: expected checksums only for the file's entries, found unknown ${listNames(strayChecksums)}`,
      strayChecksums[0],
    );

  const entries: StoredEntry[] = expected.map((e) => {
    const t = `tensor "${e.name}"`;
    const raw = h[e.name];
    if (raw === undefined)
      throw new WeightsError(
        `${t}: missing; a "${shard.kind}" file expected it (${e.dtype}, shape ${shapeText(e.shape)}, part of "${e.tensor}" of shape ${shapeText(specShape(specs, e.tensor))} stored as ${schemes.get(e.tensor)}), found no such entry`,
        e.name,
      );
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
      throw new WeightsError(
        `${t}: expected an object {dtype, shape, data_offsets}, found ${show(raw)}`,
        e.name,
      );
    const { dtype, shape, data_offsets: off } = raw as Record<string, unknown>;
    if (dtype !== e.dtype)
      throw new WeightsError(
        `${t}: dtype: expected ${e.dtype} (scheme ${schemes.get(e.tensor)}; this format uses ${STORED_DTYPES.join(', ')}), found ${show(dtype)}`,
        e.name,
      );
    if (!Array.isArray(shape) || !shape.every(isCount))
      throw new WeightsError(`${t}: shape: expected ${shapeText(e.shape)}, found ${show(shape)}`, e.name);
    if (shape.length !== e.shape.length || shape.some((d, i) => d !== e.shape[i]))
      throw new WeightsError(
        `${t}: shape: expected ${shapeText(e.shape)}, found ${shapeText(shape)}`,
        e.name,
      );
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isCount) || off[0] > off[1])
      throw new WeightsError(
        `${t}: data_offsets: expected [begin, end] with 0 ≤ begin ≤ end, found ${show(off)}`,
        e.name,
      );
    const [begin, end] = off as number[];
    if (end - begin !== entryBytes(e))
      throw new WeightsError(
        `${t}: data_offsets [${begin}, ${end}]: expected ${entryBytes(e)} bytes (shape ${shapeText(e.shape)} × ${STORED_DTYPE_SIZE[e.dtype]}-byte ${e.dtype}), found ${end - begin}`,
        e.name,
      );
    const checksum = checksums[e.name];
    if (checksum === undefined || !/^[0-9a-f]{8}$/.test(checksum))
      throw new WeightsError(
        `${t}: metadata.checksums expected a CRC-32 as 8 lowercase hex digits, found ${show(checksum)}`,
        e.name,
      );
    return { ...e, shape: [...e.shape], begin, end, offset: dataStart + begin, checksum };
  });

  // ---- the data section: in range, then fully covered without holes or overlaps (the safetensors rule)
  const byPosition = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (const e of byPosition)
    if (e.end > dataLen)
      throw new WeightsError(
        `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}]: expected the data section to hold ${e.end} bytes, found ${dataLen} (file truncated: expected ${dataStart + e.end} bytes or more, found ${bytes.length})`,
        e.name,
      );
  let covered = 0;
  for (const e of byPosition) {
    if (e.begin !== covered)
      throw new WeightsError(
        `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}]: expected to begin at ${covered}, where the previous entry ends, found ${e.begin} (${e.begin < covered ? 'an overlap' : 'a hole'}; safetensors requires contiguous data)`,
        e.name,
      );
    covered = e.end;
  }
  if (covered !== dataLen)
    throw new WeightsError(
      `data section: expected ${covered} bytes (the end of the last entry), found ${dataLen} (${dataLen - covered} trailing bytes)`,
    );

  if (verify)
    for (const e of entries) {
      const found = crc32Hex(bytes.subarray(e.offset, dataStart + e.end));
      if (found !== e.checksum)
        throw new WeightsError(
          `tensor "${e.name}": checksum mismatch: expected CRC-32 ${e.checksum} (metadata.checksums), found ${found} (the data is corrupted)`,
          e.name,
        );
    }
  const entryMap = new Map(entries.map((e) => [e.name, e]));
  for (const e of entries)
    if (e.role === 'idx') {
      const [rows, cols] = specShape(specs, e.tensor);
      check24Index(e.name, view(bytes, e) as Uint8Array, rows, cols);
    }

  return new ReadFile(config, formatVersion, shard, schemes, metadata, byPosition, bytes, specs, entryMap);
}

class ReadFile implements WeightsFile {
  private readonly shapes: Map<string, number[]>;

  constructor(
    readonly config: ModelConfig,
    readonly formatVersion: number,
    readonly shard: ShardInfo,
    readonly schemes: Map<string, QuantScheme>,
    readonly metadata: Readonly<Record<string, string>>,
    readonly entries: readonly StoredEntry[],
    readonly bytes: Uint8Array,
    specs: { name: string; shape: number[] }[],
    private readonly entryMap: Map<string, StoredEntry>,
  ) {
    this.shapes = new Map(specs.map((s) => [s.name, s.shape]));
  }

  names(): string[] {
    return [...this.shapes.keys()];
  }

  has(name: string): boolean {
    return this.shapes.has(name);
  }

  experts(): number[] {
    return [...this.shard.experts];
  }

  stored(name: string): StoredTensor {
    const shape = this.shapes.get(name);
    if (!shape)
      throw new WeightsError(
        `tensor "${name}": expected one of the ${this.shapes.size} tensors of this "${this.shard.kind}" file (${listNames(this.names(), 4)}), found no such tensor`,
        name,
      );
    const scheme = this.schemes.get(name)!;
    const get = (suffix: string) => view(this.bytes, this.entryMap.get(name + suffix)!);
    if (scheme === 'f32') return { scheme, shape: [...shape], data: get('') as Float32Array };
    const scale = get('.scale') as Float32Array;
    if (scheme === 'int8') return { scheme, shape: [...shape], q: get('') as Int8Array, scale };
    return { scheme, shape: [...shape], q: get('') as Int8Array, idx: get('.idx') as Uint8Array, scale };
  }

  tensor(name: string): Tensor {
    return dequantize(this.stored(name));
  }

  params(): ParamMap {
    return new Map(this.names().map((n) => [n, this.tensor(n)]));
  }
}

/** A typed array over the entry: a view when its absolute address is aligned, else an aligned copy. */
function view(bytes: Uint8Array, e: StoredEntry): Float32Array | Int8Array | Uint8Array {
  const n = numel(e.shape);
  const at = bytes.byteOffset + e.offset;
  if (e.dtype === 'I8') return new Int8Array(bytes.buffer, at, n);
  if (e.dtype === 'U8') return new Uint8Array(bytes.buffer, at, n);
  if (at % 4 === 0) return new Float32Array(bytes.buffer, at, n);
  // Only reached when the caller's Uint8Array itself starts at an unaligned byteOffset.
  const copy = new Float32Array(n);
  new Uint8Array(copy.buffer).set(bytes.subarray(e.offset, e.offset + n * 4));
  return copy;
}

function metaJson(meta: Record<string, string>, key: string): unknown {
  const s = meta[key];
  if (s === undefined) throw new WeightsError(`metadata.${key}: expected a JSON string, found nothing`);
  try {
    return JSON.parse(s);
  } catch (e) {
    throw new WeightsError(
      `metadata.${key}: expected JSON, found ${show(s)} (${(e as Error).message})`,
      undefined,
      {
        cause: e,
      },
    );
  }
}

function stringMap(v: unknown, source: string): Record<string, string> {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new WeightsError(`${source}: expected a JSON object of strings, found ${show(v)}`);
  for (const [k, x] of Object.entries(v))
    if (typeof x !== 'string')
      throw new WeightsError(`${source}["${k}"]: expected a string, found ${show(x)}`, k);
  return v as Record<string, string>;
}

const specShape = (specs: { name: string; shape: number[] }[], name: string) =>
  specs.find((s) => s.name === name)!.shape;

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
