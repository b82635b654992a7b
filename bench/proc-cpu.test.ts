import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { cpuBetween, processTree, snapshot, type CpuSnapshot } from './proc-cpu.ts';

const thread = (tid: number, name: string, seconds: number) =>
  [tid, { pid: 10, tid, name, seconds }] as const;

describe('cpuBetween', () => {
  it('sums the threads’ differences, counts a new thread from zero, names the busiest, and the main thread’s', () => {
    const before: CpuSnapshot = new Map([thread(10, 'node', 1.5), thread(11, 'worker', 2)]);
    const after: CpuSnapshot = new Map([
      thread(10, 'node', 1.75),
      thread(11, 'worker', 3),
      thread(12, 'late', 0.5),
    ]);
    const use = cpuBetween(before, after);
    expect(use.seconds).toBeCloseTo(0.25 + 1 + 0.5, 9);
    expect(use.busiestThread).toEqual({ name: 'worker', seconds: 1 });
    expect(use.mainThreads).toBeCloseTo(0.25, 9); // tid 10 is pid 10's main thread
  });
});

describe.runIf(process.platform === 'linux')('from /proc', () => {
  let child: ChildProcess | undefined;
  afterEach(() => child?.kill('SIGKILL'));

  it('finds a child’s own child, and the CPU the grandchild burns', async () => {
    // The grandchild spins until it has used 0.4 s of CPU, then reports and sleeps.
    const spin =
      "while (process.cpuUsage().user < 400000); console.log('spun'); setTimeout(() => {}, 60000);";
    const parent = `const c = require('node:child_process').spawn(process.execPath, ['-e', ${JSON.stringify(spin)}], { stdio: 'inherit' }); console.log('pid ' + c.pid); setTimeout(() => {}, 60000);`;
    child = spawn(process.execPath, ['-e', parent], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const before = snapshot(processTree(child.pid!))!;
    while (!out.includes('spun')) await once(child.stdout!, 'data');
    const grandchild = Number(/pid (\d+)/.exec(out)![1]);
    const tree = processTree(child.pid!);
    expect(tree).toEqual(expect.arrayContaining([child.pid, grandchild]));
    expect(processTree(child.pid!, false)).toEqual([child.pid]);
    const use = cpuBetween(before, snapshot(tree)!);
    expect(use.seconds).toBeGreaterThanOrEqual(0.35);
    expect(use.busiestThread.seconds).toBeGreaterThanOrEqual(0.35);
    expect(use.busiestThread.name).toBe('node');
    // A spinning Node process spins on its main thread.
    expect(use.mainThreads).toBeGreaterThanOrEqual(0.35);
  });
});
