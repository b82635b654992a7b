// Faults against the real stack on loopback: the edge (wrangler dev) in front of two replicas of the GPU tier,
// each behind a proxy the test controls. Every test names the fault, what the user sees, and what state
// remains; answers are held to the golden (reference) tokens.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ChaosStack,
  completionBody,
  expectGoldenTurn,
  expectSessionAfter,
  GOLDEN_MODEL,
  golden,
  metricValue,
  readTurn,
  reportReloads,
  ROOT,
  scaled,
  tokensOf,
  turn1,
  turn2,
  turnBody,
  until,
  withRetryAfter,
  type Api,
} from './harness.ts';

const KEY = 'sk-chaos-faults';
/** Per-attempt deadline of an expert call (EXPERT_TIMEOUT_MS). */
const TIMEOUT_MS = 2000;
/** How late the edge may notice its own deadline on a loaded two-core machine. */
const SLACK_MS = 3000;

describe('faults', () => {
  let s: ChaosStack;
  let api: Api;

  beforeAll(async () => {
    s = await ChaosStack.start({
      replicas: 2,
      proxied: true,
      keys: [{ key: KEY, tenant: 'faults' }],
      vars: {
        EXPERT_TIMEOUT_MS: String(TIMEOUT_MS),
        EXPERT_RETRIES: '2',
        // Circuit breakers never open here: an open one would make which replica a step goes to depend on
        // the failures of earlier tests. They have their own tests (edge/src/experts/breaker.test.ts,
        // router.test.ts).
        EXPERT_BREAKER_FAILURES: '1000',
      },
    });
    api = s.api(KEY);
  });
  afterAll(async () => {
    await s?.stop();
  });
  reportReloads(() => s);

  const turn = (id: string, t = turn1, stream = false) =>
    api.post(`/v1/sessions/${id}/messages`, turnBody(t, stream)).then(readTurn);

  it('a replica killed mid-stream: the stream finishes on the other replica with the reference tokens', async () => {
    // Fault: the replica serving a session is SIGKILLed while step 6 of a streamed turn is on its way to it.
    const id = await api.createSession();
    const p = s.primaryOf(id);
    const other = s.proxy(1 - p);
    const k = 6;
    const held = s.proxy(p).holdStep(k);
    const otherBefore = other.steps;
    const pending = turn(id, turn1, true);
    await held.reached;
    await s.killReplica(p);
    held.release();
    // The user sees: one uninterrupted stream, token for token the reference's.
    const r = await pending;
    expectGoldenTurn(r, turn1, 'streamed through the kill');
    // The failed step and every later one ran on the survivor, each exactly once.
    expect(other.steps - otherBefore).toBe(turn1.tokens.length - (k - 1));
    // State: the turn is in the conversation once, and the next turn continues from it.
    expectSessionAfter(await api.session(id), [turn1], 'after the kill');
    expectGoldenTurn(await turn(id, turn2), turn2, 'the next turn');
    expectSessionAfter(await api.session(id), [turn1, turn2], 'after two turns');
    await s.replaceReplica(p);
  });

  it('the whole GPU tier down mid-stream, then back: a clear 503, the session intact, resume finishes it', async () => {
    // Fault: both replicas are SIGKILLed while step 5 of a streamed turn is on its way.
    const id = await api.createSession();
    const k = 5;
    const held = s.proxy(s.primaryOf(id)).holdStep(k);
    const pending = turn(id, turn1, true);
    await held.reached;
    await Promise.all([s.killReplica(0), s.killReplica(1)]);
    held.release();
    // The user sees: the stream ends with an error event (no [DONE]) after the steps that were done.
    const r = await pending;
    expect(r.done).toBe(false);
    expect(r.error?.code).toBe('expert_tier_unavailable');
    expect(r.error?.message).toMatch(
      /^expert tier unavailable: shard 0 .* did not answer after \d+ attempts/,
    );
    expect(tokensOf(r.steps)).toEqual(turn1.tokens.slice(0, k - 1));
    // State: the session holds exactly the steps that were done, and says the turn was interrupted.
    const info = await api.session(id);
    expect(info.status).toBe('interrupted');
    expect(info.turns).toBe(0);
    expect(info.messages).toEqual([]);
    expect(info.pending_turn.steps).toBe(k - 1);
    expect(info.pending_turn.error).toMatch(/^expert_tier_unavailable: /);
    // New requests while the tier is down: a 503 with Retry-After before anything streams; not ready.
    const down = await api.post('/v1/chat/completions', completionBody(golden.sessions[0].turns[0], true));
    expect(down.status).toBe(503);
    expect(Number(down.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const body = (await down.json()) as { error: { code: string; type: string } };
    expect(body.error).toMatchObject({ code: 'expert_tier_unavailable', type: 'server_error' });
    expect((await fetch(`${s.url}/health/ready`)).status).toBe(503);

    // The tier comes back; the edge is not restarted.
    await Promise.all([s.replaceReplica(0), s.replaceReplica(1)]);
    await until(
      async () => (await fetch(`${s.url}/health/ready`)).status === 200,
      'the edge to see the tier',
    );
    const { res } = await withRetryAfter(() =>
      api.post(`/v1/sessions/${id}/resume`, { switchyard: { trace: true } }),
    );
    const resumed = await readTurn(res);
    // The user sees: the whole turn, as if nothing had happened, continued from step k.
    expectGoldenTurn(resumed, turn1, 'resumed');
    expect(resumed.ext?.resumed_at_step).toBe(k - 1);
    expectSessionAfter(await api.session(id), [turn1], 'after the resume');
    expectGoldenTurn(await turn(id, turn2), turn2, 'the next turn');
  });

  it('a slow replica: the edge gives up on it at its deadline and fails over; the answer is the reference', async () => {
    // Fault: the session's replica takes 30 s per request (far past EXPERT_TIMEOUT_MS).
    const id = await api.createSession();
    const slow = s.proxy(s.primaryOf(id));
    const abandonedBefore = slow.abandoned.length;
    slow.delayMs = 30_000;
    let r;
    const t0 = Date.now();
    try {
      r = await turn(id);
    } finally {
      slow.delayMs = 0;
    }
    const elapsed = Date.now() - t0;
    // The user sees: the reference answer, late by one deadline at most.
    expectGoldenTurn(r, turn1, 'past a slow replica');
    const waits = slow.abandoned.slice(abandonedBefore);
    expect(waits.length).toBe(1);
    // No request waits past its deadline: the slow attempt was dropped at EXPERT_TIMEOUT_MS, not 30 s.
    expect(waits[0]).toBeGreaterThanOrEqual(TIMEOUT_MS - 250);
    expect(waits[0]).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    expect(elapsed).toBeLessThan(2 * TIMEOUT_MS + SLACK_MS);
    expectSessionAfter(await api.session(id), [turn1], 'after the slow replica');
  });

  it('a hung replica (SIGSTOP): the same, and the replica serves again once it is continued', async () => {
    // Fault: the session's replica process is stopped; its socket still accepts, nothing answers.
    const id = await api.createSession();
    const p = s.primaryOf(id);
    const pid = s.replicas[p].gpu.child.pid!;
    const stepsBefore = s.proxy(p).steps;
    process.kill(pid, 'SIGSTOP');
    let r;
    const t0 = Date.now();
    try {
      r = await turn(id);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expectGoldenTurn(r, turn1, 'past a hung replica');
    expect(Date.now() - t0).toBeLessThan(2 * TIMEOUT_MS + SLACK_MS);
    expect(s.proxy(p).steps - stepsBefore).toBe(1);
    // State: consistent; and the continued replica is ready again (its health answers).
    expectSessionAfter(await api.session(id), [turn1], 'after the hung replica');
    await until(async () => (await fetch(`${s.url}/health/ready`)).status === 200, 'both replicas ready');
  });

  it('the edge restarted between turns: the next turn continues from the stored state', async () => {
    // Fault: the edge process (and with it every session actor) stops between two turns.
    const id = await api.createSession();
    expectGoldenTurn(await turn(id), turn1, 'turn 1');
    const before = await api.session(id);
    await s.restartEdge();
    // The user sees: the same session, and the next turn is the one the reference gives.
    expect(await api.session(id)).toEqual(before);
    expectGoldenTurn(await turn(id, turn2), turn2, 'turn 2 after the restart');
    expectSessionAfter(await api.session(id), [turn1, turn2], 'after the restart');
  });

  it('the edge killed during a step: the turn resumes from the last stored step, nothing applied twice', async () => {
    // Fault: SIGKILL to the edge while step 7 of a streamed turn waits on the GPU tier.
    const id = await api.createSession();
    const p = s.primaryOf(id);
    const k = 7;
    const held = s.proxy(p).holdStep(k);
    const pending = turn(id, turn1, true);
    await held.reached;
    await s.killEdge();
    held.release();
    // The user sees: the stream breaks off without [DONE], after at most the steps that were stored.
    const cut = await pending;
    expect(cut.done).toBe(false);
    expect(cut.broken ?? cut.error).not.toBeNull();
    expect(tokensOf(cut.steps)).toEqual(turn1.tokens.slice(0, cut.steps.length));
    expect(cut.steps.length).toBeLessThanOrEqual(k - 1);

    await s.startEdgeAgain();
    // State: exactly the k - 1 steps that finished before the kill, as an interrupted turn.
    const info = await api.session(id);
    expect(info.status).toBe('interrupted');
    expect(info.turns).toBe(0);
    expect(info.messages).toEqual([]);
    expect(info.pending_turn.steps).toBe(k - 1);
    const stepsBefore = s.proxy(0).steps + s.proxy(1).steps;
    const resumed = await readTurn(
      await api.post(`/v1/sessions/${id}/resume`, { stream: true, switchyard: { trace: true } }),
    );
    expectGoldenTurn(resumed, turn1, 'resumed after the restart');
    expect(resumed.ext?.resumed_at_step).toBe(k - 1);
    // Nothing applied twice: the tier ran only the missing steps, and the totals count each step once.
    expect(s.proxy(0).steps + s.proxy(1).steps - stepsBefore).toBe(turn1.tokens.length - (k - 1));
    expectSessionAfter(await api.session(id), [turn1], 'after the resume');
    expectGoldenTurn(await turn(id, turn2), turn2, 'the next turn');
  });

  it('a replica sent SIGTERM under load: it drains; every turn is complete or a clean retryable error', async () => {
    // Fault: SIGTERM to replica 0 while turns of several sessions run on both replicas.
    const n = scaled(8, 24);
    const ids = await Promise.all(Array.from({ length: n }, () => api.createSession()));
    const victim = s.replicas[0].gpu;
    const before = s.proxy(0).steps;
    const seen = s.proxy(0).outcomes.length;
    const runs = ids.map((id, i) => turn(id, turn1, i % 2 === 1));
    await until(() => s.proxy(0).steps - before >= n, 'load on replica 0');
    const stopping = victim.stop(30_000);
    const results = await Promise.all(runs);
    await stopping;
    // The replica drained and exited cleanly; every step it answered, it answered whole: no answer was cut
    // off (answers after the signal are 503 ShuttingDown, and once it is gone connections are refused).
    expect(victim.child.exitCode).toBe(0);
    expect(victim.output()).toMatch(/SIGTERM: draining[^]*switchyard-gpu: stopped/);
    const outcomes = s.proxy(0).outcomes.slice(seen);
    expect(outcomes.filter((o) => o.status !== undefined && !o.whole)).toEqual([]);
    for (const o of outcomes) if (o.status !== undefined) expect([200, 503]).toContain(o.status);
    // The user sees: for every turn, the reference answer whole, or an error that says retry (never half).
    let retried = 0;
    for (const [i, r] of results.entries()) {
      if (r.error) {
        expect(r.error.code).toMatch(/^(expert_tier_unavailable|turn_interrupted)$/);
        if (r.status !== 200) expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        const again = await withRetryAfter(() =>
          api.post(`/v1/sessions/${ids[i]}/resume`, { switchyard: { trace: true } }),
        );
        expectGoldenTurn(await readTurn(again.res), turn1, `session ${i} resumed`);
        retried++;
      } else expectGoldenTurn(r, turn1, `session ${i}`);
    }
    // State: every session holds the one turn, once.
    for (const id of ids) expectSessionAfter(await api.session(id), [turn1], `session ${id}`);
    console.log(
      `SIGTERM under load: ${n - retried} of ${n} turns whole at once, ${retried} finished by resume`,
    );
    await s.replaceReplica(0);
  });

  it('the prompt cache evicted under memory pressure: the same answers', async () => {
    // Fault: both replicas restart with a 40 kB prompt cache (2-3 entries): sessions evict each other.
    await Promise.all([
      s.replaceReplica(0, ['--cache-bytes', '40000']),
      s.replaceReplica(1, ['--cache-bytes', '40000']),
    ]);
    const copies = scaled(2, 4);
    const single = golden.sessions.filter((g) => g.turns.length === 1);
    const conversations = Array.from({ length: copies }, () => [
      ...single.map(async (g) => {
        const r = await readTurn(await api.post('/v1/chat/completions', completionBody(g.turns[0])));
        expectGoldenTurn(r, g.turns[0], g.name);
      }),
      (async () => {
        const id = await api.createSession();
        expectGoldenTurn(await turn(id), turn1, 'multi-turn 1');
        expectGoldenTurn(await turn(id, turn2), turn2, 'multi-turn 2');
        expectSessionAfter(await api.session(id), [turn1, turn2], 'multi-turn');
      })(),
    ]).flat();
    // The user sees: every answer exactly the reference's.
    await Promise.all(conversations);
    // What happened underneath: entries were evicted, and steps found their cache gone (NEED_PROMPT).
    const metrics = await Promise.all(
      s.replicas.map(async (r) => (await fetch(`${r.gpu.url}/metrics`)).text()),
    );
    const sum = (name: string) => metrics.reduce((a, m) => a + metricValue(m, name), 0);
    expect(sum('switchyard_gpu_cache_evictions_total')).toBeGreaterThan(0);
    expect(sum('switchyard_gpu_need_prompt_total')).toBeGreaterThan(0);
    for (const m of metrics) expect(metricValue(m, 'switchyard_gpu_cache_bytes')).toBeLessThanOrEqual(40000);
  });
});

// ------------------------------------------------------------------------------------------------ start-up

interface Entry {
  name: string;
  begin: number;
  end: number;
}

/** The data entries of a safetensors file, in file order, with absolute offsets. */
function entriesOf(bytes: Uint8Array): { entries: Entry[]; dataStart: number } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<
    string,
    { data_offsets: [number, number] }
  >;
  const dataStart = 8 + n;
  const entries = Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .map(([name, e]) => ({ name, begin: dataStart + e.data_offsets[0], end: dataStart + e.data_offsets[1] }))
    .sort((a, b) => a.begin - b.begin);
  return { entries, dataStart };
}

function run(args: string[]): Promise<{ code: number | null; out: string }> {
  const p = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((r) => p.once('exit', (code) => r({ code, out })));
}

const gpuBin = (model: string) =>
  run([
    join(ROOT, 'gpu-backend/bin/switchyard-gpu.mjs'),
    '--model',
    model,
    '--port',
    '0',
    '--provider',
    'cpu',
    '--insecure-no-auth',
  ]);
const verifyCli = (model: string) =>
  run([join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'shared/cli/main.ts'), 'verify', model]);

describe('a damaged weights file at start-up', () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-weights-'));
  const good = new Uint8Array(readFileSync(GOLDEN_MODEL));
  const { entries } = entriesOf(good);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('one flipped byte: the GPU tier and `switchyard verify` refuse it, naming the tensor', async () => {
    // Fault: one bit of an expert weight changed on disk (the middle entry of the file).
    const victim = entries[Math.floor(entries.length / 2)];
    const bad = good.slice();
    bad[(victim.begin + victim.end) >> 1] ^= 0x10;
    const path = join(dir, 'flipped.safetensors');
    writeFileSync(path, bad);
    const [gpu, verify] = await Promise.all([gpuBin(path), verifyCli(path)]);
    const message = `tensor "${victim.name}": checksum mismatch`;
    // The operator sees: the process exits 1 before listening, saying which tensor is corrupt.
    expect(gpu.code).toBe(1);
    expect(gpu.out).toContain(message);
    expect(gpu.out).not.toMatch(/listening on/);
    expect(verify.code).toBe(1);
    expect(verify.out).toContain(message);
  });

  it('a truncated file: both refuse it, naming the first tensor that runs past the end', async () => {
    // Fault: the file was cut in the middle of a tensor (an interrupted copy).
    const victim = entries[Math.floor((2 * entries.length) / 3)];
    const path = join(dir, 'truncated.safetensors');
    writeFileSync(path, good.subarray(0, (victim.begin + victim.end) >> 1));
    const [gpu, verify] = await Promise.all([gpuBin(path), verifyCli(path)]);
    const message = new RegExp(
      `tensor "${victim.name.replace(/[.]/g, '\\.')}": data_offsets .*file truncated`,
    );
    expect(gpu.code).toBe(1);
    expect(gpu.out).toMatch(message);
    expect(gpu.out).not.toMatch(/listening on/);
    expect(verify.code).toBe(1);
    expect(verify.out).toMatch(message);
  });

  it('a file cut inside its header: both refuse it, saying the header is short', async () => {
    const path = join(dir, 'header.safetensors');
    writeFileSync(path, good.subarray(0, 100));
    const [gpu, verify] = await Promise.all([gpuBin(path), verifyCli(path)]);
    expect(gpu.code).toBe(1);
    expect(gpu.out).toMatch(/header: expected \d+ bytes of JSON after the 8-byte length, found 92 bytes/);
    expect(verify.code).toBe(1);
    expect(verify.out).toMatch(/header: expected \d+ bytes of JSON/);
  });
});
