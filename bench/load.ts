// The long load run (issue 7), bounded and on loopback only, against the whole stack started the one way
// (scripts/stack.ts) on the tiny golden model:
//   1. under capacity: N concurrent multi-turn conversations (sessions API, streamed and not, seeded sampling,
//      long-term memory on) for a fixed time; afterwards every session is read back and compared with what
//      its client was told: a session whose transcript, turn count or totals differ is a lost state;
//   2. past capacity, at once: an API key hammered far past its rate limit (the edge must answer 429 with
//      Retry-After, and keep serving another key meanwhile), and a GPU-tier process with a small
//      --queue-limit hammered with step requests (429 Overloaded with Retry-After, queue bounded);
//   3. recovery: once the load stops and Retry-After has passed, all of it serves again.
// `npx tsx bench/load.ts [--sessions 64] [--seconds 300]` or `npm run bench -- load`; the chaos suite runs it
// short (test/chaos/load.test.ts). Figures go to bench/results/load.json.
import { randomBytes } from 'node:crypto';
import { loadavg, availableParallelism } from 'node:os';
import { join } from 'node:path';
import { TierHttp } from '../gpu-backend/src/client.ts';
import { ROOT, startGpuTier, startStack, type Proc, type Stack } from '../scripts/stack.ts';
import { promptDigest } from '../shared/src/digest.ts';
import { decodeFrame, encodeStepRequest, WireErrorCode } from '../shared/src/protocol/index.ts';
import {
  Api,
  apiKeysVar,
  MODEL_NAME,
  NO_MEMORY,
  readTurn,
  sleep,
  type Json,
  type StreamResult,
} from '../test/chaos/client.ts';
import { printTable, quantile, writeResult } from './lib.ts';

export interface LoadOptions {
  /** Concurrent conversations under capacity. */
  sessions: number;
  durationMs: number;
  /** Turns per conversation; then the client starts a fresh session. */
  turns: number;
  maxTokens: number;
  /** How long the past-capacity phase lasts. */
  overloadMs: number;
  /** Concurrent clients against each overloaded target. */
  overloadClients: number;
  /** The hammered API key's limit. */
  rateLimit: { rpm: number; burst: number };
  /** --queue-limit (expert rows) of the GPU-tier process that is driven past capacity. */
  gpuQueueLimit: number;
  /** Write bench/results/load.json. */
  write: boolean;
  log: (line: string) => void;
}

export const FULL_LOAD: LoadOptions = {
  sessions: 64,
  durationMs: 300_000,
  turns: 4,
  maxTokens: 24,
  overloadMs: 20_000,
  overloadClients: 32,
  rateLimit: { rpm: 120, burst: 10 },
  gpuQueueLimit: 8,
  write: true,
  log: (line) => console.log(line),
};

