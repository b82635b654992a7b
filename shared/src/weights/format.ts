// The Switchyard weights file v1 (shared/FORMAT.md): which safetensors entries a logical tensor becomes,
// which tensors a shard holds, and the checks shared by the writer and the reader.
import { ConfigError, parseConfig, type ModelConfig } from '../config.ts';
import { numel, paramSpecs, type ParamSpec } from '../params.ts';
import { QUANT_SCHEMES, type QuantScheme } from '../quant.ts';

export const WEIGHTS_FORMAT_ID = 'switchyard.rru-moe';
export const WEIGHTS_FORMAT_VERSION = 1;
export const SUPPORTED_WEIGHTS_VERSIONS: readonly number[] = [WEIGHTS_FORMAT_VERSION];

/** The data section starts at a multiple of this, so every F32 entry can be viewed in place. */
export const WEIGHTS_DATA_ALIGNMENT = 8;

export class WeightsError extends Error {
  override name = 'WeightsError';
  constructor(
    message: string,
    /** The logical tensor or stored entry the problem is about, where there is one. */
    readonly tensor?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The safetensors dtypes this format uses. */
export type StoredDtype = 'F32' | 'I8' | 'U8';
export const STORED_DTYPE_SIZE: Readonly<Record<StoredDtype, number>> = { F32: 4, I8: 1, U8: 1 };
export const STORED_DTYPES = Object.keys(STORED_DTYPE_SIZE) as StoredDtype[];

/** What a stored entry holds for its logical tensor. */
export type StoredEntryRole = 'f32' | 'q' | 'idx' | 'scale';

/** One safetensors entry as the format requires it. */
export interface StoredEntrySpec {
  /** The safetensors key. */
  name: string;
  /** The logical tensor (paramSpecs name) it belongs to. */
  tensor: string;
  role: StoredEntryRole;
  dtype: StoredDtype;
  shape: number[];
}

/** The entries a logical tensor is stored as, in canonical order. */
export function storedEntrySpecs(spec: ParamSpec, scheme: QuantScheme): StoredEntrySpec[] {
  const { name, shape } = spec;
  if (scheme === 'f32') return [{ name, tensor: name, role: 'f32', dtype: 'F32', shape: [...shape] }];
  const [rows, cols] = shape;
  const scale: StoredEntrySpec = {
    name: `${name}.scale`,
    tensor: name,
    role: 'scale',
    dtype: 'F32',
    shape: [rows],
  };
  if (scheme === 'int8') return [{ name, tensor: name, role: 'q', dtype: 'I8', shape: [rows, cols] }, scale];
  return [
    { name, tensor: name, role: 'q', dtype: 'I8', shape: [rows, cols / 2] },
    { name: `${name}.idx`, tensor: name, role: 'idx', dtype: 'U8', shape: [rows, Math.ceil(cols / 8)] },
    scale,
  ];
}

export const entryBytes = (e: { dtype: StoredDtype; shape: readonly number[] }) =>
  numel(e.shape) * STORED_DTYPE_SIZE[e.dtype];

export const LOOKUP_TABLE_TENSORS: readonly string[] = ['tok_embed', 'experts.embed', 'experts.pos'];

/**
 * A per-tensor scheme chooser. 'int8' quantizes every matrix; 'int8-2:4' also prunes every matrix whose
 * input dimension is a multiple of 4, except the lookup tables, whose rows are read whole (an embedding
 * row is not a dot product, so pruning it only loses information). Vectors always stay f32.
 */
export function defaultScheme(kind: QuantScheme): (spec: ParamSpec) => QuantScheme {
  if (!QUANT_SCHEMES.includes(kind))
    throw new WeightsError(
      `quantization scheme: expected one of ${QUANT_SCHEMES.join(', ')}, found ${JSON.stringify(kind)}`,
    );
  return (spec) => {
    if (kind === 'f32' || spec.kind !== 'matrix') return 'f32';
    if (kind === 'int8' || LOOKUP_TABLE_TENSORS.includes(spec.name) || spec.shape[1] % 4 !== 0) return 'int8';
    return 'int8-2:4';
  };
}

/** Throws unless `scheme` is a scheme this tensor may be stored with. */
export function checkTensorScheme(spec: ParamSpec, scheme: unknown): asserts scheme is QuantScheme {
  const t = `tensor "${spec.name}"`;
  if (!QUANT_SCHEMES.includes(scheme as QuantScheme))
    throw new WeightsError(
      `${t}: quantization scheme: expected one of ${QUANT_SCHEMES.join(', ')}, found ${show(scheme)}`,
      spec.name,
    );
  if (scheme !== 'f32' && spec.kind !== 'matrix')
    throw new WeightsError(
      `${t}: quantization scheme: expected f32 (biases and norms, shape ${shapeText(spec.shape)}, stay float32), found ${scheme}`,
      spec.name,
    );
  if (scheme === 'int8-2:4' && spec.shape[1] % 4 !== 0)
    throw new WeightsError(
      `${t}: quantization scheme int8-2:4: expected an input dimension divisible by 4, found shape ${shapeText(spec.shape)}; use int8 or f32`,
      spec.name,
    );
}

// A 2:4 position nibble is valid when its two positions are distinct and increasing.
const VALID_NIBBLE = new Uint8Array(16);
for (let lo = 0; lo < 4; lo++) for (let hi = lo + 1; hi < 4; hi++) VALID_NIBBLE[lo | (hi << 2)] = 1;

/** Checks the 2:4 position bytes: increasing positions per group, and a zero pad nibble when groups is odd. */
export function check24Index(entry: string, idx: Uint8Array, rows: number, cols: number): void {
  const groups = cols / 4;
  const perRow = Math.ceil(groups / 2);
  for (let r = 0; r < rows; r++)
    for (let g = 0; g < groups; g++) {
      const nib = (idx[r * perRow + (g >> 1)] >> (g & 1 ? 4 : 0)) & 15;
      if (!VALID_NIBBLE[nib])
        throw new WeightsError(
          `tensor "${entry}": row ${r}, group ${g}: expected two increasing positions in 0..3, found ${nib & 3} then ${nib >> 2}`,
          entry,
        );
    }
  if (groups % 2 === 1)
    for (let r = 0; r < rows; r++) {
      const pad = idx[r * perRow + perRow - 1] >> 4;
      if (pad !== 0)
        throw new WeightsError(
          `tensor "${entry}": row ${r}: expected a zero pad nibble after the last group, found ${pad}`,
          entry,
        );
    }
}

// ---------------------------------------------------------------- shards

export type ShardKind = 'full' | 'edge' | 'experts';
export const SHARD_KINDS: readonly ShardKind[] = ['full', 'edge', 'experts'];

/** Which part of the model a file holds. `experts` lists the expert ids, ascending. */
export interface ShardInfo {
  kind: ShardKind;
  experts: number[];
}

/** A shard as a caller may give it: `experts` can be left out for 'full' (all) and 'edge' (none). */
export interface ShardInput {
  kind: ShardKind;
  experts?: readonly number[];
}

const allExperts = (c: ModelConfig) => Array.from({ length: c.experts.count }, (_, e) => e);

/**
 * Validates a shard description against the config and returns it with the expert ids sorted.
 * `source` prefixes the messages; `requireExperts` is set when reading a file, where the field is mandatory.
 */
export function normalizeShard(
  config: ModelConfig,
  input: unknown,
  source = 'shard',
  requireExperts = false,
): ShardInfo {
  const E = config.experts.count;
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    throw new WeightsError(`${source}: expected an object {"kind", "experts"}, found ${show(input)}`);
  const o = input as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => k !== 'kind' && k !== 'experts');
  if (extra.length)
    throw new WeightsError(`${source}: expected only the fields kind and experts, found ${extra.join(', ')}`);
  const kind = o.kind as ShardKind;
  if (!SHARD_KINDS.includes(kind))
    throw new WeightsError(
      `${source}.kind: expected one of ${SHARD_KINDS.join(', ')}, found ${show(o.kind)}`,
    );
  let experts: number[];
  if (o.experts === undefined && !requireExperts && kind !== 'experts')
    experts = kind === 'full' ? allExperts(config) : [];
  else {
    if (!Array.isArray(o.experts))
      throw new WeightsError(`${source}.experts: expected an array of expert ids, found ${show(o.experts)}`);
    experts = [];
    o.experts.forEach((e: unknown, i: number) => {
      if (typeof e !== 'number' || !Number.isInteger(e) || e < 0 || e >= E)
        throw new WeightsError(
          `${source}.experts[${i}]: expected an expert id in [0, ${E}), found ${show(e)}`,
        );
      if (experts.includes(e))
        throw new WeightsError(`${source}.experts: expected distinct ids, found ${e} more than once`);
      experts.push(e);
    });
    experts.sort((a, b) => a - b);
  }
  const found = `found [${experts.join(', ')}]`;
  if (kind === 'full' && experts.length !== E)
    throw new WeightsError(`${source}.experts: a full file expected every expert [0..${E - 1}], ${found}`);
  if (kind === 'edge' && experts.length !== 0)
    throw new WeightsError(`${source}.experts: an edge file expected no experts [], ${found}`);
  if (kind === 'experts' && experts.length === 0)
    throw new WeightsError(`${source}.experts: an expert shard expected at least one expert id, ${found}`);
  return { kind, experts };
}

/** Whether a shard holds this tensor. */
export function shardHolds(shard: ShardInfo, spec: ParamSpec): boolean {
  if (shard.kind === 'full') return true;
  if (shard.kind === 'edge') return spec.tier === 'edge';
  return spec.tier === 'expert-shared' || (spec.tier === 'expert' && shard.experts.includes(spec.expert!));
}

/** The tensors a shard holds, in canonical (paramSpecs) order. */
export function shardSpecs(config: ModelConfig, shard: ShardInfo): ParamSpec[] {
  return paramSpecs(config).filter((s) => shardHolds(shard, s));
}

/** parseConfig, with its error re-thrown as a WeightsError (the issues stay on `cause`). */
export function checkConfig(input: unknown, source: string): ModelConfig {
  try {
    return parseConfig(input, source);
  } catch (e) {
    if (e instanceof ConfigError) throw new WeightsError(e.message, undefined, { cause: e });
    throw e;
  }
}

/** A short rendering of a found value for error messages. */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? s.slice(0, 77) + '...' : s;
}

export const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** Lists names in messages without flooding them. */
export function listNames(names: readonly string[], max = 8): string {
  const shown = names.slice(0, max).map((n) => JSON.stringify(n));
  return shown.join(', ') + (names.length > max ? `, and ${names.length - max} more` : '');
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Typed arrays use the host's byte order and the file is little-endian, so views are only right on LE hosts. */
export function assertLittleEndian(): void {
  if (!LITTLE_ENDIAN)
    throw new WeightsError(
      'host byte order: expected little-endian (every supported runtime is), found big-endian',
    );
}
