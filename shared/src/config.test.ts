import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, preset, PRESETS } from './config.ts';

describe('model config', () => {
  it('accepts both presets as they are', () => {
    for (const name of Object.keys(PRESETS))
      expect(parseConfig(preset(name))).toEqual(PRESETS[name as keyof typeof PRESETS]);
  });

  it('names the field, what was found and what is allowed', () => {
    const bad = preset('tiny') as any;
    bad.experts.width = 'wide';
    try {
      parseConfig(bad);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const msg = (e as Error).message;
      expect(msg).toContain('config.experts.width');
      expect(msg).toContain('number');
      expect(msg).toContain('"wide"');
    }
  });

  it('checks cross-field invariants', () => {
    const c = preset('tiny') as any;
    c.experts.top_k = 5;
    c.experts.heads = 3;
    c.memory.ltm_active = 1000;
    const err = (() => {
      try {
        parseConfig(c);
      } catch (e) {
        return e as ConfigError;
      }
    })()!;
    expect(err.issues).toHaveLength(3);
    expect(err.message).toMatch(/experts\.top_k: expected at most experts\.count \(4\), found 5/);
    expect(err.message).toMatch(/experts\.heads: expected a divisor of experts\.width \(32\), found 3/);
    expect(err.message).toMatch(/memory\.ltm_active: expected at most memory\.ltm_atoms \(256\), found 1000/);
  });

  it('rejects unknown fields and a wrong arch', () => {
    const c = { ...preset('tiny'), colour: 'blue', arch: 'gpt' };
    expect(() => parseConfig(c)).toThrow(/colour/);
    expect(() => parseConfig(c)).toThrow(/config\.arch: expected .*rru-moe.*, found "gpt"/);
  });

  it('rejects non-integer and out-of-range sizes', () => {
    const c = preset('tiny') as any;
    c.controller.hidden = 0.5;
    c.vocab = 10;
    expect(() => parseConfig(c)).toThrow(/controller\.hidden.*found 0\.5/);
    expect(() => parseConfig(c)).toThrow(/vocab.*found 10/);
  });

  it('lists the presets for an unknown one', () => {
    expect(() => preset('huge')).toThrow(/unknown preset "huge": expected one of tiny, r1-seed/);
  });

  it('returns a copy, so callers cannot edit the presets', () => {
    const c = preset('tiny') as any;
    c.experts.count = 99;
    expect(PRESETS.tiny.experts.count).toBe(4);
  });
});
