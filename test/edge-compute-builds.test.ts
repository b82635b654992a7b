// The edge Worker's two builds, as wrangler bundles them and workerd runs them: the default one carries the
// wasm-simd kernels and no onnxruntime-web; `--define SWITCHYARD_ORT_WEB:true` adds ORT and its wasm, and
// COMPUTE_BACKEND=ort-web then serves from it (ORT loaded by a dynamic import inside the first request).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { modulesOf, startWorker, wranglerBundle } from '../bench/workerd/bundle.ts';

const dir = mkdtempSync(join(tmpdir(), 'switchyard-edge-builds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function health(
  outdir: string,
  bindings: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const mf = startWorker(outdir, modulesOf(outdir), bindings);
  try {
    const res = await mf.dispatchFetch('http://edge/health');
    const text = await res.text();
    expect(res.status, text).toBe(200);
    return JSON.parse(text) as Record<string, unknown>;
  } finally {
    await mf.dispose();
  }
}

describe('default build', () => {
  const out = join(dir, 'default');
  const size = wranglerBundle('default', out, []);

  it('holds both kernel builds and the weights, no onnxruntime-web, and fits the free plan (3 MB gzipped)', () => {
    const names = size.files.map((f) => f.name);
    expect(names.some((n) => n.endsWith('-kernels.wasm'))).toBe(true);
    expect(names.some((n) => n.endsWith('-kernels-relaxed.wasm'))).toBe(true);
    expect(names.some((n) => n.endsWith('.safetensors'))).toBe(true);
    expect(names.filter((n) => n.includes('ort-wasm'))).toEqual([]);
    expect(size.gzipBytes).toBeLessThan(3 * 1024 * 1024);
  });

  it('computes with wasm-simd (the relaxed build, which workerd validates)', async () => {
    expect((await health(out)).compute).toBe('wasm-relaxed-simd');
  });

  it('refuses COMPUTE_BACKEND=ort-web, naming what this build has', async () => {
    const mf = startWorker(out, modulesOf(out), { COMPUTE_BACKEND: 'ort-web' });
    try {
      const res = await mf.dispatchFetch('http://edge/health');
      const body = (await res.json()) as { error: { message: string } };
      expect(res.status).toBeGreaterThanOrEqual(500);
      expect(body.error.message).toMatch(
        /"ort-web" is not part of this build; available: wasm-simd, reference/,
      );
    } finally {
      await mf.dispose();
    }
  });
});

describe('ort-web build (--define SWITCHYARD_ORT_WEB:true)', () => {
  const out = join(dir, 'ort-web');
  const size = wranglerBundle('ort-web', out, ['--define', 'SWITCHYARD_ORT_WEB:true']);

  it("adds ORT's wasm (~14 MB raw) to the bundle", () => {
    const ort = size.files.find((f) => f.name.endsWith('-ort-wasm-simd-threaded.wasm'));
    expect(ort?.rawBytes).toBeGreaterThan(10 * 1024 * 1024);
  });

  it('serves COMPUTE_BACKEND=ort-web from inside workerd, and still defaults to wasm-simd', async () => {
    expect((await health(out, { COMPUTE_BACKEND: 'ort-web' })).compute).toBe('ort-web');
    expect((await health(out)).compute).toBe('wasm-relaxed-simd');
  });
});
