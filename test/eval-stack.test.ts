// `switchyard eval --url --compare` against the stack started the way `npm start` starts it, on the bundled
// trained model: the held-out problems must get the same reasoning and answers through edge + GPU tier as
// through the float32 reference, and an endpoint that refuses the key must fail the run with its status.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startStack, type Stack } from '../scripts/stack.ts';

const BIN = join(ROOT, 'shared/bin/switchyard.mjs');
const MODEL = join(ROOT, 'train/models/reasoner.int8.safetensors');
const dir = mkdtempSync(join(tmpdir(), 'switchyard-eval-stack-'));
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ model: MODEL });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function evalCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, 'eval', MODEL, ...args], {
      cwd: dir,
      env: { ...process.env, SWITCHYARD_API_KEY: '' },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

interface Report {
  engine: string;
  sets: { set: string; n: number; answerAccuracy: number; stepAccuracy: number }[];
}

describe('switchyard eval through the running stack', () => {
  it('gives the reference’s reasoning and answers on every held-out set', async () => {
    const json = join(dir, 'eval.json');
    const r = await evalCli(
      '--url',
      stack.edge.url,
      '--compare',
      '--n',
      '2',
      '--api-key',
      stack.apiKey,
      '--json',
      json,
    );
    expect(r.stderr + r.stdout).toContain('0 of 18 answers differ between the reference and');
    expect(r.code).toBe(0);
    const { reports } = JSON.parse(readFileSync(json, 'utf8')) as { reports: Report[] };
    expect(reports.map((x) => x.engine)).toEqual(['reference', `endpoint ${stack.edge.url}`]);
    // Same answers, so the same scores set by set (9 sets × 2 problems).
    expect(reports[1].sets).toEqual(reports[0].sets);
    expect(reports[0].sets.map((s) => s.n)).toEqual(Array(9).fill(2));
  });

  it('fails with the endpoint’s 401 when the API key is wrong', async () => {
    const r = await evalCli(
      '--url',
      stack.edge.url,
      '--n',
      '1',
      '--sets',
      'add2',
      '--api-key',
      'sk-wrong',
      '--json',
      join(dir, 'x.json'),
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/expected 200, found 401/);
  });
});
