// Starting and stopping: settings that must refuse to start, and SIGTERM while requests are in flight.
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, type StepResponse } from '@switchyard/shared';
import { TierHttp } from '../src/client.ts';
import {
  GOLDEN_MODEL,
  loadGolden,
  maxAbsDiff,
  metricValue,
  referenceExpert,
  runBin,
  sampleH,
  samplePrompt,
  startServer,
  stepRequest,
  TOL,
} from './helpers.ts';

const { file, model } = loadGolden();
const H = file.config.controller.hidden;

describe('switchyard-gpu start-up', () => {
  it('refuses to start without a secret unless --insecure-no-auth is given', async () => {
    const r = await runBin(['--model', GOLDEN_MODEL]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /expected --secret S \(or SWITCHYARD_GPU_SECRET\).*pass --insecure-no-auth explicitly/,
    );
    expect(r.stdout).not.toMatch(/listening/);
  });

  it.each([
    [['--secret', 's', '--insecure-no-auth'], 2, /found both a secret and --insecure-no-auth/],
    [
      ['--secret', 's', '--experts', '0-x'],
      2,
      /--experts: expected expert ids or ranges such as 0-7 or 0,2,5, found "0-x"/,
    ],
    [
      ['--secret', 's', '--provider', 'tpu'],
      2,
      /--provider: expected one of auto, cuda, webgpu, cpu, found "tpu"/,
    ],
    [['--secret', 's', '--cache-bytes', '12 parsecs'], 2, /--cache-bytes: expected a byte count/],
    [
      ['--secret', 's', '--experts', '2-5'],
      1,
      /--experts: expected ids the file holds, \[0-3\]; found \[4, 5\]/,
    ],
  ])('refuses %j', async (args, code, message) => {
    const r = await runBin(['--model', GOLDEN_MODEL, ...args]);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(code);
  });

  it('says which file it cannot read', async () => {
    const r = await runBin(['--model', '/nonexistent/model.safetensors', '--insecure-no-auth']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--model: cannot read "\/nonexistent\/model.safetensors"/);
  });

  it('prints its options for --help', async () => {
    const r = await runBin(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--max-wait-ms .*\[SWITCHYARD_GPU_MAX_WAIT_MS\]/);
  });
});

describe('graceful shutdown', () => {
  it('finishes the requests in flight on SIGTERM, refuses new work, and exits 0', async () => {
    const server = await startServer(['--insecure-no-auth', '--max-wait-ms', '800', '--provider', 'cpu']);
    expect(server.readyLine).toMatch(/provider cpu/);
    const http = new TierHttp(server.url);
    const calls = [0, 1, 2, 3].map((i) => ({
      prompt: samplePrompt(40 + i, 5 + i),
      h: sampleH(40 + i, H),
      e: i,
    }));
    const pending = calls.map(async (c, i) => {
      const req = await stepRequest({
        sessionId: `sd-${i}`,
        prompt: c.prompt,
        tokens: c.prompt,
        experts: [c.e],
        gates: [1],
        h: c.h,
      });
      const res = await http.request('POST', '/v1/step', encodeFrame(req), {
        'content-type': 'application/octet-stream',
      });
      return { status: res.status, frame: decodeFrame(new Uint8Array(await res.arrayBuffer())) };
    });
    // Wait until all four are admitted and waiting in their batch windows, then stop the server.
    for (let i = 0; i < 200; i++) {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      if (metricValue(text, 'switchyard_gpu_queue_depth') === 4) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    server.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    const late = await fetch(`${server.url}/v2/health/ready`).then(
      (r) => r.status,
      () => 'refused',
    );
    expect([503, 'refused']).toContain(late);

    const results = await Promise.all(pending);
    results.forEach((r, i) => {
      expect(r.status).toBe(200);
      const f = r.frame as StepResponse;
      expect(
        maxAbsDiff(f.values, referenceExpert(model, calls[i].e, calls[i].prompt, calls[i].h)),
      ).toBeLessThan(TOL);
    });
    expect(await server.exited).toBe(0);
    expect(server.stderr()).toMatch(/SIGTERM: draining/);
  });
});