export interface Latency {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface LoadReport {
  options: Omit<LoadOptions, 'log'>;
  machine: { cores: number; loadBefore: number[]; loadAfter: number[] };
  underCapacity: {
    seconds: number;
    conversations: number;
    turns: number;
    completionTokens: number;
    turnsPerSecond: number;
    tokensPerSecond: number;
    /** Whole-turn latency (request sent to last byte), ms. */
    turnLatencyMs: Latency;
    /** Streamed turns: request sent to the first reasoning or answer text, ms. */
    firstTextMs: Latency;
    statuses: Record<string, number>;
    errors5xx: number;
    /** Turns that failed and were finished with POST …/resume. */
    resumed: number;
    sessionsVerified: number;
    lostSessions: number;
    lost: string[];
  };
  overload: {
    seconds: number;
    edgeRateLimit: {
      requests: number;
      ok: number;
      rateLimited: number;
      retryAfterMissing: number;
      errors5xx: number;
      other: number;
      /** What the limit allows in this time: burst + rpm × minutes. */
      allowed: number;
      okLatencyMs: Latency;
      refusedLatencyMs: Latency;
      /** Another key's turns during the overload. */
      bystander: { turns: number; ok: number; latencyMs: Latency };
    };
    gpuBackpressure: {
      requests: number;
      ok: number;
      overloaded: number;
      retryAfterMissing: number;
      errors5xx: number;
      other: number;
      maxQueueDepth: number;
      okLatencyMs: Latency;
      refusedLatencyMs: Latency;
    };
  };
  recovery: { edgeRateLimited: boolean; gpuTier: boolean; sessions: boolean; afterMs: number };
  /** Times wrangler dev reloaded the Worker during the run because a watched file changed. */
  workerReloads: number;
}

const MAIN_KEY = `sk-load-${randomBytes(6).toString('hex')}`;
const LIMITED_KEY = `sk-load-limited-${randomBytes(6).toString('hex')}`;
const GOLDEN_MODEL = join(ROOT, 'shared/golden/tiny-int8.safetensors');

function latency(xs: number[]): Latency {
  const r = (v: number) => Math.round(v * 10) / 10;
  return {
    count: xs.length,
    p50: r(quantile(xs, 0.5)),
    p90: r(quantile(xs, 0.9)),
    p99: r(quantile(xs, 0.99)),
    max: r(xs.length ? Math.max(...xs) : NaN),
  };
}

const count = (m: Record<string, number>, k: string | number) => (m[String(k)] = (m[String(k)] ?? 0) + 1);

/**
 * What an overload phase counts: statuses, latencies of answered and refused (429) requests, and whether each
 * refusal said when to come back.
 */
class OverloadTally {
  private readonly statuses: Record<string, number> = {};
  private readonly okMs: number[] = [];
  private readonly refusedMs: number[] = [];
  private retryAfterMissing = 0;
  maxRetryAfter = 0;

  /** `answered`: a 200 with the expected body; `wellFormed429`: a 429 whose body is the expected refusal. */
  record(res: Response, ms: number, answered: boolean, wellFormed429 = true): void {
    count(this.statuses, res.status);
    if (res.status === 200 && answered) this.okMs.push(ms);
    if (res.status !== 429) return;
    this.refusedMs.push(ms);
    const ra = Number(res.headers.get('retry-after'));
    if (!(ra >= 1) || !wellFormed429) this.retryAfterMissing++;
    else this.maxRetryAfter = Math.max(this.maxRetryAfter, ra);
  }

