// Worker bundles for the benchmark and the build tests: esbuild with wrangler's settings for workers that
// take extra modules, `wrangler deploy --dry-run` for the edge Worker itself, and Miniflare to run either.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';
import { Miniflare } from 'miniflare';

const ROOT = new URL('../..', import.meta.url).pathname;
/** The edge Worker's (wrangler.toml). */
export const COMPAT_DATE = '2026-04-01';

export type ModuleType = 'ESModule' | 'CompiledWasm' | 'Data';
export interface WorkerModule {
  type: ModuleType;
  path: string;
  contents: string | Uint8Array;
}

/**
 * Bundles a Worker entry with esbuild as wrangler does (workerd conditions, ESM), leaving .wasm and
 * .safetensors imports to modules: files the packages hold are read from disk, `provided` ones given here.
 */
export async function bundle(
  entry: string,
  dir: string,
  provided: Record<string, { type: ModuleType; contents: Uint8Array }>,
): Promise<WorkerModule[]> {
  const modules: WorkerModule[] = [];
  const plugin: esbuild.Plugin = {
    name: 'worker-modules',
    setup(build) {
      build.onResolve({ filter: /\.(wasm|safetensors)$/ }, async (args) => {
        if (args.pluginData?.skip) return undefined;
        const name = basename(args.path);
        if (!modules.some((m) => basename(m.path) === name)) {
          const given = provided[name];
          if (given) modules.push({ type: given.type, path: join(dir, name), contents: given.contents });
          else {
            const r = await build.resolve(args.path, {
              kind: args.kind,
              importer: args.importer,
              resolveDir: args.resolveDir,
              pluginData: { skip: true },
            });
            if (r.errors.length) return { errors: r.errors };
            const type: ModuleType = name.endsWith('.wasm') ? 'CompiledWasm' : 'Data';
            modules.push({ type, path: join(dir, name), contents: new Uint8Array(readFileSync(r.path)) });
          }
        }
        return { path: `./${name}`, external: true };
      });
    },
  };
  const out = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    conditions: ['workerd', 'worker', 'browser'],
    target: 'es2022',
    logLevel: 'silent',
    plugins: [plugin],
  });
  return [{ type: 'ESModule', path: join(dir, 'index.js'), contents: out.outputFiles[0].text }, ...modules];
}

/** A workerd process running `modules` (the first is the entry); `bindings` become the Worker's vars. */
export function startWorker(
  dir: string,
  modules: WorkerModule[],
  bindings: Record<string, string> = {},
): Miniflare {
  return new Miniflare({ modules, modulesRoot: dir, compatibilityDate: COMPAT_DATE, bindings });
}

export interface BundleSize {
  variant: string;
  command: string;
  rawBytes: number;
  gzipBytes: number;
  /** Wrangler's own "Total Upload" line. */
  wrangler: string;
  files: Array<{ name: string; rawBytes: number; gzipBytes: number }>;
}

/** The edge Worker as `wrangler deploy --dry-run` builds it into `outdir`, with its size. */
export function wranglerBundle(variant: string, outdir: string, extra: string[]): BundleSize {
  const args = ['wrangler', 'deploy', '--dry-run', '--outdir', outdir, ...extra];
  const r = spawnSync('npx', args, { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(`npx ${args.join(' ')}: expected exit 0, found ${r.status}\n${r.stdout}${r.stderr}`);
  const total = /Total Upload: [^\n]*/.exec(r.stdout)?.[0] ?? '(no Total Upload line)';
  const files = readdirSync(outdir)
    .filter((f) => !f.endsWith('.map') && f !== 'README.md')
    .map((f) => {
      const bytes = readFileSync(join(outdir, f));
      return { name: f, rawBytes: bytes.length, gzipBytes: gzipSync(bytes).length };
    });
  return {
    variant,
    command: `npx ${args.join(' ').replace(outdir, '<dir>')}`,
    rawBytes: files.reduce((s, f) => s + f.rawBytes, 0),
    gzipBytes: files.reduce((s, f) => s + f.gzipBytes, 0),
    wrangler: total,
    files,
  };
}

/** The modules of a wrangler output directory, index.js first. */
export function modulesOf(outdir: string): WorkerModule[] {
  const files = readdirSync(outdir).filter((f) => !f.endsWith('.map') && f !== 'README.md');
  const type = (f: string): ModuleType =>
    f.endsWith('.js') ? 'ESModule' : f.endsWith('.wasm') ? 'CompiledWasm' : 'Data';
  const entry = files.filter((f) => f === 'index.js');
  return [...entry, ...files.filter((f) => f !== 'index.js')].map((f) => ({
    type: type(f),
    path: join(outdir, f),
    contents:
      type(f) === 'ESModule'
        ? readFileSync(join(outdir, f), 'utf8')
        : new Uint8Array(readFileSync(join(outdir, f))),
  }));
}
