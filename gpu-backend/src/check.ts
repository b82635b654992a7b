// `switchyard-gpu check`: proves an install before it serves traffic, above all a GPU machine's. It starts
// the tier in this process on a free loopback port with the chosen provider and holds what comes back over
// HTTP against the float32 reference in shared/ (the oracle every path is held to): every served expert,
// with concurrent sessions of different prompt lengths so that they share batched runs, and, for a full
// model with golden cases beside it, the golden sessions end to end.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  compareGolden,
  GOLDEN_SESSIONS,
  INT8_DYNAMIC_REL_TOL,
  promptDigest,
  readWeights,
  ReferenceEdge,
  ReferenceModel,
  runGoldenSession,
  type GoldenFile,
} from '@switchyard/shared';
import { GpuExpertClient } from './client.ts';
import { sampleH, samplePrompt } from './samples.ts';
import {
  COMPUTE_MODES,
  ConfigError,
  DEFAULTS,
  parseExpertList,
  parseInteger,
  PROVIDERS,
  type ComputeMode,
  type Provider,
} from './config.ts';
import type { ResolvedProvider } from './jobs.ts';
import { loadWeights, startServer } from './server.ts';

/**
 * |Δy| allowed per expert output, as a share of max |y|. float32 graphs sum in another order than
 * the float64-accumulating reference: measured ≤ 2e-6 on CPU and on Vulkan (lavapipe); a wrong row, mask or
 * cache is off by far more than 1e-4. int8-dynamic quantizes activations and has its own documented bound.
 */
export const CHECK_TOLERANCE: Record<ComputeMode, number> = {
  f32: 1e-4,
  int8: 1e-4,
  'int8-dynamic': INT8_DYNAMIC_REL_TOL,
};

export interface CheckOptions {
  model: string;
  /** Golden cases for a full model; default: `<model>.golden.json` beside the weights when it exists. */
  golden?: string;
  experts?: number[];
  provider: Provider;
  compute: ComputeMode;
  threads: number;
  /** Concurrent sessions per expert round (default 6): their steps share batched runs. */
  sessions: number;
}

export interface ExpertCheck {
  expert: number;
  /** Largest error over the sessions, relative to max |y| of each output. */
  maxError: number;
  ok: boolean;
}

export interface CheckReport {
  provider: ResolvedProvider;
  /** Why `auto` fell back to CPU, when it did. */
  fallback?: string;
  compute: ComputeMode;
  tolerance: number;
  experts: ExpertCheck[];
  /** Golden sessions run end to end (reference edge + this tier), and the mismatches found. */
  golden?: { file: string; sessions: number; matched: number; mismatches: string[] };
  /** Batched runs the tier made and the rows they held, from its metrics. */
  batches: { runs: number; rows: number };
  startMs: number;
  ok: boolean;
}

