// What the reliability and security suite shares: the stack on loopback (started with scripts/stack.ts's
// startGpuTier/startEdge, optionally with a proxy in front of each GPU-tier replica), an API client, an SSE
// reader, the golden cases, and the short/full switch (SWITCHYARD_CHAOS=full runs the same tests with
// larger loads and more generated inputs).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import { rendezvousOrder } from '../../edge/src/experts/rendezvous.ts';
import { freePort, prepareEdgeModel, ROOT, startEdge, startGpuTier, type Proc } from '../../scripts/stack.ts';
import type { GoldenFile, GoldenTurn } from '../../shared/src/golden.ts';
import {
  apiKeysVar,
  MODEL_NAME,
  NO_MEMORY,
  sleep,
  tokensOf,
  Api,
  type Json,
  type KeySpec,
  type StreamResult,
} from './client.ts';
import { ReplicaProxy } from './proxy.ts';

export * from './client.ts';
export { ROOT };
export { metricValue } from '../../gpu-backend/test/helpers.ts';

/** SWITCHYARD_CHAOS=full: the long form (npm run test:chaos); anything else: the short form inside npm test. */
export const FULL = process.env.SWITCHYARD_CHAOS === 'full';
export const scaled = <T>(short: T, full: T): T => (FULL ? full : short);

export const GOLDEN_MODEL = join(ROOT, 'shared/golden/tiny-int8.safetensors');
export const golden: GoldenFile = JSON.parse(
  readFileSync(join(ROOT, 'shared/golden/tiny-int8.golden.json'), 'utf8'),
);
export const multiTurn = golden.sessions.find((s) => s.turns.length > 1)!;
export const [turn1, turn2] = multiTurn.turns;

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function until<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A session turn that reproduces a golden turn: greedy, with the routing trace. */
export function turnBody(t: GoldenTurn, stream: boolean): Json {
  return {
    content: t.messages.at(-1)!.content,
    max_tokens: t.max_tokens,
    temperature: 0,
    stream,
    switchyard: { trace: true },
  };
}

/** A stateless completion that reproduces a single-turn golden case. */
export function completionBody(t: GoldenTurn, stream = false): Json {
  return {
    model: MODEL_NAME,
    messages: t.messages,
    max_tokens: t.max_tokens,
    temperature: 0,
    stream,
    switchyard: { trace: true, memory: NO_MEMORY },
  };
}

/** A finished turn, streamed or not, is exactly the golden turn: tokens, texts, finish reason. */
export function expectGoldenTurn(r: StreamResult, t: GoldenTurn, where: string): void {
  expect(r.error, `${where}: ${JSON.stringify(r.error)}`).toBeNull();
  expect(r.broken, where).toBeNull();
  expect(r.done, `${where}: finished`).toBe(true);
  expect(tokensOf(r.steps), `${where}: tokens`).toEqual(t.tokens);
  expect(r.reasoning, `${where}: reasoning`).toBe(t.reasoning_text);
  expect(r.content, `${where}: answer`).toBe(t.answer_text);
  expect(r.finish, `${where}: finish`).toBe(t.finish);
}

/**
 * A session after these golden turns, each applied exactly once: idle, one user and one assistant message
 * per turn with the golden texts, and the totals of exactly these turns.
 */
export function expectSessionAfter(info: Json, turns: readonly GoldenTurn[], where: string): void {
  expect(info.status, `${where}: status`).toBe('idle');
  expect(info.pending_turn, `${where}: no unfinished turn`).toBeUndefined();
  expect(info.turns, `${where}: turns`).toBe(turns.length);
  expect(info.messages, `${where}: transcript`).toEqual(
    turns.flatMap((t) => [
      { role: 'user', content: t.messages.at(-1)!.content },
      { role: 'assistant', content: t.answer_text, reasoning_content: t.reasoning_text },
    ]),
  );
  const completion = turns.reduce((a, t) => a + t.tokens.length, 0);
  const prompt = turns.reduce((a, t) => a + t.prompt_tokens.length, 0);
  expect(info.usage, `${where}: usage`).toEqual({
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
  });
}

// ------------------------------------------------------------------------------------------------ the stack

export interface Replica {
  /** What the edge's shard map names: the proxy, or the process itself. */
  url: string;
  proxy: ReplicaProxy | null;
  gpu: Proc;
}

export interface ChaosStackOptions {
  /** GPU-tier replicas of one shard serving every expert (default 1). */
  replicas?: number;
  /** A ReplicaProxy in front of each replica (default false). */
  proxied?: boolean;
  keys: KeySpec[];
  /** Edge vars over the defaults (RATE_LIMIT_RPM 0, the shard map, the keys, the HMAC secret). */
  vars?: Record<string, string>;
  /** Extra switchyard-gpu flags for every replica. */
  gpuArgs?: string[];
}

/** Flags every replica gets: one intra-op thread, since the suite shares two cores with everything else. */
const GPU_BASE_ARGS = ['--threads', '1'];

export class ChaosStack {
  private constructor(
    public edge: Proc,
    readonly replicas: Replica[],
    readonly secret: string,
    public vars: Record<string, string>,
    readonly persistTo: string,
    readonly port: number,
    private readonly gpuArgs: string[],
  ) {}

