// shared/ is imported by the Worker (workerd) and by Node: it must not depend on either runtime.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('.', import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') && !p.includes('test-utils') ? [p] : [];
  });
}

const FORBIDDEN: [RegExp, string][] = [
  [/from\s+['"](node:|fs['"]|path['"]|crypto['"]|worker_threads|child_process)/, 'a Node module import'],
  [/from\s+['"]cloudflare:/, 'a cloudflare: import'],
  [/\bBuffer\./, 'Node Buffer'],
  [/\bprocess\.(env|argv|exit|stdout|stderr)/, 'Node process'],
  [/\brequire\(/, 'CommonJS require'],
];

describe('shared/src is runtime-free', () => {
  const files = sources(root);
  it('has sources to check', () => expect(files.length).toBeGreaterThan(5));
  for (const f of files)
    it(relative(root, f), () => {
      const text = readFileSync(f, 'utf8');
      for (const [re, what] of FORBIDDEN)
        expect(re.test(text), `${relative(root, f)} uses ${what}`).toBe(false);
    });
});