const CHECK_FLAGS = {
  model: { type: 'string' },
  golden: { type: 'string' },
  experts: { type: 'string' },
  provider: { type: 'string' },
  compute: { type: 'string' },
  threads: { type: 'string' },
  sessions: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

export function checkUsage(): string {
  return [
    'usage: switchyard-gpu check --model FILE [options]',
    '',
    'Starts the tier in-process and compares every served expert (and, for a full model, its golden',
    'sessions) with the float32 reference. Exit status 0: within tolerance; 1: not, or failed to start.',
    '',
    '  --golden FILE     golden cases (default: <model>.golden.json beside the weights, if present)',
    '  --experts LIST    expert ids to check, e.g. 0-3 (default: all in the file)',
    `  --provider P      ${PROVIDERS.join('|')} (default auto)`,
    `  --compute C       ${COMPUTE_MODES.join('|')} (default f32)`,
    '  --threads N       intra-op threads (default: cores)',
    '  --sessions N      concurrent sessions per expert (default 6)',
    '  --json            print the report as JSON',
  ].join('\n');
}

export function parseCheckArgs(
  argv: readonly string[],
  cores: number,
): { help: true } | { help: false; options: CheckOptions; json: boolean } {
  let v: { [k in keyof typeof CHECK_FLAGS]?: string | boolean };
  try {
    v = parseArgs({ args: [...argv], options: CHECK_FLAGS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}\n\n${checkUsage()}`);
  }
  if (v.help) return { help: true };
  const s = (k: keyof typeof CHECK_FLAGS) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const model = s('model');
  if (!model) throw new ConfigError(`--model: a weights file is required\n\n${checkUsage()}`);
  const pick = <T extends string>(name: string, text: string | undefined, valid: readonly T[], def: T) => {
    if (text === undefined) return def;
    if (!(valid as readonly string[]).includes(text))
      throw new ConfigError(`--${name}: expected one of ${valid.join(', ')}, found ${JSON.stringify(text)}`);
    return text as T;
  };
  const experts = s('experts');
  const threads = s('threads');
  const sessions = s('sessions');
  return {
    help: false,
    json: v.json === true,
    options: {
      model,
      golden: s('golden'),
      experts: experts === undefined ? undefined : parseExpertList(experts),
      provider: pick('provider', s('provider'), PROVIDERS, DEFAULTS.provider),
      compute: pick('compute', s('compute'), COMPUTE_MODES, DEFAULTS.compute),
      threads: threads === undefined ? cores : parseInteger(threads, '--threads', 1, 1024),
      sessions: sessions === undefined ? 6 : parseInteger(sessions, '--sessions', 1, 256),
    },
  };
}

/** max |Δ| / max |want|: the int8-dynamic bound's measure, used for every mode so that they compare. */
function relError(got: Float32Array, want: Float32Array): number {
  let scale = Number.MIN_VALUE;
  for (const w of want) scale = Math.max(scale, Math.abs(w));
  let m = got.length === want.length ? 0 : Infinity;
  for (let i = 0; i < want.length && m !== Infinity; i++) {
    const d = Math.abs(got[i] - want[i]);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m / scale;
}

function defaultGolden(model: string): string | undefined {
  const g = model.replace(/\.safetensors$/, '') + '.golden.json';
  return g !== model && existsSync(g) ? g : undefined;
}

export async function runCheck(
  o: CheckOptions,
  log: (line: string) => void = () => {},
): Promise<CheckReport> {
  const weights = await loadWeights(o.model);
  // The checksums are verified once, by startServer below, which also reuses these bytes.
  const file = readWeights(weights, { verify: false });
  const config = file.config;
  const held = file.experts();
  const full = file.shard.kind === 'full';
  // Golden sessions route to any expert, so they need the controller and every expert served here.
  const servesAll = full && (o.experts ?? held).length === config.experts.count;
  const reference = new ReferenceModel(config, file.params(), full ? 'all' : 'experts');
  const goldenPath = o.golden ?? (servesAll ? defaultGolden(o.model) : undefined);
  if (o.golden && !servesAll)
    throw new ConfigError(
      `--golden: golden sessions need a full model with all ${config.experts.count} experts served; found ${full ? `--experts ${(o.experts ?? []).join(',')}` : `an expert shard with experts ${held.join(',')}`}`,
    );
  const secret = randomBytes(24).toString('base64url');
  const t0 = performance.now();
  const server = await startServer(
    {
      ...DEFAULTS,
      model: o.model,
      experts: o.experts,
      port: 0,
      provider: o.provider,
      threads: o.threads,
      spin: false,
      compute: o.compute,
      secret,
      insecureNoAuth: false,
    },
    log,
    weights,
  );
  const startMs = performance.now() - t0;
  try {
    const client = new GpuExpertClient({ url: server.url, secret });
    const H = config.controller.hidden;
    const tolerance = CHECK_TOLERANCE[o.compute];
    const experts: ExpertCheck[] = [];
    for (const e of server.experts) {
      // Lengths from 1 up to a few dozen, so that one batch holds rows of different prompt lengths.
      const sessions = await Promise.all(
        Array.from({ length: o.sessions }, async (_, s) => {
          const tokens = samplePrompt(1000 * e + s, 1 + ((s * 11) % 37));
          const h = sampleH(7000 * e + s, H);
          return { id: `check-${e}-${s}`, tokens, h, digest: await promptDigest(tokens) };
        }),
      );
      const answers = await Promise.all(
        sessions.map((s) =>
          client.step(
            {
              sessionId: s.id,
              requestId: 'r1',
              step: 1,
              prompt: { tokens: s.tokens, digest: s.digest },
              experts: [e],
              gates: [1],
              h: s.h,
            },
            { perExpert: true },
          ),
        ),
      );
      let maxError = 0;
      sessions.forEach((s, i) => {
        const want = reference.expertStep(e, s.h, reference.expertPrefill(e, s.tokens));
        maxError = Math.max(maxError, relError(answers[i].values, want));
      });
      await Promise.all(sessions.map((s) => client.dropSession(s.id)));
      experts.push({ expert: e, maxError, ok: maxError <= tolerance });
    }
    let golden: CheckReport['golden'];
    if (goldenPath) {
      const g = JSON.parse(readFileSync(goldenPath, 'utf8')) as GoldenFile;
      // int8-dynamic moves gates and logits by about 1e-3 relative: only its tokens and experts must hold.
      const tol =
        o.compute === 'int8-dynamic' ? { gate: 1, logits_checksum: Number.POSITIVE_INFINITY } : g.tolerances;
      const mismatches: string[] = [];
      let matched = 0;
      for (const [i, spec] of GOLDEN_SESSIONS.entries()) {
        const expected = g.sessions[i];
        if (!expected) {
          mismatches.push(`${spec.name}: missing from ${goldenPath}`);
          continue;
        }
        const run = await runGoldenSession(
          config,
          new ReferenceEdge(reference),
          client,
          spec,
          reference.initialState(),
        );
        const found = compareGolden(expected, run, tol);
        if (found.length === 0) matched++;
        for (const m of found) mismatches.push(`${spec.name}: turn ${m.turn} step ${m.step}: ${m.what}`);
      }
      golden = { file: goldenPath, sessions: GOLDEN_SESSIONS.length, matched, mismatches };
    }
    const hist = server.metrics.batchSize.totals();
    const ok = experts.every((x) => x.ok) && (!golden || golden.matched === golden.sessions);
    return {
      provider: server.provider,
      fallback: server.fallback,
      compute: o.compute,
      tolerance,
      experts,
      golden,
      batches: { runs: hist.count, rows: hist.sum },
      startMs,
      ok,
    };
  } finally {
    await server.close();
  }
}

export function formatCheck(r: CheckReport): string {
  const lines = [
    `provider ${r.provider}${r.fallback ? ` (auto fell back: ${r.fallback})` : ''}, compute ${r.compute}, started in ${r.startMs.toFixed(0)} ms`,
    `experts (max |Δy| / max |y|, tolerance ${r.tolerance}):`,
    ...r.experts.map(
      (x) => `  expert ${x.expert}: ${x.maxError.toExponential(2)} ${x.ok ? 'ok' : 'OVER TOLERANCE'}`,
    ),
    `batched runs ${r.batches.runs} for ${r.batches.rows} rows`,
  ];
  if (r.golden) {
    const shown = r.golden.mismatches.slice(0, 10);
    lines.push(
      `golden sessions (${r.golden.file}): ${r.golden.matched}/${r.golden.sessions} match`,
      ...shown.map((m) => `  ${m}`),
    );
    if (r.golden.mismatches.length > shown.length)
      lines.push(`  … and ${r.golden.mismatches.length - shown.length} more (--json lists them all)`);
  }
  lines.push(r.ok ? 'check passed' : 'check FAILED');
  return lines.join('\n');
}
