// Node-only: builds (when needed) and loads the kernel modules from wasm/build/ for tests and benchmarks.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { createKernels, relaxedSimdSupported, type KernelOptions, type Kernels } from './kernels.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
export const KERNEL_PATHS = {
  simd: `${root}build/kernels.wasm`,
  relaxed: `${root}build/kernels-relaxed.wasm`,
} as const;

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/** Runs the asc build when a module is missing or older than a source under assembly/. */
export function ensureBuilt(): void {
  const sources = readdirSync(`${root}assembly`).map((f) => mtime(`${root}assembly/${f}`));
  const newest = Math.max(...sources, mtime(`${root}scripts/build.mjs`));
  const oldest = Math.min(mtime(KERNEL_PATHS.simd), mtime(KERNEL_PATHS.relaxed));
  if (oldest >= newest) return;
  const r = spawnSync(process.execPath, [`${root}scripts/build.mjs`], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(
      `wasm build: expected exit status 0, found ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`,
    );
}

/**
 * Node 20 keeps relaxed SIMD behind a V8 flag; V8 accepts it at run time as long as no module using it has
 * been compiled yet. Returns whether relaxed SIMD is usable now.
 */
export function enableRelaxedSimd(): boolean {
  if (!relaxedSimdSupported()) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  return relaxedSimdSupported();
}

export function kernelBytes(): { simd: Uint8Array<ArrayBuffer>; relaxed: Uint8Array<ArrayBuffer> } {
  return {
    simd: new Uint8Array(readFileSync(KERNEL_PATHS.simd)),
    relaxed: new Uint8Array(readFileSync(KERNEL_PATHS.relaxed)),
  };
}

/** Builds if needed, then instantiates from disk. */
export async function loadKernels(options: KernelOptions = {}): Promise<Kernels> {
  ensureBuilt();
  return createKernels(kernelBytes(), options);
}
