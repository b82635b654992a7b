// The train command's option checks: each bad combination is a usage error that names what was expected,
// raised before any training starts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../shared/cli/command.ts';
import { train } from './cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'sy-train-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function usage(v: Record<string, string | boolean>): Promise<string> {
  const err = await Promise.resolve()
    .then(() => train.run({ checkpoint: join(dir, 'none.ckpt'), out: dir, ...v }, []))
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(err).toBeInstanceOf(UsageError);
  return (err as Error).message;
}

describe('switchyard train options', () => {
  it('refuses a bad --mix, naming the tasks', async () => {
    expect(await usage({ mix: 'syllogisms=3' })).toMatch(
      /^--mix: .*expected task=factor with a task among add, sub, mul, bool, syllogism, compare, grid, relpos/,
    );
  });

  it('refuses --init with --config, and an --init file that is not a weights file', async () => {
    expect(await usage({ init: 'a.safetensors', config: 'b.json' })).toContain('expected one of them');
    const junk = join(dir, 'junk.safetensors');
    const text = 'junk\n';
    writeFileSync(junk, text);
    await expect(
      Promise.resolve().then(() => train.run({ init: junk, checkpoint: join(dir, 'x.ckpt'), out: dir }, [])),
    ).rejects.toThrow(
      `"${junk}": file: expected at least 8 bytes (the u64 little-endian header length), found ${text.length}`,
    );
  });

  it('refuses an unknown --relpos-trace, naming the formats', async () => {
    expect(await usage({ 'relpos-trace': 'role' })).toBe(
      '--relpos-trace: relpos trace "role": expected one of walk, roles',
    );
  });

  it('keeps a resumed run as it was: --init, --mix, --config and --relpos-trace are for new runs', async () => {
    for (const k of ['init', 'mix', 'config', 'relpos-trace'])
      expect(await usage({ resume: true, [k]: 'x' })).toBe(
        `--${k}: only for a new run; a resumed run keeps its checkpoint's model and data`,
      );
  });
});
