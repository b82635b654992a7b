// Registers the compiled-in compute backends with the factory in index.ts. Imported once, where the Worker
// starts (edge/src/index.ts).
//
// wasm-simd is always in the build and becomes the default. ort-web is a build-time option: its wasm
// (~14 MB raw, ~3.7 MB gzipped) would push the Worker past the free plan's 3 MB gzipped script limit, so it
// is bundled only when SWITCHYARD_ORT_WEB is defined true at build time
// (`npx wrangler deploy --define SWITCHYARD_ORT_WEB:true`, likewise `wrangler dev`). Otherwise esbuild folds
// the condition below to false and drops the dynamic import, and ORT with it.
import type { WeightsFile } from '@switchyard/shared/weights/index';
import { registerComputeBackend } from './index.ts';
import type { OrtWebCompute } from './ort-web.ts';
import { wasmSimdCompute } from './wasm-simd.ts';

declare const SWITCHYARD_ORT_WEB: boolean | undefined;

registerComputeBackend('wasm-simd', (file) => wasmSimdCompute(file));

// The imports sit inside the branch itself: esbuild skips the imports of a branch it has folded away, so the
// default build never even resolves ORT or its wasm.
if (typeof SWITCHYARD_ORT_WEB !== 'undefined' && SWITCHYARD_ORT_WEB === true) {
  const instances = new WeakMap<WeightsFile, Promise<OrtWebCompute>>();
  // Once per weights file per isolate; ORT and its wasm load on first use, which is inside a request.
  registerComputeBackend('ort-web', (file) => {
    let p = instances.get(file);
    if (!p) {
      p = (async () => {
        const [{ createOrtWebCompute }, { default: wasm }] = await Promise.all([
          import('./ort-web.ts'),
          import('onnxruntime-web/ort-wasm-simd-threaded.wasm'),
        ]);
        return createOrtWebCompute(file, wasm);
      })();
      p.catch(() => instances.delete(file));
      instances.set(file, p);
    }
    return p;
  });
}
