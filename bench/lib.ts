// What every benchmark shares: a readable table on stdout, JSON under bench/results/, and robust statistics.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { initRandom, writeWeights, type ModelConfig } from '@switchyard/shared';

export const RESULTS_DIR = new URL('./results/', import.meta.url).pathname;

export function printTable(title: string, columns: string[], rows: (string | number)[][]): void {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => String(c ?? '').padEnd(widths[i])).join(' | ') + ' |';
  console.log(`\n${title}\n${line(columns)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of cells) console.log(line(r));
}

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a >= 100) return n.toFixed(0);
  if (a >= 10) return n.toFixed(1);
  if (a >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

export function writeResult(name: string, result: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}.json`);
  writeFileSync(
    path,
    JSON.stringify({ name, date: new Date().toISOString(), machine: machine(), result }, null, 2) + '\n',
  );
  return path;
}

function machine() {
  const cpus = os.cpus();
  return {
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    // Where a run was made on a borrowed machine (a GPU box, say), the caller names it.
    ...(process.env.SWITCHYARD_BENCH_MACHINE ? { label: process.env.SWITCHYARD_BENCH_MACHINE } : {}),
  };
}

export function quantile(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))];
}

/** Median of `reps` timed runs of fn after `warm` untimed ones, in milliseconds. */
export async function timeMedian(fn: () => unknown, reps = 7, warm = 2): Promise<number> {
  for (let i = 0; i < warm; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return quantile(ts, 0.5);
}

/** A seeded random expert shard: `experts` and what every expert shares, the bytes of its weights file. */
export function seededExpertShard(config: ModelConfig, seed: number, experts: number[]): Uint8Array {
  const params = initRandom(
    config,
    seed,
    (s) => s.tier === 'expert-shared' || (s.tier === 'expert' && experts.includes(s.expert!)),
  );
  const bytes = writeWeights(config, params, { shard: { kind: 'experts', experts } });
  params.clear();
  return bytes;
}

export const BENCH_PROVIDERS = ['cpu', 'webgpu', 'cuda'] as const;
export type BenchProvider = (typeof BENCH_PROVIDERS)[number];

/** A benchmark's --provider flag (default cpu); exits with status 2 and the valid values on anything else. */
export function benchProvider(bench: string, text: string | undefined): BenchProvider {
  const p = text ?? 'cpu';
  if ((BENCH_PROVIDERS as readonly string[]).includes(p)) return p as BenchProvider;
  console.error(`${bench}: --provider: expected one of ${BENCH_PROVIDERS.join(', ')}, found "${p}"`);
  process.exit(2);
}
