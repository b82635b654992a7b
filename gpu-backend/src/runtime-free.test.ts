// The edge Worker reuses client.ts and auth.ts: everything they import, transitively, must run without Node.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const here = dirname(new URL(import.meta.url).pathname);
const repo = join(here, '../..');

const FORBIDDEN: [RegExp, string][] = [
  [
    /from\s+['"](node:|fs['"]|path['"]|crypto['"]|worker_threads|child_process|onnxruntime)/,
    'a Node-only import',
  ],
  [/\bBuffer\./, 'Node Buffer'],
  [/\bprocess\.(env|argv|exit|stdout|stderr)/, 'Node process'],
  [/\brequire\(/, 'CommonJS require'],
];

/** Where an import specifier of `from` points, for this repo's relative and @switchyard/shared imports. */
function resolve(from: string, spec: string): string | undefined {
  if (spec.startsWith('.')) return join(dirname(from), spec);
  if (spec === '@switchyard/shared') return join(repo, 'shared/src/index.ts');
  if (spec.startsWith('@switchyard/shared/')) return join(repo, 'shared/src', `${spec.slice(19)}.ts`);
  return undefined;
}

/** Every file reached from `entry` through value and type imports. */
function closure(entry: string): string[] {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    for (const m of readFileSync(f, 'utf8').matchAll(/(?:from|import)\s+['"]([^'"]+)['"]/g)) {
      const next = resolve(f, m[1]);
      if (next && existsSync(next)) todo.push(next);
    }
  }
  return [...seen];
}

describe.each(['client.ts', 'auth.ts'])('%s and its imports are runtime-free', (entry) => {
  const files = closure(join(here, entry));
  it('reaches the protocol codec but not the ONNX builders', () => {
    expect(files.length).toBeGreaterThan(0);
    if (entry === 'client.ts') {
      expect(files.some((f) => f.endsWith('shared/src/protocol/frames.ts'))).toBe(true);
      expect(files.some((f) => f.includes('shared/src/onnx/'))).toBe(false);
    }
  });
  it.each(files.map((f) => relative(repo, f)))('%s', (f) => {
    const text = readFileSync(join(repo, f), 'utf8');
    for (const [re, what] of FORBIDDEN) expect(re.test(text), `${f} uses ${what}`).toBe(false);
  });
});
