// Brings the whole stack up on loopback the one way `npm start`, `npm run dev`, the end-to-end tests and
// the end-to-end benchmark all use: the GPU tier (switchyard-gpu on CPU) and the edge Worker (wrangler dev).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readWeights, splitWeights } from '../shared/src/weights/index.ts';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const EDGE_MODEL_FILE = join(ROOT, 'edge/model/edge.safetensors');

/** The bundled default: the trained demo reasoner when it is in the tree, else the seeded tiny model. */
export function defaultModel(): string {
  const trained = join(ROOT, 'train/models/reasoner.int8.safetensors');
  return existsSync(trained) ? trained : join(ROOT, 'shared/golden/tiny-int8.safetensors');
}

export interface Proc {
  name: string;
  url: string;
  child: ChildProcess;
  output(): string;
  /** SIGTERM (to the whole group for wrangler, whose workerd is its child), SIGKILL after a grace period. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL at once, as a crash would. */
  kill(): Promise<void>;
}

const exited = (p: ChildProcess) =>
  new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r())));

function proc(name: string, child: ChildProcess, url: string, out: () => string): Proc {
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, s); // every child is started detached, as its own process group
    } catch {
      // already gone
    }
  };
  return {
    name,
    url,
    child,
    output: out,
    async stop(graceMs = 10_000) {
      signal('SIGTERM');
      const t = setTimeout(() => signal('SIGKILL'), graceMs);
      await exited(child);
      clearTimeout(t);
    },
    async kill() {
      signal('SIGKILL');
      await exited(child);
    },
  };
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

// Process groups this process started and that still run. Each child is detached (its own group, so that a
// Ctrl-C reaches start.ts alone and it can stop the tiers in order); without this, a caller that crashes or
// exits without stop() would leave them running, wrangler's workerd children orphaned and busy.
const running = new Set<number>();
/** Temporary folders (secrets, R2 staging, edge storage) to remove if the caller exits without stop(). */
const scratch = new Set<string>();
process.once('exit', () => {
  for (const pgid of running)
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratch.add(dir);
  return dir;
}

function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  scratch.delete(dir);
}

function launch(name: string, args: string[], env: NodeJS.ProcessEnv = {}, echo = false) {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, ...env },
  });
  if (child.pid !== undefined) {
    const pgid = child.pid;
    running.add(pgid);
    child.once('exit', () => {
      // Forgotten only once the whole group is gone: wrangler dying can leave its workerd behind.
      try {
        process.kill(-pgid, 0);
      } catch {
        running.delete(pgid);
      }
    });
  }
  let out = '';
  const take = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
    if (echo) process.stderr.write(d.toString().replace(/^(?=.)/gm, `[${name}] `));
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  return { child, output: () => out };
}

export interface GpuTierOptions {
  model: string;
  port?: number;
  secret?: string;
  args?: string[];
  /** Restart on source changes (npm run dev). */
  watch?: boolean;
  echo?: boolean;
}

/** switchyard-gpu on CPU, resolved once it prints its ready line. */
export async function startGpuTier(o: GpuTierOptions): Promise<Proc> {
  const flags = [
    '--model',
    o.model,
    '--port',
    String(o.port ?? 0),
    '--provider',
    'cpu',
    ...(o.secret ? [] : ['--insecure-no-auth']),
    ...(o.args ?? []),
  ];
  // The bin, not src/main.ts: main.ts only exports main(), so watching it ran nothing and `npm run dev`
  // waited 90 s for a ready line that never came. tsx watch follows the bin's imports into src/.
  const bin = join(ROOT, 'gpu-backend/bin/switchyard-gpu.mjs');
  const args = o.watch
    ? [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), 'watch', '--clear-screen=false', bin, ...flags]
    : [bin, ...flags];
  // The secret goes in the environment, not argv, where `ps` would show it to every user of the machine.
  const env = o.secret ? { SWITCHYARD_GPU_SECRET: o.secret } : {};
  const { child, output } = launch('gpu', args, env, o.echo);
  const p = proc('gpu', child, '', output);
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => {
      // A process that never got ready must not outlive the caller that gives up on it.
      void p.kill();
      rej(new Error(`switchyard-gpu printed no ready line within 90 s:\n${output()}`));
    }, 90_000);
    const check = () => {
      const m = /switchyard-gpu listening on (http:\/\/\S+)/.exec(output());
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`switchyard-gpu exited (${code}) before it was ready:\n${output()}`));
    });
  });
  return { ...p, url };
}

export interface EdgeOptions {
  port?: number;
  vars: Record<string, string>;
  /** Durable Object storage; kept across restarts of the edge when the caller passes the same folder. */
  persistTo: string;
  /** The wrangler config (default: the repository's wrangler.toml). */
  config?: string;
  /** Rebuild the Worker on source changes (npm run dev). */
  watch?: boolean;
  echo?: boolean;
}

