// `switchyard-gpu check`, run as the bin: the install check an operator runs on a new (GPU) machine.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { GoldenFile } from '@switchyard/shared';
import type { CheckReport } from '../src/check.ts';
import { GOLDEN_MODEL, runBin } from './helpers.ts';

const GOLDEN_JSON = GOLDEN_MODEL.replace(/\.safetensors$/, '.golden.json');
const dir = mkdtempSync(join(tmpdir(), 'switchyard-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function check(args: string[]) {
  const r = await runBin(['check', '--model', GOLDEN_MODEL, '--threads', '1', ...args]);
  return {
    ...r,
    report: args.includes('--json') && r.stdout ? (JSON.parse(r.stdout) as CheckReport) : undefined,
  };
}

describe('switchyard-gpu check', () => {
  it('passes on the CPU provider: every expert within tolerance and the golden sessions identical', async () => {
    const { code, report, stderr } = await check(['--provider', 'cpu', '--json']);
    expect(code, stderr).toBe(0);
    expect(report!.provider).toBe('cpu');
    expect(report!.tolerance).toBe(1e-4);
    expect(report!.experts.map((x) => x.expert)).toEqual([0, 1, 2, 3]);
    for (const x of report!.experts) expect(x.maxError).toBeLessThanOrEqual(1e-4);
    // The golden file beside the weights is found without --golden.
    expect(report!.golden).toMatchObject({ file: GOLDEN_JSON, sessions: 3, mismatches: [] });
    // Six concurrent sessions per expert, then the golden sessions' steps.
    expect(report!.batches.rows).toBeGreaterThan(4 * 6);
    expect(report!.ok).toBe(true);
  });

  it('fails, naming the session and step, when the outputs differ from the golden cases', async () => {
    const golden = JSON.parse(readFileSync(GOLDEN_JSON, 'utf8')) as GoldenFile;
    const step = golden.sessions[0].turns[0].steps[2];
    step.experts = [...step.experts].reverse();
    const bad = join(dir, 'altered.golden.json');
    writeFileSync(bad, JSON.stringify(golden));
    const { code, stdout } = await check(['--provider', 'cpu', '--golden', bad]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/golden sessions .*: 2\/3 match/);
    expect(stdout).toMatch(/arithmetic: turn 0 step 3: /);
    expect(stdout).toMatch(/check FAILED$/m);
  });

  it('holds int8-dynamic to its own, looser bound, and the golden tokens and routing to exact', async () => {
    const { code, report } = await check(['--provider', 'cpu', '--compute', 'int8-dynamic', '--json']);
    expect(code).toBe(0);
    expect(report!.tolerance).toBe(0.02);
    // Not exact: the mode is in use.
    expect(Math.max(...report!.experts.map((x) => x.maxError))).toBeGreaterThan(1e-4);
    expect(report!.golden!.mismatches).toEqual([]);
  });

  it('checks only the experts asked for, and refuses golden sessions that need the others', async () => {
    const some = await check(['--provider', 'cpu', '--experts', '1,3', '--json']);
    expect(some.code).toBe(0);
    expect(some.report!.experts.map((x) => x.expert)).toEqual([1, 3]);
    expect(some.report!.golden).toBeUndefined();
    const refused = await check(['--experts', '1', '--golden', GOLDEN_JSON]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      'golden sessions need a full model with all 4 experts served; found --experts 1',
    );
  });

  it('rejects bad arguments with the valid values', async () => {
    const r = await check(['--provider', 'gpu']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--provider: expected one of auto, cuda, webgpu, cpu, found "gpu"');
    const none = await runBin(['check']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--model: a weights file is required');
    const missing = await runBin(['check', '--model', join(dir, 'no-such.safetensors')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--model: cannot read ".*no-such\.safetensors": ENOENT/);
  });

  // These two run where the machine decides: a GPU box passes them the first way, CI (no GPU, no CUDA
  // libraries, no Vulkan driver) the second. Either way the outcome is asserted, never skipped.
  it('--provider cuda passes on a CUDA machine, else fails at start saying what is missing', async () => {
    const r = await check(['--provider', 'cuda', '--json']);
    if (r.code === 0) expect(r.report!.provider).toBe('cuda');
    else {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ProviderError: provider cuda: .*expected libonnxruntime_providers_cuda\.so/);
    }
  });

  it('--provider webgpu passes where a Vulkan GPU (or lavapipe) is present, else fails saying so', async () => {
    const r = await check(['--provider', 'webgpu', '--json']);
    if (r.code === 0) {
      expect(r.report!.provider).toBe('webgpu');
      expect(r.report!.golden!.mismatches).toEqual([]);
    } else {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ProviderError: provider webgpu: .*expected a GPU with a Vulkan driver/);
    }
  });

  it('--provider auto reports what it chose, and why it fell back', async () => {
    const { code, report } = await check(['--provider', 'auto', '--experts', '0', '--json']);
    expect(code).toBe(0);
    if (report!.provider === 'cpu') expect(report!.fallback).toMatch(/\S/);
    else expect(report!.provider).toBe('cuda');
  });
});
