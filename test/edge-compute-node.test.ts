// The two edge compute backends in Node, on the golden model (their workerd tests are in edge/src/compute/):
// wasm-simd as WasmEdgeCompute over the kernels loaded from disk, ort-web with ORT's wasm compiled here.
// Golden sessions with shared's reference experts, per-step numbers against the reference.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { GoldenFile } from '@switchyard/shared/golden';
import { createKernels, type SimdFlavor } from '@switchyard/wasm';
import { WasmEdgeCompute } from '@switchyard/wasm/edge';
import { enableRelaxedSimd, ensureBuilt, kernelBytes } from '@switchyard/wasm/node';
import { describe, expect, it } from 'vitest';
import { goldenModel, runGolden, type StepErrors } from '../edge/src/compute/golden-harness.ts';
import { createOrtWebCompute } from '../edge/src/compute/ort-web.ts';

const GOLDEN_DIR = new URL('../shared/golden/', import.meta.url).pathname;
const golden = JSON.parse(readFileSync(join(GOLDEN_DIR, 'tiny-int8.golden.json'), 'utf8')) as GoldenFile;
const model = goldenModel(new Uint8Array(readFileSync(join(GOLDEN_DIR, 'tiny-int8.safetensors'))));
const FLAVORS: SimdFlavor[] = enableRelaxedSimd() ? ['simd', 'relaxed-simd'] : ['simd'];

// The same tolerances as the workerd tests (edge/src/compute/wasm-simd.test.ts, ort-web.test.ts).
const FLOAT32_TOL = 1e-5;
const FAST_TOL = 2e-3;
const ORT_TOL = 1e-4;

type Quantity = 'h' | 'c' | 'probs' | 'logits' | 'stmKey' | 'stmValue' | 'ltmWeights';

function expectWithin(
  e: StepErrors,
  tol: number,
  keys: readonly Quantity[] = ['h', 'c', 'probs', 'stmKey', 'stmValue', 'ltmWeights'],
): void {
  for (const key of keys) expect(e[key], key).toBeLessThanOrEqual(tol);
  expect(e.ltmAtomMismatches).toBe(0);
  expect(e.steps).toBeGreaterThan(50);
}

describe.each(FLAVORS)('wasm-simd (%s) in Node, golden model', (flavor) => {
  const make = async (mode: 'fast' | 'exact') => {
    ensureBuilt();
    const kernels = await createKernels(kernelBytes(), { flavor });
    const tensors = new Map(model.edge.names().map((n) => [n, model.edge.stored(n)]));
    return new WasmEdgeCompute(kernels, model.edge.config, tensors, { mode });
  };

  it("int8 'exact': compareGolden reports nothing", async () => {
    const run = await runGolden(await make('exact'), model, golden);
    expect(run.mismatches).toEqual([]);
    expectWithin(run.errors, FLOAT32_TOL, ['h', 'c', 'probs', 'logits', 'stmKey', 'stmValue', 'ltmWeights']);
  });

  it("int8 'fast': tokens, experts and gates as golden, logits within the kernels' bound", async () => {
    const run = await runGolden(await make('fast'), model, golden);
    expect(run.mismatches.filter((m) => !m.what.startsWith('logits checksum'))).toEqual([]);
    expect(run.deviation.logitsChecksum).toBeLessThanOrEqual(2e-3);
    expect(run.errors.logitsOverFastBound).toBeLessThanOrEqual(1);
    expectWithin(run.errors, FAST_TOL);
  });
});

describe('ort-web in Node, golden model', () => {
  it('compareGolden reports nothing, every step within float32 error of the reference', async () => {
    const require = createRequire(import.meta.url);
    const wasmPath = require.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm');
    const edge = await createOrtWebCompute(model.edge, await WebAssembly.compile(readFileSync(wasmPath)));
    const run = await runGolden(edge, model, golden);
    expect(run.mismatches).toEqual([]);
    expectWithin(run.errors, ORT_TOL, [
      'h',
      'c',
      'probs',
      'logits',
      'stmKey',
      'stmValue',
      'ltmWeights',
    ] as const);
    await edge.release();
  });
});
