// Mat-vec micro-benchmark, runtime-free so that Node (bench/matvec.ts) and a Worker can both drive it.
// Throughput counts dense-equivalent MACs (rows·cols) for every variant, so 2:4 shows its speedup directly.
import { quantize24, quantizeInt8, Rng, type StoredTensor } from '@switchyard/shared';
import type { Int8ModeOption, Kernels, WasmMatrix } from '../src/kernels.ts';

export interface BenchOptions {
  shapes?: Array<[number, number]>;
  /** A clock in milliseconds (performance.now where it ticks). */
  now?: () => number;
  /** Minimum time per measurement. */
  minMs?: number;
  /** Measurements per variant; the best is kept (least disturbed by other load). */
  repeats?: number;
  /** Matrices per variant, cycled through, so that weights stream from beyond L2 as in a real step. */
  copies?: number;
}

export interface BenchRow {
  shape: [number, number];
  variant: string;
  /** The kernel build, and for relaxed-simd how its relaxed dot runs here (Kernels.relaxedDot). */
  flavor: string;
  usPerCall: number;
  gmacs: number;
}

export const DEFAULT_SHAPES: Array<[number, number]> = [
  [2048, 896],
  [512, 512],
];

function measure(fn: (i: number) => void, o: Required<BenchOptions>): number {
  let calls = 1;
  for (;;) {
    const t0 = o.now();
    for (let i = 0; i < calls; i++) fn(i);
    if (o.now() - t0 >= o.minMs / 4) break;
    calls *= 2;
  }
  let best = Infinity;
  for (let r = 0; r < o.repeats; r++) {
    const t0 = o.now();
    for (let i = 0; i < calls; i++) fn(i);
    best = Math.min(best, (o.now() - t0) / calls);
  }
  return best * 1000;
}

/** A plain TypeScript int8 mat-vec, the baseline the SIMD kernels are compared with. */
export function tsInt8MatVec(
  t: Extract<StoredTensor, { scheme: 'int8' }>,
  x: Float32Array,
  y: Float32Array,
): void {
  const [rows, cols] = t.shape;
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    const o = r * cols;
    for (let k = 0; k < cols; k++) acc += t.q[o + k] * x[k];
    y[r] = acc * t.scale[r];
  }
}

/** The same over 2:4 weights with positions expanded to column indices (the best case for a scalar loop). */
export function tsSparseMatVec(
  q: Int8Array,
  cols: Uint32Array,
  scale: Float32Array,
  x: Float32Array,
  y: Float32Array,
): void {
  const kept = q.length / scale.length;
  for (let r = 0; r < scale.length; r++) {
    let acc = 0;
    const o = r * kept;
    for (let j = 0; j < kept; j++) acc += q[o + j] * x[cols[o + j]];
    y[r] = acc * scale[r];
  }
}

export function tsF32MatVec(
  w: Float32Array,
  rows: number,
  cols: number,
  x: Float32Array,
  y: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    const o = r * cols;
    for (let k = 0; k < cols; k++) acc += w[o + k] * x[k];
    y[r] = acc;
  }
}

function expandPositions(t: Extract<StoredTensor, { scheme: 'int8-2:4' }>): Uint32Array {
  const [rows, cols] = t.shape;
  const perRow = Math.ceil(cols / 8);
  const out = new Uint32Array((rows * cols) / 2);
  for (let r = 0; r < rows; r++)
    for (let g = 0; g < cols / 4; g++) {
      const nib = (t.idx[r * perRow + (g >> 1)] >> ((g & 1) * 4)) & 15;
      out[r * (cols / 2) + 2 * g] = g * 4 + (nib & 3);
      out[r * (cols / 2) + 2 * g + 1] = g * 4 + (nib >> 2);
    }
  return out;
}

/**
 * Benchmarks each kernel set (one per flavor) and the TypeScript loops. Loads `copies` matrices per variant
 * into each kernel set's memory (they stay there).
 */
export function runMatVecBench(kernelSets: Kernels[], options: BenchOptions = {}): BenchRow[] {
  const o: Required<BenchOptions> = {
    shapes: options.shapes ?? DEFAULT_SHAPES,
    now: options.now ?? (() => performance.now()),
    minMs: options.minMs ?? 200,
    repeats: options.repeats ?? 7,
    copies: options.copies ?? 1,
  };
  const rows: BenchRow[] = [];
  for (const [R, C] of o.shapes) {
    const rng = new Rng(R * 7919 + C);
    const w = new Float32Array(R * C).map(() => rng.normal());
    const x = new Float32Array(C).map(() => rng.normal());
    const t8 = quantizeInt8({ shape: [R, C], data: w });
    const t24 = quantize24({ shape: [R, C], data: w });
    const macs = R * C;
    const add = (variant: string, flavor: string, us: number) =>
      rows.push({ shape: [R, C], variant, flavor, usPerCall: us, gmacs: macs / us / 1000 });

    for (const k of kernelSets) {
      const variants: Array<[string, () => WasmMatrix]> = [];
      const modes: Int8ModeOption[] =
        k.flavor === 'relaxed-simd'
          ? ['auto', 'fast', 'precise', 'relaxed-dot', 'exact']
          : ['fast', 'precise', 'exact'];
      for (const mode of modes)
        variants.push([
          mode === 'auto' ? `int8 auto=${k.autoMode}` : `int8 ${mode}`,
          () => k.loadMatrix(t8, { mode }),
        ]);
      variants.push(['int8 2:4', () => k.loadMatrix(t24)]);
      variants.push(['f32', () => k.loadMatrix({ shape: [R, C], data: w })]);
      const xp = k.allocF32(C, x);
      const yp = k.alloc(R * 4);
      for (const [name, load] of variants) {
        const ms = Array.from({ length: o.copies }, load);
        add(
          name,
          k.relaxedDot ? `${k.flavor} (${k.relaxedDot})` : k.flavor,
          measure((i) => k.raw.matvec(ms[i % ms.length].ptr, xp, yp), o),
        );
      }
    }

    const y = new Float32Array(R);
    const ts8 = Array.from({ length: o.copies }, () => ({ ...t8, q: t8.q.slice() }));
    add(
      'int8',
      'typescript',
      measure((i) => tsInt8MatVec(ts8[i % ts8.length], x, y), o),
    );
    const pos = expandPositions(t24);
    const ts24 = Array.from({ length: o.copies }, () => ({ q: t24.q.slice(), cols: pos.slice() }));
    add(
      'int8 2:4',
      'typescript',
      measure((i) => tsSparseMatVec(ts24[i % ts24.length].q, ts24[i % ts24.length].cols, t24.scale, x, y), o),
    );
    const tsf = Array.from({ length: o.copies }, () => w.slice());
    add(
      'f32',
      'typescript',
      measure((i) => tsF32MatVec(tsf[i % tsf.length], R, C, x, y), o),
    );
  }
  return rows;
}

export function formatBench(rows: BenchRow[]): string {
  const lines = [
    `${'shape'.padEnd(12)} ${'flavor'.padEnd(28)} ${'variant'.padEnd(22)} ${'µs/call'.padStart(9)} ${'GMAC/s'.padStart(9)}`,
  ];
  for (const r of rows)
    lines.push(
      `${`${r.shape[0]}×${r.shape[1]}`.padEnd(12)} ${r.flavor.padEnd(28)} ${r.variant.padEnd(22)} ${r.usPerCall.toFixed(1).padStart(9)} ${r.gmacs.toFixed(2).padStart(9)}`,
    );
  return lines.join('\n');
}
