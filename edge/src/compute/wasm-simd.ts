// The default edge compute: wasm/'s SIMD kernels (WasmEdgeCompute). workerd refuses to compile wasm at run
// time, so both kernel builds arrive as CompiledWasm modules (wrangler.toml [[rules]]) compiled at upload;
// the relaxed-SIMD build is taken where the engine validates relaxed instructions.
//
// Imports only shared/ and wasm/ (no Worker types), so that Node tests and the bench worker can use it too.
import type { WeightsFile } from '@switchyard/shared/weights/index';
import { createKernels, relaxedSimdSupported, type SimdFlavor } from '@switchyard/wasm';
import { WasmEdgeCompute, type EdgeTensors, type WasmEdgeOptions } from '@switchyard/wasm/edge';
import relaxedModule from '@switchyard/wasm/kernels-relaxed.wasm';
import simdModule from '@switchyard/wasm/kernels.wasm';

export interface WasmSimdOptions extends WasmEdgeOptions {
  /** 'auto' (default): relaxed-simd where WebAssembly.validate accepts it, else simd. */
  flavor?: 'auto' | SimdFlavor;
}

/** The kernel build this engine runs: relaxed SIMD when it validates, else plain SIMD. */
export function detectFlavor(): SimdFlavor {
  return relaxedSimdSupported() ? 'relaxed-simd' : 'simd';
}

/** The edge tensors of a weights file as stored (int8, 2:4 or f32), viewing the file's bytes. */
export function edgeTensors(file: WeightsFile): EdgeTensors {
  const out = new Map<string, ReturnType<WeightsFile['stored']>>();
  for (const name of file.names()) out.set(name, file.stored(name));
  return out;
}

/**
 * A new WasmEdgeCompute over the file's edge tensors: its own kernel instance (own linear memory), into which
 * every weight is copied and re-laid out now, once. `modules` defaults to the bundled kernel builds.
 */
export async function createWasmSimdCompute(
  file: WeightsFile,
  options: WasmSimdOptions = {},
  modules: { simd: WebAssembly.Module; relaxed: WebAssembly.Module } = {
    simd: simdModule,
    relaxed: relaxedModule,
  },
): Promise<WasmEdgeCompute> {
  const want = options.flavor ?? 'auto';
  const flavor = want === 'auto' ? detectFlavor() : want;
  // Only the module of the chosen flavor is handed over: createKernels must not second-guess the detection.
  const kernels = await createKernels(
    flavor === 'relaxed-simd' ? { simd: modules.simd, relaxed: modules.relaxed } : { simd: modules.simd },
    { flavor },
  );
  return new WasmEdgeCompute(kernels, file.config, edgeTensors(file), {
    mode: options.mode,
    modes: options.modes,
    sparse: options.sparse,
  });
}

// One instance per (weights file, options) per isolate: services may be rebuilt (new settings), the weights
// already in kernel memory are not copied again.
const instances = new WeakMap<WeightsFile, Map<string, Promise<WasmEdgeCompute>>>();

/** createWasmSimdCompute, memoized per weights file and options for the isolate's lifetime. */
export function wasmSimdCompute(file: WeightsFile, options: WasmSimdOptions = {}): Promise<WasmEdgeCompute> {
  let byOptions = instances.get(file);
  if (!byOptions) instances.set(file, (byOptions = new Map()));
  const modes = Object.entries(options.modes ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  const key = JSON.stringify([
    options.flavor ?? 'auto',
    options.mode ?? 'auto',
    options.sparse ?? 'sparse',
    modes,
  ]);
  let p = byOptions.get(key);
  if (!p) {
    const map = byOptions;
    p = createWasmSimdCompute(file, options);
    p.catch(() => map.delete(key));
    map.set(key, p);
  }
  return p;
}
