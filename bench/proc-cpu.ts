// Where a benchmark's cores went: CPU seconds per process tree and per thread, read from /proc. Linux only
// (elsewhere every reading is undefined and the benchmark leaves the figures out). The e2e benchmark uses it
// to show, per wave, how busy the GPU tier's ORT worker was and what workerd spent per step.
import { readdirSync, readFileSync } from 'node:fs';

/** Kernel clock ticks per second: USER_HZ, 100 on every Linux Node runs on (not readable from Node). */
const TICKS = 100;

export interface ThreadCpu {
  pid: number;
  tid: number;
  /** /proc's comm: "node", "workerd", a worker thread's name. */
  name: string;
  /** User + system time. */
  seconds: number;
}

/** A snapshot of every thread of a set of processes. */
export type CpuSnapshot = Map<number, ThreadCpu>;

/** Fields after the command (which may hold spaces and parentheses), from /proc/.../stat. */
function statFields(text: string): { name: string; rest: string[] } {
  const close = text.lastIndexOf(')');
  return { name: text.slice(text.indexOf('(') + 1, close), rest: text.slice(close + 2).split(' ') };
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined; // the process or thread is gone
  }
}

/** `root` and, with `descendants`, every process below it (wrangler's workerd is its child). */
export function processTree(root: number, descendants = true): number[] {
  if (!descendants) return [root];
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const stat = readText(`/proc/${d}/stat`);
    if (!stat) continue;
    const ppid = Number(statFields(stat).rest[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop()!;
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Every thread's CPU time so far; undefined where /proc is not there. */
export function snapshot(pids: readonly number[]): CpuSnapshot | undefined {
  if (process.platform !== 'linux') return undefined;
  const out: CpuSnapshot = new Map();
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const t of tids) {
      const stat = readText(`/proc/${pid}/task/${t}/stat`);
      if (!stat) continue;
      const { name, rest } = statFields(stat);
      // utime and stime are stat's fields 14 and 15; rest starts at field 3.
      const ticks = Number(rest[11]) + Number(rest[12]);
      out.set(Number(t), { pid, tid: Number(t), name, seconds: ticks / TICKS });
    }
  }
  return out;
}

export interface CpuUse {
  /** CPU seconds of all the threads between the two snapshots. */
  seconds: number;
  /** The busiest thread's CPU seconds over the interval (the ORT worker, for the GPU tier). */
  busiestThread: { name: string; seconds: number };
  /** The processes' main threads (a Node process's event loop: HTTP, batching, the edge's turn loop). */
  mainThreads: number;
}

/** What the threads spent between two snapshots; threads that started in between count from zero. */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): CpuUse {
  let seconds = 0;
  let busiest = { name: '', seconds: 0 };
  let mainThreads = 0;
  for (const [tid, t] of after) {
    const d = t.seconds - (before.get(tid)?.seconds ?? 0);
    seconds += d;
    if (tid === t.pid) mainThreads += d;
    if (d > busiest.seconds) busiest = { name: t.name, seconds: d };
  }
  return { seconds, busiestThread: busiest, mainThreads };
}