  summary() {
    const requests = Object.values(this.statuses).reduce((a, b) => a + b, 0);
    const ok = this.statuses['200'] ?? 0;
    const refused = this.statuses['429'] ?? 0;
    const errors5xx = Object.entries(this.statuses)
      .filter(([k]) => k.startsWith('5'))
      .reduce((a, [, n]) => a + n, 0);
    return {
      requests,
      ok,
      refused,
      retryAfterMissing: this.retryAfterMissing,
      errors5xx,
      other: requests - ok - refused - errors5xx,
      okLatencyMs: latency(this.okMs),
      refusedLatencyMs: latency(this.refusedMs),
    };
  }
}

/** Runs `fn` over `items` with at most `n` at a time. */
async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

interface TurnRecord {
  user: string;
  content: string;
  reasoning: string;
  prompt: number;
  completion: number;
}

interface Conversation {
  id: string;
  turns: TurnRecord[];
}

/** What the server must hold for a conversation whose turns the client saw succeed. */
function compareSession(c: Conversation, info: Json): string | null {
  const want = c.turns.flatMap((t) => [
    { role: 'user', content: t.user },
    { role: 'assistant', content: t.content, reasoning_content: t.reasoning },
  ]);
  const prompt = c.turns.reduce((a, t) => a + t.prompt, 0);
  const completion = c.turns.reduce((a, t) => a + t.completion, 0);
  if (info.status !== 'idle') return `status ${info.status}, expected idle`;
  if (info.turns !== c.turns.length) return `${info.turns} turns, expected ${c.turns.length}`;
  if (JSON.stringify(info.messages) !== JSON.stringify(want))
    return 'the transcript differs from what the client received';
  if (info.usage.prompt_tokens !== prompt || info.usage.completion_tokens !== completion)
    return `usage ${info.usage.prompt_tokens}/${info.usage.completion_tokens}, expected ${prompt}/${completion}`;
  return null;
}

/** Phase 1: conversations until the deadline; every turn that failed is finished with resume. */
async function underCapacity(api: Api, o: LoadOptions) {
  const conversations: Conversation[] = [];
  const turnMs: number[] = [];
  const firstTextMs: number[] = [];
  const statuses: Record<string, number> = {};
  let resumed = 0;
  let completionTokens = 0;
  const t0 = Date.now();
  const deadline = t0 + o.durationMs;

  async function oneTurn(id: string, user: string, body: Json): Promise<StreamResult | null> {
    const started = performance.now();
    let first = 0;
    const res = await api.post(`/v1/sessions/${id}/messages`, body);
    const r = await readTurn(res, () => (first ||= performance.now()));
    count(statuses, r.error ? (r.status === 200 ? 'stream-error' : r.status) : r.broken ? 'broken' : 200);
    if (!r.error && !r.broken) {
      turnMs.push(performance.now() - started);
      if (body.stream && first) firstTextMs.push(first - started);
      return r;
    }
    // An interrupted turn is the session's to finish: resume it, as a client would, waiting Retry-After.
    for (let attempt = 0; attempt < 5; attempt++) {
      const wait = Number(res.headers.get('retry-after') ?? '1');
      await sleep(Math.min(5, Number.isFinite(wait) ? wait : 1) * 1000);
      const again = await readTurn(await api.post(`/v1/sessions/${id}/resume`, {}));
      if (!again.error && !again.broken) {
        resumed++;
        return again;
      }
      if (again.error?.code === 'nothing_to_resume') break;
    }
    o.log(
      `load: session ${id}: a turn for ${JSON.stringify(user)} failed: ${JSON.stringify(r.error ?? r.broken)}`,
    );
    return null;
  }

  await Promise.all(
    Array.from({ length: o.sessions }, async (_, w) => {
      for (let c = 0; Date.now() < deadline; c++) {
        const id = await api.createSession({
          switchyard: { memory: { namespace: `load-${w}`, recall: 2, write: true } },
        });
        const conv: Conversation = { id, turns: [] };
        conversations.push(conv);
        for (let t = 0; t < o.turns && Date.now() < deadline; t++) {
          const user = `c${w}.${c} turn ${t}: what is ${(w * 7 + c * 3 + t) % 50} + ${(t * 11 + w) % 50}?`;
          const stream = (w + t) % 2 === 1;
          const r = await oneTurn(id, user, {
            content: user,
            max_tokens: o.maxTokens,
            temperature: 0.8,
            seed: w * 1000 + c * 10 + t,
            stream,
            ...(stream ? { stream_options: { include_usage: true } } : {}),
          });
          if (!r) break;
          const usage = r.usage as Json;
          completionTokens += usage.completion_tokens;
          conv.turns.push({
            user,
            content: r.content,
            reasoning: r.reasoning,
            prompt: usage.prompt_tokens,
            completion: usage.completion_tokens,
          });
        }
      }
    }),
  );
  const seconds = (Date.now() - t0) / 1000;

  const lost: string[] = [];
  await pool(conversations, 8, async (c) => {
    const r = await api.call('GET', `/v1/sessions/${c.id}`);
    const why =
      r.status === 200 ? compareSession(c, r.body) : `GET answered ${r.status}: ${r.text.slice(0, 200)}`;
    if (why) lost.push(`${c.id}: ${why}`);
  });
  const turns = turnMs.length + resumed;
  return {
    seconds: Math.round(seconds * 10) / 10,
    conversations: conversations.length,
    turns,
    completionTokens,
    turnsPerSecond: Math.round((turns / seconds) * 100) / 100,
    tokensPerSecond: Math.round((completionTokens / seconds) * 10) / 10,
    turnLatencyMs: latency(turnMs),
    firstTextMs: latency(firstTextMs),
    statuses,
    errors5xx: Object.entries(statuses)
      .filter(([k]) => /^5\d\d$/.test(k) || k === 'stream-error' || k === 'broken')
      .reduce((a, [, n]) => a + n, 0),
    resumed,
    sessionsVerified: conversations.length,
    lostSessions: lost.length,
    lost: lost.slice(0, 20),
  };
}

/** Phase 2a: one key far past its rate limit, while another key keeps holding a conversation. */
async function edgeOverload(limited: Api, bystander: Api, o: LoadOptions) {
  const deadline = Date.now() + o.overloadMs;
  const tally = new OverloadTally();
  const hammer = Array.from({ length: o.overloadClients }, async (_, i) => {
    for (let n = 0; Date.now() < deadline; n++) {
      const t = performance.now();
      const res = await limited.post('/v1/chat/completions', {
        model: MODEL_NAME,
        messages: [{ role: 'user', content: `ping ${i}.${n}` }],
        max_tokens: 4,
        temperature: 0,
        switchyard: { memory: NO_MEMORY },
      });
      await res.arrayBuffer();
      tally.record(res, performance.now() - t, true);
    }
  });
  const byMs: number[] = [];
  let byTurns = 0;
  const watch = (async () => {
    const id = await bystander.createSession();
    while (Date.now() < deadline) {
      const t = performance.now();
      const r = await readTurn(
        await bystander.post(`/v1/sessions/${id}/messages`, {
          content: `still there? ${byTurns}`,
          max_tokens: 8,
        }),
      );
      byTurns++;
      if (!r.error && !r.broken) byMs.push(performance.now() - t);
    }
  })();
  await Promise.all([...hammer, watch]);
  const { refused, okLatencyMs, refusedLatencyMs, ...t } = tally.summary();
  return {
    report: {
      ...t,
      rateLimited: refused,
      allowed: Math.floor(o.rateLimit.burst + (o.rateLimit.rpm * o.overloadMs) / 60_000),
      okLatencyMs,
      refusedLatencyMs,
      bystander: { turns: byTurns, ok: byMs.length, latencyMs: latency(byMs) },
    },
    maxRetryAfter: tally.maxRetryAfter,
  };
}

/** Phase 2b: a GPU-tier process past its --queue-limit, driven directly with signed step requests. */
async function gpuOverload(tier: Proc, secret: string, o: LoadOptions) {
  const http = new TierHttp(tier.url, secret);
  const deadline = Date.now() + o.overloadMs;
  const tally = new OverloadTally();
  let maxQueueDepth = 0;
  const h = Float32Array.from({ length: 64 }, (_, i) => Math.cos(i));
  const clients = Array.from({ length: o.overloadClients }, async (_, i) => {
    for (let n = 0; Date.now() < deadline; n++) {
      // A new session each time: a prefill and a step, the most a request can ask of the tier.
      const tokens = [
        256,
        ...Array.from({ length: 16 + ((i * 7 + n) % 48) }, (_, k) => 65 + ((i + n + k) % 26)),
      ];
      const frame = encodeStepRequest({
        sessionId: `overload-${i}-${n}`,
        requestId: 'r',
        step: 1,
        digest: await promptDigest(tokens),
        hDtype: 'f32',
        responseDtype: 'f32',
        perExpert: false,
        experts: [i % 4, (i + 1) % 4],
        gates: [0.5, 0.5],
        h,
        tokens,
      });
      const t = performance.now();
      const res = await http.request('POST', '/v1/step', frame, {
        'content-type': 'application/octet-stream',
      });
      const f = decodeFrame(new Uint8Array(await res.arrayBuffer()));
      tally.record(
        res,
        performance.now() - t,
        f.type === 'step-response',
        f.type === 'error' && f.code === WireErrorCode.Overloaded,
      );
    }
  });
  const sampler = (async () => {
    while (Date.now() < deadline) {
      const text = await (await fetch(`${tier.url}/metrics`)).text();
      const m = /^switchyard_gpu_queue_depth (\d+)/m.exec(text);
      if (m) maxQueueDepth = Math.max(maxQueueDepth, Number(m[1]));
      await sleep(100);
    }
  })();
  await Promise.all([...clients, sampler]);
  const { refused, okLatencyMs, refusedLatencyMs, ...t } = tally.summary();
  return {
    report: { ...t, overloaded: refused, maxQueueDepth, okLatencyMs, refusedLatencyMs },
    maxRetryAfter: tally.maxRetryAfter,
  };
}

/** Phase 3: after the load and the longest Retry-After, everything serves again. */
async function recovery(main: Api, limited: Api, tier: Proc, secret: string) {
  const t0 = Date.now();
  const ping = await limited.post('/v1/chat/completions', {
    model: MODEL_NAME,
    messages: [{ role: 'user', content: 'back?' }],
    max_tokens: 4,
    switchyard: { memory: NO_MEMORY },
  });
  await ping.arrayBuffer();
  const tokens = [256, 66, 97, 99, 107];
  const frame = encodeStepRequest({
    sessionId: 'recovered',
    requestId: 'r',
    step: 1,
    digest: await promptDigest(tokens),
    hDtype: 'f32',
    responseDtype: 'f32',
    perExpert: false,
    experts: [0, 1],
    gates: [0.5, 0.5],
    h: new Float32Array(64),
    tokens,
  });
  const step = await new TierHttp(tier.url, secret).request('POST', '/v1/step', frame, {
    'content-type': 'application/octet-stream',
  });
  const stepOk =
    step.status === 200 && decodeFrame(new Uint8Array(await step.arrayBuffer())).type === 'step-response';
  const conv: Conversation = { id: await main.createSession(), turns: [] };
  let sessionsOk = true;
  for (let t = 0; t < 2; t++) {
    const user = `after the storm ${t}`;
    const r = await readTurn(
      await main.post(`/v1/sessions/${conv.id}/messages`, { content: user, max_tokens: 8 }),
    );
    if (r.error || r.broken) sessionsOk = false;
    else
      conv.turns.push({
        user,
        content: r.content,
        reasoning: r.reasoning,
        prompt: r.usage!.prompt_tokens,
        completion: r.usage!.completion_tokens,
      });
  }
  sessionsOk &&= compareSession(conv, await main.session(conv.id)) === null;
  return {
    edgeRateLimited: ping.status === 200,
    gpuTier: stepOk,
    sessions: sessionsOk,
    afterMs: Date.now() - t0,
  };
}

export async function run(options: Partial<LoadOptions> = {}): Promise<LoadReport> {
  const o: LoadOptions = { ...FULL_LOAD, ...options };
  const loadBefore = loadavg();
  let stack: Stack | undefined;
  let tier: Proc | undefined;
  try {
    stack = await startStack({
      model: GOLDEN_MODEL,
      apiKey: MAIN_KEY,
      extraVars: {
        API_KEYS: apiKeysVar([
          { key: MAIN_KEY, tenant: 'load', rpm: 0 },
          { key: LIMITED_KEY, tenant: 'burst', ...o.rateLimit },
        ]),
        RATE_LIMIT_RPM: '0',
      },
    });
    tier = await startGpuTier({
      model: GOLDEN_MODEL,
      secret: stack.secret,
      args: ['--queue-limit', String(o.gpuQueueLimit), '--threads', '1'],
    });
    const main = new Api(stack.edge.url, MAIN_KEY);
    const limited = new Api(stack.edge.url, LIMITED_KEY);
    o.log(`load: ${o.sessions} conversations for ${o.durationMs / 1000} s on ${stack.edge.url}`);
    const under = await underCapacity(main, o);
    o.log(
      `load: ${under.turns} turns in ${under.seconds} s; p50 ${under.turnLatencyMs.p50} ms, p99 ${under.turnLatencyMs.p99} ms; ${under.lostSessions} lost of ${under.sessionsVerified}`,
    );
    o.log(`load: past capacity for ${o.overloadMs / 1000} s (${o.overloadClients} clients per target)`);
    const [edge, gpu] = await Promise.all([
      edgeOverload(limited, main, o),
      gpuOverload(tier, stack.secret, o),
    ]);
    await sleep(Math.max(1, edge.maxRetryAfter, gpu.maxRetryAfter) * 1000);
    const rec = await recovery(main, limited, tier, stack.secret);
    const { log: _log, ...settings } = o;
    const report: LoadReport = {
      options: settings,
      machine: { cores: availableParallelism(), loadBefore, loadAfter: loadavg() },
      underCapacity: under,
      overload: { seconds: o.overloadMs / 1000, edgeRateLimit: edge.report, gpuBackpressure: gpu.report },
      recovery: rec,
      workerReloads: stack.edge.output().split('Reloading local server').length - 1,
    };
    printReport(report);
    if (o.write) o.log(`load: wrote ${writeResult('load', report)}`);
    return report;
  } finally {
    await Promise.all([stack?.stop(), tier?.stop()]);
  }
}

function printReport(r: LoadReport): void {
  const u = r.underCapacity;
  const e = r.overload.edgeRateLimit;
  const g = r.overload.gpuBackpressure;
  // Counts as text, so the table prints them whole.
  const n = (x: number) => String(x);
  printTable(
    `under capacity: ${r.options.sessions} concurrent conversations, ${u.seconds} s`,
    [
      'conversations',
      'turns',
      'turns/s',
      'tokens/s',
      'turn p50 ms',
      'turn p99 ms',
      'first text p50 ms',
      '5xx',
      'lost',
    ],
    [
      [
        n(u.conversations),
        n(u.turns),
        u.turnsPerSecond,
        u.tokensPerSecond,
        u.turnLatencyMs.p50,
        u.turnLatencyMs.p99,
        u.firstTextMs.p50,
        n(u.errors5xx),
        n(u.lostSessions),
      ],
    ],
  );
  printTable(
    `past capacity, ${r.overload.seconds} s`,
    [
      'target',
      'requests',
      'served',
      'refused (429)',
      'no Retry-After',
      '5xx',
      'served p99 ms',
      'refused p99 ms',
    ],
    [
      [
        `edge key at ${r.options.rateLimit.rpm}/min`,
        n(e.requests),
        n(e.ok),
        n(e.rateLimited),
        n(e.retryAfterMissing),
        n(e.errors5xx),
        e.okLatencyMs.p99,
        e.refusedLatencyMs.p99,
      ],
      [
        `GPU tier, queue limit ${r.options.gpuQueueLimit}`,
        n(g.requests),
        n(g.ok),
        n(g.overloaded),
        n(g.retryAfterMissing),
        n(g.errors5xx),
        g.okLatencyMs.p99,
        g.refusedLatencyMs.p99,
      ],
    ],
  );
  console.log(
    `meanwhile another key: ${e.bystander.ok}/${e.bystander.turns} turns served (p50 ${e.bystander.latencyMs.p50} ms); ` +
      `GPU queue depth at most ${g.maxQueueDepth}; recovery: edge ${r.recovery.edgeRateLimited}, GPU tier ${r.recovery.gpuTier}, sessions ${r.recovery.sessions}`,
  );
}

function flag(name: string): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : undefined;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sessions = flag('sessions');
  const seconds = flag('seconds');
  await run({
    ...(sessions ? { sessions } : {}),
    ...(seconds ? { durationMs: seconds * 1000 } : {}),
  });
}
