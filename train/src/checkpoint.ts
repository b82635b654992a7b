// Training checkpoints: one file with a JSON header (progress, options, the shapes) and the float32 data
// of every named tensor (model variables and optimizer moments). Written to a temporary name and renamed,
// so that an interrupted write never replaces a good checkpoint.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { HostTensor } from './model-tf.ts';

export const CHECKPOINT_FORMAT = 'switchyard.train-checkpoint/1';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface Checkpoint<M> {
  meta: M;
  tensors: Map<string, HostTensor>;
}

export function encodeCheckpoint<M>(ck: Checkpoint<M>): Uint8Array {
  const entries: { name: string; shape: number[]; offset: number; length: number }[] = [];
  let offset = 0;
  for (const [name, t] of ck.tensors) {
    entries.push({ name, shape: t.shape, offset, length: t.data.length });
    offset += t.data.length;
  }
  const header = new TextEncoder().encode(
    JSON.stringify({ format: CHECKPOINT_FORMAT, meta: ck.meta, entries }),
  );
  // The data starts 4-aligned so the floats can be viewed in place when read back.
  const pad = (4 - ((8 + header.length) % 4)) % 4;
  const out = new Uint8Array(8 + header.length + pad + offset * 4);
  new DataView(out.buffer).setUint32(0, header.length + pad, true);
  out.set(header, 8);
  out.fill(0x20, 8 + header.length, 8 + header.length + pad);
  const data = new Float32Array(out.buffer, 8 + header.length + pad, offset);
  for (const e of entries) data.set(ck.tensors.get(e.name)!.data, e.offset);
  return out;
}

export function decodeCheckpoint<M>(bytes: Uint8Array, source = 'checkpoint'): Checkpoint<M> {
  if (bytes.length < 8)
    throw new CheckpointError(`${source}: expected at least 8 bytes, found ${bytes.length}`);
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  const headerLen = new DataView(copy.buffer).getUint32(0, true);
  let header: {
    format?: string;
    meta: M;
    entries: { name: string; shape: number[]; offset: number; length: number }[];
  };
  try {
    header = JSON.parse(new TextDecoder().decode(copy.subarray(8, 8 + headerLen)));
  } catch (e) {
    throw new CheckpointError(
      `${source}: expected a JSON header of ${headerLen} bytes, found unreadable bytes`,
      {
        cause: e,
      },
    );
  }
  if (header.format !== CHECKPOINT_FORMAT)
    throw new CheckpointError(
      `${source}: expected format "${CHECKPOINT_FORMAT}", found ${JSON.stringify(header.format)}`,
    );
  const total = header.entries.reduce((n, e) => n + e.length, 0);
  if (copy.length !== 8 + headerLen + total * 4)
    throw new CheckpointError(
      `${source}: expected ${8 + headerLen + total * 4} bytes for ${header.entries.length} tensors, found ${copy.length} (truncated?)`,
    );
  const data = new Float32Array(copy.buffer, 8 + headerLen, total);
  const tensors = new Map<string, HostTensor>();
  for (const e of header.entries)
    tensors.set(e.name, { shape: e.shape, data: data.slice(e.offset, e.offset + e.length) });
  return { meta: header.meta, tensors };
}

export function saveCheckpoint<M>(path: string, ck: Checkpoint<M>): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, encodeCheckpoint(ck));
  renameSync(tmp, path);
}

export function loadCheckpoint<M>(path: string): Checkpoint<M> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CheckpointError(`cannot read checkpoint "${path}": ${(e as Error).message}`, { cause: e });
  }
  return decodeCheckpoint<M>(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}
