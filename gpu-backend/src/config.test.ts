import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULTS, parseBytes, parseExpertList, parseOptions, usage } from './config.ts';

const base = ['--model', 'm.safetensors'];
const opts = (argv: string[], env: Record<string, string> = {}, cores = 8) => {
  const r = parseOptions(argv, env, cores);
  if (r.help) throw new Error('unexpected --help');
  return r.options;
};

describe('parseOptions', () => {
  it('fills defaults and splits the cores between workers', () => {
    const o = opts([...base, '--secret', 's', '--workers', '2']);
    expect(o).toMatchObject({
      model: 'm.safetensors',
      experts: undefined,
      port: DEFAULTS.port,
      host: '127.0.0.1',
      provider: 'auto',
      workers: 2,
      threads: 4,
      compute: 'f32',
      cacheBytes: 1 << 30,
      maxBatch: 64,
      secret: 's',
      insecureNoAuth: false,
      spin: false,
    });
  });

  it('reads SWITCHYARD_GPU_* variables, and flags win over them', () => {
    const env = {
      SWITCHYARD_GPU_MODEL: 'env.safetensors',
      SWITCHYARD_GPU_EXPERTS: '0-2,7',
      SWITCHYARD_GPU_PORT: '9000',
      SWITCHYARD_GPU_CACHE_BYTES: '512MiB',
      SWITCHYARD_GPU_INSECURE_NO_AUTH: 'true',
      SWITCHYARD_GPU_PROVIDER: 'cuda',
      SWITCHYARD_GPU_SPIN: 'yes',
    };
    const o = opts(['--port', '9001'], env);
    expect(o).toMatchObject({
      model: 'env.safetensors',
      experts: [0, 1, 2, 7],
      port: 9001,
      cacheBytes: 512 * 2 ** 20,
      insecureNoAuth: true,
      provider: 'cuda',
      spin: true,
    });
  });

  it('refuses to run without a secret unless auth is explicitly off', () => {
    expect(() => opts(base)).toThrow(/expected --secret S .* pass --insecure-no-auth explicitly/);
    expect(opts([...base, '--insecure-no-auth']).insecureNoAuth).toBe(true);
    expect(() => opts([...base, '--insecure-no-auth'], { SWITCHYARD_GPU_SECRET: 'x' })).toThrow(/found both/);
    expect(() => opts(base, { SWITCHYARD_GPU_INSECURE_NO_AUTH: 'maybe' })).toThrow(
      'SWITCHYARD_GPU_INSECURE_NO_AUTH: expected one of 1, true, yes, on, 0, false, no, off, found "maybe"',
    );
  });

  it.each([
    [['--port', '70000'], '--port: expected an integer in 0..65535, found "70000"'],
    [['--max-batch', '0'], '--max-batch: expected an integer in 1..4096, found "0"'],
    [['--max-prefill-tokens', '0'], '--max-prefill-tokens: expected an integer in 1..1048576, found "0"'],
    [['--workers', '1.5'], '--workers: expected an integer in 1..64, found "1.5"'],
    [['--provider', 'gpu'], '--provider: expected one of auto, cuda, webgpu, cpu, found "gpu"'],
    [['--compute', 'int4'], '--compute: expected one of f32, int8, int8-dynamic, found "int4"'],
    [['--max-body-bytes', '10'], '--max-body-bytes: expected at least 1024 bytes, found 10'],
    [['--bogus'], /Unknown option '--bogus'/],
  ])('rejects %j', (argv, message) => {
    expect(() => opts([...base, '--secret', 's', ...argv])).toThrow(message);
    expect(() => opts([...base, '--secret', 's', ...argv])).toThrow(ConfigError);
  });

  it('requires a model, and answers --help', () => {
    expect(() => opts(['--secret', 's'])).toThrow(/--model: a weights file is required/);
    expect(parseOptions(['--help'])).toEqual({ help: true });
    expect(usage()).toMatch(/--cache-bytes .*\[SWITCHYARD_GPU_CACHE_BYTES\]/);
  });
});

describe('value parsers', () => {
  it('reads expert lists and ranges, sorted, and refuses overlaps', () => {
    expect(parseExpertList('5,0-2')).toEqual([0, 1, 2, 5]);
    expect(() => parseExpertList('0-3,2')).toThrow('--experts: expert 2 is listed more than once in "0-3,2"');
    expect(() => parseExpertList('3-1')).toThrow(/range 3-1 is empty/);
    expect(() => parseExpertList('')).toThrow(/found ""/);
  });

  it('reads byte counts with units', () => {
    expect(parseBytes('65536', 'x')).toBe(65536);
    expect(parseBytes('64KiB', 'x')).toBe(65536);
    expect(parseBytes('1.5GB', 'x')).toBe(1.5e9);
    expect(parseBytes('2 gib', 'x')).toBe(2 * 2 ** 30);
    expect(() => parseBytes('3 furlongs', 'x')).toThrow(/x: expected a byte count/);
  });
});
