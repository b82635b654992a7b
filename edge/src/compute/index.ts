// The edge's per-step compute, chosen by COMPUTE_BACKEND. `reference` (shared's float32 model over the
// dequantized edge weights) is always here; `wasm-simd` and `ort-web` register themselves when their
// modules are part of the build, and `wasm-simd` becomes the default as soon as it does.
import type { EdgeComputeBackend } from '@switchyard/shared/interfaces';
import { ReferenceEdge, ReferenceModel } from '@switchyard/shared/reference';
import type { WeightsFile } from '@switchyard/shared/weights/index';
import { ServerConfigError } from '../errors.ts';

export const COMPUTE_BACKEND_NAMES = ['wasm-simd', 'ort-web', 'reference'] as const;
export type ComputeBackendName = (typeof COMPUTE_BACKEND_NAMES)[number];

export type ComputeFactory = (file: WeightsFile) => EdgeComputeBackend | Promise<EdgeComputeBackend>;

const factories = new Map<ComputeBackendName, ComputeFactory>([
  ['reference', (file) => new ReferenceEdge(new ReferenceModel(file.config, file.params(), 'edge'))],
]);

/** Where the wasm-simd and ort-web backends plug in. */
export function registerComputeBackend(name: ComputeBackendName, factory: ComputeFactory): void {
  factories.set(name, factory);
}

export function availableComputeBackends(): ComputeBackendName[] {
  return COMPUTE_BACKEND_NAMES.filter((n) => factories.has(n));
}

/** The first of wasm-simd, ort-web, reference that this build has. */
export function defaultComputeBackend(): ComputeBackendName {
  return availableComputeBackends()[0];
}

export async function createEdgeCompute(name: string | null, file: WeightsFile): Promise<EdgeComputeBackend> {
  const chosen = name ?? defaultComputeBackend();
  if (!(COMPUTE_BACKEND_NAMES as readonly string[]).includes(chosen))
    throw new ServerConfigError(
      `COMPUTE_BACKEND: expected one of ${COMPUTE_BACKEND_NAMES.join(', ')}, found ${JSON.stringify(chosen)}`,
    );
  const factory = factories.get(chosen as ComputeBackendName);
  if (!factory)
    throw new ServerConfigError(
      `COMPUTE_BACKEND: "${chosen}" is not part of this build; available: ${availableComputeBackends().join(', ')}`,
    );
  return factory(file);
}