/** Vars that are secrets in a deployment: they reach wrangler dev through an env file, never argv. */
export const SECRET_VARS = ['EXPERT_HMAC_SECRET', 'API_KEYS'];

/** KEY='value' lines; single quotes keep JSON's double quotes literal in wrangler's .env parser. */
function envFileText(vars: Record<string, string>): string {
  return Object.entries(vars)
    .map(([k, v]) => {
      if (v.includes("'") || v.includes('\n'))
        throw new Error(
          `${k}: expected a value without single quotes or newlines for the env file, found ${JSON.stringify(v)}`,
        );
      return `${k}='${v}'\n`;
    })
    .join('');
}

/** The edge Worker in wrangler dev, resolved once GET /health answers 200. */
export async function startEdge(o: EdgeOptions): Promise<Proc> {
  const port = o.port ?? (await freePort());
  const secrets = Object.fromEntries(Object.entries(o.vars).filter(([k]) => SECRET_VARS.includes(k)));
  const plain = Object.entries(o.vars).filter(([k]) => !SECRET_VARS.includes(k));
  // A private folder per start: the file is read once at start-up and removed when the edge stops.
  const secretDir = tempDir('switchyard-secrets-');
  const envFile = join(secretDir, 'edge.env');
  writeFileSync(envFile, envFileText(secrets), { mode: 0o600 });
  // wrangler's dev server without its inspector proxy (scripts/edge-dev.mjs says why).
  const args = [
    join(ROOT, 'scripts/edge-dev.mjs'),
    '--config',
    o.config ?? join(ROOT, 'wrangler.toml'),
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--persist-to',
    o.persistTo,
    '--env-file',
    envFile,
    ...(o.watch ? ['--watch'] : []),
    ...plain.flatMap(([k, v]) => ['--var', `${k}:${v}`]),
  ];
  // No fetch of Request.cf from workers.cloudflare.com: it fails offline, prints a stack trace, and wrangler
  // then carries on with a placeholder anyway.
  const env = { WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1', CLOUDFLARE_CF_FETCH_ENABLED: 'false' };
  const { child, output } = launch('edge', args, env, o.echo);
  child.once('exit', () => removeDir(secretDir));
  const url = `http://127.0.0.1:${port}`;
  const p = proc('edge', child, url, output);
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited (${child.exitCode}):\n${output()}`);
    try {
      if ((await fetch(`${url}/health`)).status === 200) return p;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await p.kill();
      throw new Error(`wrangler dev did not answer /health within 120 s:\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Writes the edge part of `model` where the Worker bundles it (edge/model/edge.safetensors), if it differs. */
export function prepareEdgeModel(model: string): void {
  const full = readWeights(new Uint8Array(readFileSync(model)));
  const { edge } = splitWeights(full, 1);
  if (existsSync(EDGE_MODEL_FILE) && Buffer.compare(readFileSync(EDGE_MODEL_FILE), edge) === 0) return;
  writeFileSync(EDGE_MODEL_FILE, edge);
}

/**
 * Whether the Worker's bundled edge file (edge/model/edge.safetensors) is the edge part of `model`. When it
 * is not, startStack serves the edge weights from a local R2 bucket instead of overwriting that file: it is
 * tracked, and the edge's own tests pin it to the golden model.
 */
export function bundledEdgeMatches(model: string): { matches: boolean; edge: Uint8Array } {
  const { edge } = splitWeights(readWeights(new Uint8Array(readFileSync(model))), 1);
  const matches = existsSync(EDGE_MODEL_FILE) && Buffer.compare(readFileSync(EDGE_MODEL_FILE), edge) === 0;
  return { matches, edge };
}

export const WEIGHTS_BUCKET = 'switchyard-weights';

/**
 * A copy of wrangler.toml in `dir` that also binds the R2 bucket WEIGHTS, with the edge weights put into its
 * local storage under `persistTo` (as `wrangler r2 object put --local` does for a developer). Returns the
 * config path and the object key for WEIGHTS_R2_KEY.
 */
export async function prepareR2EdgeWeights(
  edge: Uint8Array,
  dir: string,
  persistTo: string,
): Promise<{ config: string; key: string }> {
  let text = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');
  // Paths in a wrangler config are relative to the config file; this one lives elsewhere.
  text = text.replace(/^main = "(.*)"$/m, (_, main: string) => `main = ${JSON.stringify(join(ROOT, main))}`);
  if (!/^binding = "WEIGHTS"$/m.test(text))
    text += `\n[[r2_buckets]]\nbinding = "WEIGHTS"\nbucket_name = "${WEIGHTS_BUCKET}"\n`;
  const config = join(dir, 'wrangler.toml');
  writeFileSync(config, text);
  const key = `edge-${createHash('sha256').update(edge).digest('hex').slice(0, 16)}.safetensors`;
  const file = join(dir, key);
  writeFileSync(file, edge);
  const args = [
    join(ROOT, 'node_modules/wrangler/bin/wrangler.js'),
    'r2',
    'object',
    'put',
    `${WEIGHTS_BUCKET}/${key}`,
    '--file',
    file,
    '--local',
    '--persist-to',
    persistTo,
    '--config',
    config,
  ];
  const { child, output } = launch('r2', args, { WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' });
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  if (code !== 0)
    throw new Error(`wrangler r2 object put: expected exit status 0, found ${code}:\n${output()}`);
  return { config, key };
}

export interface StackOptions {
  model?: string;
  /** The model id clients ask for (default: switchyard-reasoner for the trained model, else switchyard-tiny). */
  modelName?: string;
  edgePort?: number;
  gpuPort?: number;
  /** Extra switchyard-gpu flags (e.g. --workers, --threads). */
  gpuArgs?: string[];
  /** One API key for local use; printed by npm start. */
  apiKey?: string;
  persistTo?: string;
  watch?: boolean;
  echo?: boolean;
  extraVars?: Record<string, string>;
}

export interface Stack {
  edge: Proc;
  /** Replace it (after stopping the old one) to bring the GPU tier back: stop() stops whatever is here. */
  gpu: Proc;
  model: string;
  modelName: string;
  apiKey: string;
  persistTo: string;
  secret: string;
  vars: Record<string, string>;
  /** "bundled", or "r2:<key>" when the model's edge part is not the bundled file. */
  edgeWeights: string;
  /** Restarts the edge process on the same storage (sessions must survive it). */
  restartEdge(): Promise<Proc>;
  stop(): Promise<void>;
}

export const LOCAL_API_KEY = 'sk-switchyard-local';

export async function startStack(o: StackOptions = {}): Promise<Stack> {
  const model = resolve(o.model ?? defaultModel());
  const { matches, edge: edgeBytes } = bundledEdgeMatches(model);
  // A fresh HMAC secret per run: the tiers authenticate each other even locally, and nothing is left to leak.
  const secret = randomBytes(24).toString('hex');
  const apiKey = o.apiKey ?? LOCAL_API_KEY;
  const persistTo = o.persistTo ?? tempDir('switchyard-edge-');
  const staging = tempDir('switchyard-stack-');
  const cleanup = () => {
    removeDir(staging);
    if (!o.persistTo) removeDir(persistTo);
  };
  const modelName = o.modelName ?? (model.includes('reasoner') ? 'switchyard-reasoner' : 'switchyard-tiny');
  let config: string | undefined;
  const weightVars: Record<string, string> = {};
  let edgeWeights = 'bundled';
  let gpu: Proc;
  try {
    if (!matches) {
      const r2 = await prepareR2EdgeWeights(edgeBytes, staging, persistTo);
      config = r2.config;
      weightVars.WEIGHTS_R2_KEY = r2.key;
      edgeWeights = `r2:${r2.key}`;
    }
    gpu = await startGpuTier({
      model,
      port: o.gpuPort,
      secret,
      args: o.gpuArgs,
      watch: o.watch,
      echo: o.echo,
    });
  } catch (e) {
    cleanup();
    throw e;
  }
  const vars = {
    MODEL_NAME: modelName,
    EXPERT_SHARDS: JSON.stringify([
      {
        url: gpu.url,
        experts: `0-${readWeights(new Uint8Array(readFileSync(model))).config.experts.count - 1}`,
      },
    ]),
    EXPERT_HMAC_SECRET: secret,
    API_KEYS: JSON.stringify([
      { sha256: createHash('sha256').update(apiKey).digest('hex'), tenant: 'local' },
    ]),
    ...weightVars,
    ...o.extraVars,
  };
  let edge: Proc;
  try {
    edge = await startEdge({ port: o.edgePort, vars, persistTo, config, watch: o.watch, echo: o.echo });
  } catch (e) {
    await gpu.stop();
    cleanup();
    throw e;
  }
  const stack: Stack = {
    edge,
    gpu,
    model,
    modelName,
    apiKey,
    persistTo,
    secret,
    vars,
    edgeWeights,
    async restartEdge() {
      const port = Number(new URL(stack.edge.url).port);
      await stack.edge.stop();
      stack.edge = await startEdge({ port, vars, persistTo, config, watch: o.watch, echo: o.echo });
      return stack.edge;
    },
    async stop() {
      await Promise.all([stack.edge.stop(), stack.gpu.stop()]);
      cleanup();
    },
  };
  return stack;
}
