import { env } from 'cloudflare:workers';
import { describe, it, expect } from 'vitest';
import { readWeights, splitWeights } from '@switchyard/shared/weights/index';
import fullModel from '../../../shared/golden/tiny-int8.safetensors';
import bundled from '../../model/edge.safetensors';
import type { Env } from '../env.ts';
import { ServerConfigError } from '../errors.ts';
import { availableComputeBackends, createEdgeCompute } from './index.ts';
import { loadEdgeWeights } from './weights.ts';

const e = env as unknown as Env;
const full = readWeights(new Uint8Array(fullModel));

describe('edge weights', () => {
  it('the bundled file is the edge part of the golden model, byte for byte (edge/scripts/build-model.ts)', () => {
    const edge = splitWeights(full, 1).edge;
    expect(new Uint8Array(bundled)).toEqual(edge);
  });

  it('loads the bundled file once per isolate', async () => {
    const a = await loadEdgeWeights(e, null);
    const b = await loadEdgeWeights(e, null);
    expect(a.source).toBe('bundled');
    expect(b.file).toBe(a.file);
    expect(a.file.shard.kind).toBe('edge');
  });

  it('loads a file from the WEIGHTS R2 bucket when WEIGHTS_R2_KEY names one', async () => {
    await e.WEIGHTS!.put('models/tiny-edge.safetensors', bundled);
    const w = await loadEdgeWeights(e, 'models/tiny-edge.safetensors');
    expect(w.source).toBe('r2:models/tiny-edge.safetensors');
    expect(w.file.config).toEqual(full.config);
    expect(await loadEdgeWeights(e, 'models/tiny-edge.safetensors')).toBe(w);
  });

  it('accepts a full model file from R2 (it holds the edge tensors too)', async () => {
    await e.WEIGHTS!.put('models/full.safetensors', fullModel);
    expect((await loadEdgeWeights(e, 'models/full.safetensors')).file.shard.kind).toBe('full');
  });

  it('says what is wrong: a missing object, an expert shard, a corrupt file, no bucket', async () => {
    await expect(loadEdgeWeights(e, 'models/none')).rejects.toThrow(
      'edge weights: expected an object "models/none" in the WEIGHTS bucket, found none',
    );
    await e.WEIGHTS!.put('models/shard.safetensors', splitWeights(full, 2).shards[0].bytes);
    await expect(loadEdgeWeights(e, 'models/shard.safetensors')).rejects.toThrow(
      /expected an edge or full weights file, found an expert shard/,
    );
    const corrupt = new Uint8Array(bundled).slice();
    corrupt[corrupt.length - 1] ^= 0xff;
    await e.WEIGHTS!.put('models/corrupt.safetensors', corrupt);
    const err = await loadEdgeWeights(e, 'models/corrupt.safetensors').catch((x) => x);
    expect(err).toBeInstanceOf(ServerConfigError);
    expect(err.code).toBe('weights_invalid');
    expect(err.message).toMatch(/^edge weights \(r2:models\/corrupt.safetensors\): .*checksum/i);
    await expect(loadEdgeWeights({ ...e, WEIGHTS: undefined }, 'x')).rejects.toThrow(
      /no R2 bucket is bound as WEIGHTS/,
    );
  });

  it('does not cache a failed load: the object may be uploaded later', async () => {
    await expect(loadEdgeWeights(e, 'models/later')).rejects.toThrow(/found none/);
    await e.WEIGHTS!.put('models/later', bundled);
    expect((await loadEdgeWeights(e, 'models/later')).source).toBe('r2:models/later');
  });
});

describe('compute backend factory', () => {
  it('builds the reference backend', async () => {
    const { file } = await loadEdgeWeights(e, null);
    expect((await createEdgeCompute('reference', file)).name).toBe('reference');
    expect(availableComputeBackends()).toContain('reference');
  });

  it('names the valid backends for an unknown one', async () => {
    const { file } = await loadEdgeWeights(e, null);
    await expect(createEdgeCompute('gpu', file)).rejects.toThrow(
      'COMPUTE_BACKEND: expected one of wasm-simd, ort-web, reference, found "gpu"',
    );
  });
});
