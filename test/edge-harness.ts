// Starts the real tiers for the cross-tier tests: switchyard-gpu processes and the edge Worker in wrangler
// dev, on loopback, each stopped by its own process id.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GoldenFile } from '../shared/src/golden.ts';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const GOLDEN_MODEL = join(ROOT, 'shared/golden/tiny-int8.safetensors');
export const golden: GoldenFile = JSON.parse(
  readFileSync(join(ROOT, 'shared/golden/tiny-int8.golden.json'), 'utf8'),
);
export const MODEL_NAME = 'switchyard-tiny';

export const sha256Hex = (s: string) => createHash('sha256').update(s).digest('hex');

export interface Proc {
  url: string;
  pid: number;
  output: () => string;
  /** SIGKILL: the process dies mid-whatever, as a crashed server would. */
  kill(): Promise<void>;
  /** SIGTERM, then SIGKILL after a grace period. */
  stop(): Promise<void>;
}

function exited(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) resolve();
    else p.once('exit', () => resolve());
  });
}

function wrap(p: ChildProcess, url: string, out: () => string, group: boolean): Proc {
  const signal = (s: NodeJS.Signals) => {
    try {
      // wrangler dev runs workerd as its child: signal the group this test started.
      if (group) process.kill(-p.pid!, s);
      else p.kill(s);
    } catch {
      // already gone
    }
  };
  return {
    url,
    pid: p.pid!,
    output: out,
    kill: async () => {
      signal('SIGKILL');
      await exited(p);
    },
    stop: async () => {
      signal('SIGTERM');
      const t = setTimeout(() => signal('SIGKILL'), 5000);
      await exited(p);
      clearTimeout(t);
    },
  };
}

/** `switchyard-gpu --model <golden> --port 0`, resolved with its URL once it prints its ready line. */
export function startGpuTier(args: string[] = []): Promise<Proc> {
  const p = spawn(
    process.execPath,
    [
      join(ROOT, 'gpu-backend/bin/switchyard-gpu.mjs'),
      '--model',
      GOLDEN_MODEL,
      '--port',
      '0',
      '--workers',
      '1',
      '--threads',
      '1',
      ...args,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`switchyard-gpu did not print its ready line within 60 s; output:\n${out}`));
    }, 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /switchyard-gpu listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(wrap(p, m[1], () => out, false));
      }
    };
    p.stdout!.on('data', onData);
    p.stderr!.on('data', onData);
    p.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`switchyard-gpu exited with ${code} before it was ready; output:\n${out}`));
    });
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** The edge Worker in `wrangler dev` with these vars, resolved once GET /health answers 200. */
export async function startEdge(vars: Record<string, string>): Promise<Proc & { cleanup(): void }> {
  const port = await freePort();
  const persist = mkdtempSync(join(tmpdir(), 'switchyard-edge-'));
  const args = [
    join(ROOT, 'node_modules/wrangler/bin/wrangler.js'),
    'dev',
    '--config',
    join(ROOT, 'wrangler.toml'),
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--persist-to',
    persist,
    '--show-interactive-dev-session=false',
    ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
  ];
  const p = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' },
  });
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const proc = wrap(p, url, () => out, true);
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (p.exitCode !== null) throw new Error(`wrangler dev exited with ${p.exitCode}; output:\n${out}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await proc.kill();
      throw new Error(`wrangler dev did not answer /health within 90 s; output:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { ...proc, cleanup: () => rmSync(persist, { recursive: true, force: true }) };
}
