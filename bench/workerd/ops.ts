// What the bench Worker (worker.ts) and its driver (../edge-compute.ts) agree on: the operations, and the
// work one call of each roofline operation does. Runtime-free.

// wasm-int8 is the default everywhere: the relaxed-simd build, mode 'auto' (relaxed-dot where the fused
// dot runs with 8-bit parts, as in workerd on AVX-VNNI), and in the step the head in 'precise'.
export const STEP_OPS = [
  'step:wasm-int8',
  'step:wasm-int8-head-fast',
  'step:wasm-int8-head-exact',
  'step:wasm-int8-simd',
  'step:wasm-2:4',
  'step:ort-web',
  'step:typescript',
] as const;

export const MATVEC_OPS = [
  'matvec:wasm-int8',
  'matvec:wasm-int8-fast',
  'matvec:wasm-int8-simd',
  'matvec:wasm-int8-precise',
  'matvec:wasm-int8-exact',
  'matvec:wasm-2:4',
  'matvec:ort-web',
  'matvec:typescript',
] as const;

/** The output head alone (r1-seed head.w, [V, 2H]) in each mode it may run in. */
export const HEAD_OPS = ['head:auto', 'head:precise', 'head:exact'] as const;
export const HEAD_SHAPE = [260, 1024] as const;

/** The mat-vec's shape: r1-seed's lstm.w_ih, [4H, Dc + S + H]. */
export const MATVEC_SHAPE = [2048, 896] as const;

/** Working sets of the bandwidth operations: L1-sized, the int8 2048×896 matrix (L2), and L3-sized. */
export const BANDWIDTH_SETS = { l1: 16 << 10, l2: 2048 * 896, l3: 32 << 20 } as const;
export type BandwidthSet = keyof typeof BANDWIDTH_SETS;

/** Loop iterations per call of a peak operation, and multiply-adds per iteration (wasm/assembly/roofline.ts). */
export const PEAK_ITERS = 100_000;
export const PEAK_MACS_PER_ITER = {
  dot_i16: 96,
  load_ext_dot: 64,
  load16_dot: 64,
  load_rdot: 256,
  dot_i8_relaxed: 192,
  fma_f32: 48,
} as const;
export type PeakOp = keyof typeof PEAK_MACS_PER_ITER;

export const ROOF_OPS = [
  ...Object.keys(BANDWIDTH_SETS).map((s) => `bw:${s}`),
  ...Object.keys(PEAK_MACS_PER_ITER).map((p) => `peak:${p}`),
];

/** Passes over a bandwidth set per call, so that one call streams ~16 MiB whatever the set's size. */
export function bandwidthReps(set: BandwidthSet): number {
  return Math.max(1, Math.round((16 << 20) / BANDWIDTH_SETS[set]));
}

export interface RunRequest {
  op: string;
  n: number;
}

export interface RunResponse {
  op: string;
  n: number;
  /** workerd's performance.now() across the n calls. */
  ms: number;
  /** The two performance.now() readings: whether workerd's clock moved during the loop, and its grain. */
  clock: { first: number; last: number };
  sink: number;
}
