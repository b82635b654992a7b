// Starts the real switchyard-gpu bin as a child process and waits for its ready line; plus the golden model,
// the reference, and frame-building helpers the server tests share.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  promptDigest,
  readWeights,
  ReferenceModel,
  Rng,
  type GoldenFile,
  type StepRequest,
  type WeightsFile,
} from '@switchyard/shared';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = fileURLToPath(new URL('../bin/switchyard-gpu.mjs', import.meta.url));
export const GOLDEN_MODEL = fileURLToPath(
  new URL('../../shared/golden/tiny-int8.safetensors', import.meta.url),
);
const GOLDEN_JSON = fileURLToPath(new URL('../../shared/golden/tiny-int8.golden.json', import.meta.url));

export const SECRET = 'test-secret-do-not-use';

export interface ServerProcess {
  url: string;
  readyLine: string;
  proc: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

/** Spawns the bin with `args` and resolves once it prints its ready line (rejects if it exits first). */
export function startServer(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<ServerProcess> {
  const proc = spawn(process.execPath, [BIN, '--model', GOLDEN_MODEL, '--port', '0', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`server did not print its ready line within ${timeoutMs} ms; stderr:\n${err}`));
    }, timeoutMs);
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /^(switchyard-gpu listening on (http:\/\/\S+) .*)$/m.exec(out);
      if (!m) return;
      clearTimeout(timer);
      resolve({
        url: m[2],
        readyLine: m[1],
        proc,
        stderr: () => err,
        exited,
        stop: async () => {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
          return exited;
        },
      });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with code ${code} before it was ready; stderr:\n${err}`));
    });
  });
}

/** Runs the bin to completion (for calls that must fail at start). */
export function runBin(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const proc = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((r) => proc.once('exit', (code) => r({ code, stderr, stdout })));
}

export interface Golden {
  file: WeightsFile;
  model: ReferenceModel;
  golden: GoldenFile;
}

let golden: Golden | undefined;
/** The golden model's file, its reference (weights dequantized from the file) and the golden cases. */
export function loadGolden(): Golden {
  if (!golden) {
    const file = readWeights(new Uint8Array(readFileSync(GOLDEN_MODEL)));
    golden = {
      file,
      model: new ReferenceModel(file.config, file.params()),
      golden: JSON.parse(readFileSync(GOLDEN_JSON, 'utf8')),
    };
  }
  return golden;
}

export { sampleH, samplePrompt } from '../src/samples.ts';

/** A STEP_REQUEST body for the golden model. */
export async function stepRequest(
  o: Partial<StepRequest> & {
    tokens?: readonly number[];
    prompt: readonly number[];
    experts: number[];
    h: Float32Array;
  },
): Promise<StepRequest> {
  const { prompt, ...rest } = o;
  return {
    type: 'step-request',
    sessionId: 's',
    requestId: 'r',
    step: 1,
    digest: await promptDigest(prompt),
    hDtype: 'f32',
    responseDtype: 'f32',
    perExpert: false,
    gates: o.experts.map(() => 1 / o.experts.length),
    ...rest,
  };
}

/** The reference's output of expert e on (prompt, h). */
export function referenceExpert(
  model: ReferenceModel,
  e: number,
  prompt: readonly number[],
  h: Float32Array,
): Float32Array {
  return model.expertStep(e, h, model.expertPrefill(e, prompt));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

/** A metric's value from Prometheus text (the sum over series that match every given label). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const l = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) total += Number(m[3]);
  }
  return total;
}

/**
 * Float32 graphs sum in a different order than the reference (which accumulates in float64); measured
 * ≤ 2e-6 per value on the golden model. 1e-4 is still far below what a wrong row, mask or cache produces.
 */
export const TOL = 1e-4;
