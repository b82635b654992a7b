// The edge weights, loaded once per isolate: the file bundled with the Worker (small models), or an object in
// the R2 bucket bound as WEIGHTS (large ones), named by WEIGHTS_R2_KEY.
import { readWeights, WeightsError, type WeightsFile } from '@switchyard/shared/weights/index';
import bundled from '../../model/edge.safetensors';
import type { Env } from '../env.ts';
import { ServerConfigError } from '../errors.ts';

export interface LoadedWeights {
  file: WeightsFile;
  /** "bundled" or "r2:<key>". */
  source: string;
}

const loaded = new Map<string, Promise<LoadedWeights>>();

function parse(bytes: ArrayBuffer | Uint8Array, source: string): LoadedWeights {
  let file: WeightsFile;
  try {
    file = readWeights(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
  } catch (e) {
    if (e instanceof WeightsError)
      throw new ServerConfigError(`edge weights (${source}): ${e.message}`, 'weights_invalid');
    throw e;
  }
  if (file.shard.kind !== 'edge' && file.shard.kind !== 'full')
    throw new ServerConfigError(
      `edge weights (${source}): expected an edge or full weights file, found an expert shard (kind "${file.shard.kind}"); split the model with \`switchyard split\` and use its edge file`,
      'weights_invalid',
    );
  return { file, source };
}

async function fromR2(env: Env, key: string): Promise<LoadedWeights> {
  if (!env.WEIGHTS)
    throw new ServerConfigError(
      `WEIGHTS_R2_KEY is set to ${JSON.stringify(key)} but no R2 bucket is bound as WEIGHTS; add an [[r2_buckets]] binding named WEIGHTS`,
      'weights_missing',
    );
  const obj = await env.WEIGHTS.get(key);
  if (!obj)
    throw new ServerConfigError(
      `edge weights: expected an object ${JSON.stringify(key)} in the WEIGHTS bucket, found none`,
      'weights_missing',
    );
  return parse(await obj.arrayBuffer(), `r2:${key}`);
}

export function loadEdgeWeights(env: Env, r2Key: string | null): Promise<LoadedWeights> {
  const source = r2Key ? `r2:${r2Key}` : 'bundled';
  let p = loaded.get(source);
  if (!p) {
    p = r2Key ? fromR2(env, r2Key) : Promise.resolve().then(() => parse(bundled, 'bundled'));
    // A failed load is not cached: the next request tries again (the object may have been uploaded since).
    p.catch(() => loaded.delete(source));
    loaded.set(source, p);
  }
  return p;
}
