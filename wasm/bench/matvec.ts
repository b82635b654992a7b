// Node entry of the mat-vec micro-benchmark:
//   npx tsx wasm/bench/matvec.ts [--copies N] [--clock wall|cpu] [--json out.json]
// --copies 4 cycles through four matrices per variant so that the weights stream from beyond L2.
// --clock cpu times by this thread's CPU time instead of the wall clock: on a box shared with other work,
// time spent descheduled then does not count (cache misses caused by the other work still do).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { enableRelaxedSimd, loadKernels } from '../src/node-loader.ts';
import { formatBench, runMatVecBench } from './matvec-core.ts';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

const sets = [await loadKernels({ flavor: 'simd' })];
if (enableRelaxedSimd()) sets.push(await loadKernels({ flavor: 'relaxed-simd' }));
const clock = arg('--clock') ?? 'wall';
if (clock !== 'wall' && clock !== 'cpu') throw new Error(`--clock: expected wall or cpu, found ${clock}`);
// This thread's run time in ns where Linux shows it (/proc/thread-self/schedstat), else getrusage's µs.
const schedstat = existsSync('/proc/thread-self/schedstat');
const cpuMs = () => {
  if (schedstat) return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const rows = runMatVecBench(sets, {
  copies: Number(arg('--copies') ?? 1),
  now: clock === 'cpu' ? cpuMs : undefined,
});
console.log(`node ${process.version}, copies ${arg('--copies') ?? 1}, clock ${clock}`);
console.log(formatBench(rows));
const out = arg('--json');
if (out) writeFileSync(out, JSON.stringify({ node: process.version, clock, rows }, null, 2) + '\n');
