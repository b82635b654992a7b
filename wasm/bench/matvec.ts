// Node entry of the mat-vec micro-benchmark: npx tsx wasm/bench/matvec.ts [--copies N] [--json out.json]
// --copies 4 cycles through four matrices per variant so that the weights stream from beyond L2.
import { writeFileSync } from 'node:fs';
import { enableRelaxedSimd, loadKernels } from '../src/node-loader.ts';
import { formatBench, runMatVecBench } from './matvec-core.ts';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

const sets = [await loadKernels({ flavor: 'simd' })];
if (enableRelaxedSimd()) sets.push(await loadKernels({ flavor: 'relaxed-simd' }));
const rows = runMatVecBench(sets, { copies: Number(arg('--copies') ?? 1) });
console.log(`node ${process.version}, copies ${arg('--copies') ?? 1}`);
console.log(formatBench(rows));
const out = arg('--json');
if (out) writeFileSync(out, JSON.stringify({ node: process.version, rows }, null, 2) + '\n');
