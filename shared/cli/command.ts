// What a CLI command is, and the few helpers every command shares.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  defaultScheme,
  paramSpecs,
  quantizeAs,
  readWeights,
  writeStored,
  type ModelConfig,
  type ParamSpec,
  type QuantScheme,
  type ShardInput,
  type StoredTensor,
  type Tensor,
  type WeightsFile,
} from '../src/index.ts';
import { progress } from './progress.ts';

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Record<string, string | boolean | undefined>, positionals: string[]): Promise<void> | void;
}

/** A mistake in how the command was called: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export function parse(cmd: Command, argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export function requireString(values: Record<string, unknown>, key: string, what: string): string {
  const v = values[key];
  if (typeof v !== 'string' || !v) throw new UsageError(`--${key}: expected ${what}, found nothing`);
  return v;
}

export function oneOf<T extends string>(key: string, value: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T))
    throw new UsageError(`--${key}: expected one of ${allowed.join(', ')}, found "${value}"`);
  return value as T;
}

export function intOption(key: string, value: string | undefined, def: number, min = 0): number {
  if (value === undefined) return def;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${key}: expected an integer ≥ ${min}, found "${value}"`);
  return n;
}

export function onePath(positionals: string[], what: string): string {
  if (positionals.length !== 1)
    throw new UsageError(
      `expected one ${what}, found ${positionals.length ? positionals.join(' ') : 'none'}`,
    );
  return positionals[0];
}

export function loadWeights(path: string, verify = true): WeightsFile {
  let bytes: Uint8Array;
  try {
    const buf = readFileSync(path);
    bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (e) {
    throw new UsageError(`cannot read "${path}": ${(e as Error).message}`);
  }
  // A fresh, 8-aligned copy: Node's Buffer may sit at any offset in its pool, which forbids zero-copy views.
  const aligned = new Uint8Array(bytes.length);
  aligned.set(bytes);
  try {
    return readWeights(aligned, { verify });
  } catch (e) {
    // The reader knows tensors, not paths: the user needs to know which file it was.
    if (e instanceof Error) e.message = `"${path}": ${e.message}`;
    throw e;
  }
}

export function writeOut(path: string, bytes: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
}

export const mib = (n: number) => `${(n / 1048576).toFixed(2)} MiB`;
export const millions = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n.toLocaleString('en-US'));

/** Quantizes tensor by tensor with a progress bar, then writes: the slow part of init and quantize. */
export function quantizeWithProgress(
  config: ModelConfig,
  tensor: (spec: ParamSpec) => Tensor,
  scheme: QuantScheme,
  shard: ShardInput = { kind: 'full' },
): Uint8Array {
  const choose = defaultScheme(scheme);
  const specs = paramSpecs(config).filter(
    (s) => shard.kind === 'full' || (shard.kind === 'edge') === (s.tier === 'edge'),
  );
  const bar = progress(`quantize (${scheme})`, specs.length);
  const stored = new Map<string, StoredTensor>();
  specs.forEach((s, i) => {
    stored.set(s.name, quantizeAs(tensor(s), choose(s)));
    bar.update(i + 1, s.name);
  });
  bar.done();
  return writeStored(config, stored, shard);
}