  static async start(o: ChaosStackOptions): Promise<ChaosStack> {
    prepareEdgeModel(GOLDEN_MODEL);
    const secret = randomBytes(24).toString('hex');
    const n = o.replicas ?? 1;
    const gpuArgs = [...GPU_BASE_ARGS, ...(o.gpuArgs ?? [])];
    const proxies = o.proxied ? await Promise.all(Array.from({ length: n }, () => ReplicaProxy.start())) : [];
    const started: Proc[] = [];
    const persistTo = mkdtempSync(join(tmpdir(), 'switchyard-chaos-'));
    try {
      // One at a time: two start-ups at once on two shared cores only make both slow.
      for (let i = 0; i < n; i++)
        started.push(await startGpuTier({ model: GOLDEN_MODEL, secret, args: gpuArgs }));
      const replicas: Replica[] = started.map((gpu, i) => {
        const proxy = proxies[i] ?? null;
        if (proxy) proxy.target = gpu.url;
        return { url: proxy ? proxy.url : gpu.url, proxy, gpu };
      });
      const vars = {
        MODEL_NAME,
        EXPERT_SHARDS: JSON.stringify([{ replicas: replicas.map((r) => r.url), experts: '0-3' }]),
        EXPERT_HMAC_SECRET: secret,
        API_KEYS: apiKeysVar(o.keys),
        RATE_LIMIT_RPM: '0',
        ...o.vars,
      };
      const port = await freePort();
      const edge = await startEdge({ port, vars, persistTo });
      return new ChaosStack(edge, replicas, secret, vars, persistTo, port, gpuArgs);
    } catch (e) {
      await Promise.all(started.map((p) => p.kill()));
      await Promise.all(proxies.map((p) => p.close()));
      rmSync(persistTo, { recursive: true, force: true });
      throw e;
    }
  }

  get url(): string {
    return this.edge.url;
  }

  api(key?: string): Api {
    return new Api(this.url, key);
  }

  /** The index of the replica a session's steps go to first (rendezvous order over the shard map). */
  primaryOf(sessionId: string): number {
    const urls = this.replicas.map((r) => r.url);
    return urls.indexOf(rendezvousOrder(urls, sessionId)[0]);
  }

  proxy(i: number): ReplicaProxy {
    const p = this.replicas[i].proxy;
    if (!p) throw new Error('this stack was started without proxies');
    return p;
  }

  /** SIGKILL replica i's process: a crash. The proxy stays, so the edge now meets a dead host. */
  async killReplica(i: number): Promise<void> {
    await this.replicas[i].gpu.kill();
  }

  /**
   * A fresh process for replica i (the old one is stopped if it still runs), behind the same proxy, so the
   * edge's shard map is unchanged. `args` replace the stack's extra flags for this process.
   */
  async replaceReplica(i: number, args?: string[]): Promise<Proc> {
    const proxy = this.proxy(i);
    const old = this.replicas[i].gpu;
    const gpu = await startGpuTier({
      model: GOLDEN_MODEL,
      secret: this.secret,
      args: args ? [...GPU_BASE_ARGS, ...args] : this.gpuArgs,
    });
    proxy.target = gpu.url;
    this.replicas[i].gpu = gpu;
    await old.stop(5000);
    return gpu;
  }

  /** SIGKILL the edge (wrangler and its workerd): the session actors die mid-whatever. */
  async killEdge(): Promise<void> {
    await this.edge.kill();
  }

  /** Starts the edge again on the same port and storage; `vars` replace its vars from now on. */
  async startEdgeAgain(vars?: Record<string, string>): Promise<Proc> {
    if (vars) this.vars = vars;
    this.edge = await startEdge({ port: this.port, vars: this.vars, persistTo: this.persistTo });
    return this.edge;
  }

  /** Stops the edge (SIGTERM) and starts it again on the same storage. */
  async restartEdge(vars?: Record<string, string>): Promise<Proc> {
    await this.edge.stop(5000);
    return this.startEdgeAgain(vars);
  }

  /** Times wrangler dev reloaded the Worker because a file it watches changed (not the product's doing). */
  reloads(): number {
    return this.edge.output().split('Reloading local server').length - 1;
  }

  async stop(): Promise<void> {
    await Promise.all([this.edge.stop(5000), ...this.replicas.map((r) => r.gpu.stop(5000))]);
    await Promise.all(this.replicas.map((r) => r.proxy?.close()));
    rmSync(this.persistTo, { recursive: true, force: true });
  }
}

/**
 * wrangler dev rebuilds and restarts the Worker when a file of its bundle changes (another developer's build
 * of wasm/, an edit under edge/ or shared/), failing requests in flight with "Your worker restarted
 * mid-request". Says so next to any test during which that happened, so such a failure is read for what it is.
 */
export function reportReloads(stack: () => ChaosStack | undefined): void {
  let before = 0;
  beforeEach(() => {
    before = stack()?.reloads() ?? 0;
  });
  afterEach((ctx) => {
    const n = (stack()?.reloads() ?? 0) - before;
    if (n > 0)
      console.warn(
        `${ctx.task.name}: wrangler dev reloaded the Worker ${n} time(s) during this test because a watched file changed; ` +
          'a failure here may come from that, not from the code under test',
      );
  });
}
