// The ort-web backend inside workerd, loaded as the Worker loads it: ORT's wasm imported compiled, ORT's
// instantiate call handed that module. Golden sessions and per-step numbers against the reference.
import type { GoldenFile } from '@switchyard/shared/golden';
import kernelsModule from '@switchyard/wasm/kernels.wasm';
import ortWasm from 'onnxruntime-web/ort-wasm-simd-threaded.wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import fullModel from '../../../shared/golden/tiny-int8.safetensors';
import goldenJson from '../../../shared/golden/tiny-int8.golden.json';
import { goldenModel, runGolden } from './golden-harness.ts';
import { createOrtWebCompute, OrtWebCompute } from './ort-web.ts';

const golden = goldenJson as unknown as GoldenFile;
const model = goldenModel(fullModel);

// ORT dequantizes the int8 weights exactly as the reference does (DequantizeLinear = q·scale in float32) and
// accumulates in float32 (MLAS) where the reference uses float64; its sigmoid/tanh are float32
// approximations. Measured ≤ 1e-6; 1e-4 is shared's bound for the same graphs, ~100× below the error of a
// wrong gate order or a missing input.
const ORT_TOL = 1e-4;

let edge: OrtWebCompute;
beforeAll(async () => {
  edge = await createOrtWebCompute(model.edge, ortWasm);
}, 60_000);

describe('ort-web inside workerd, golden model', () => {
  it('compareGolden reports nothing, every step within float32 error of the reference', async () => {
    expect(edge.name).toBe('ort-web');
    const run = await runGolden(edge, model, golden);
    expect(run.mismatches).toEqual([]);
    for (const key of ['h', 'c', 'probs', 'logits', 'stmKey', 'stmValue', 'ltmWeights'] as const)
      expect(run.errors[key], key).toBeLessThanOrEqual(ORT_TOL);
    expect(run.errors.ltmAtomMismatches).toBe(0);
    expect(run.errors.steps).toBeGreaterThan(50);
  });

  it('a second backend in the same isolate reuses the running ORT; another wasm module is refused', async () => {
    const again = await createOrtWebCompute(model.edge, ortWasm);
    const state = model.reference.initialState();
    const a = await again.controller(state, 258);
    const b = await edge.controller(state, 258);
    expect(Array.from(a.h)).toEqual(Array.from(b.h));
    await again.release();
    // workerd compiles no wasm at run time, so "another module" is one the test imports: the kernels.
    await expect(createOrtWebCompute(model.edge, kernelsModule)).rejects.toThrow(
      /ORT starts once per isolate/,
    );
  });

  it('rejects wrong tokens and state sizes, naming what was expected', async () => {
    const s = model.reference.initialState();
    await expect(edge.controller(s, model.edge.config.vocab)).rejects.toThrow(
      /token: expected an integer in \[0, 260\), found 260/,
    );
    await expect(edge.controller({ ...s, h: new Float32Array(3) }, 1)).rejects.toThrow(
      /state.h: expected 64 elements, found 3/,
    );
    await expect(edge.head(new Float32Array(64), new Float32Array(2))).rejects.toThrow(
      /head: expected h and m of 64 elements/,
    );
  });
});
