// The `rru-moe` v1 model configuration: one schema, two presets, and errors that name the field.
import { z } from 'zod';

const size = (min: number, max: number) => z.number().int().min(min).max(max);

export const ModelConfigSchema = z
  .object({
    arch: z.literal('rru-moe'),
    version: z.literal(1),
    // bytes 0-255, then <bos> <eos> <think> </think>; more ids are allowed for future specials
    vocab: size(260, 65_536),
    controller: z.object({
      embed: size(1, 16_384), // Dc
      hidden: size(1, 16_384), // H
    }),
    memory: z.object({
      dim: size(1, 16_384), // S
      stm_slots: size(1, 65_536),
      ltm_atoms: size(1, 1 << 20), // C
      ltm_active: size(1, 1 << 20), // a
    }),
    experts: z.object({
      count: size(1, 256), // E
      top_k: size(1, 256), // K
      width: size(1, 16_384), // D
      layers: size(1, 256),
      heads: size(1, 1024),
      ffn: size(1, 65_536),
      max_prompt: size(1, 1 << 20), // Lmax
    }),
    max_think_steps: size(0, 1 << 20),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.experts.top_k > c.experts.count)
      ctx.addIssue({
        code: 'custom',
        path: ['experts', 'top_k'],
        message: `expected at most experts.count (${c.experts.count})`,
      });
    if (c.experts.width % c.experts.heads !== 0)
      ctx.addIssue({
        code: 'custom',
        path: ['experts', 'heads'],
        message: `expected a divisor of experts.width (${c.experts.width})`,
      });
    if (c.memory.ltm_active > c.memory.ltm_atoms)
      ctx.addIssue({
        code: 'custom',
        path: ['memory', 'ltm_active'],
        message: `expected at most memory.ltm_atoms (${c.memory.ltm_atoms})`,
      });
  });

export type ModelConfig = z.infer<typeof ModelConfigSchema>;

export const PRESETS = {
  tiny: {
    arch: 'rru-moe',
    version: 1,
    vocab: 260,
    controller: { embed: 32, hidden: 64 },
    memory: { dim: 16, stm_slots: 16, ltm_atoms: 256, ltm_active: 8 },
    experts: { count: 4, top_k: 2, width: 32, layers: 2, heads: 2, ffn: 64, max_prompt: 128 },
    max_think_steps: 15,
  },
  'r1-seed': {
    arch: 'rru-moe',
    version: 1,
    vocab: 260,
    controller: { embed: 256, hidden: 512 },
    memory: { dim: 128, stm_slots: 64, ltm_atoms: 2048, ltm_active: 16 },
    experts: { count: 16, top_k: 4, width: 256, layers: 8, heads: 4, ffn: 1024, max_prompt: 1024 },
    max_think_steps: 15,
  },
} as const satisfies Record<string, ModelConfig>;

export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    readonly issues: string[],
  ) {
    super(message);
  }
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let v: unknown = input;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
}

/** Validates any JSON value as a config; throws ConfigError naming each bad field, what was found and what is allowed. */
export function parseConfig(input: unknown, source = 'config'): ModelConfig {
  const r = ModelConfigSchema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => {
    const path = i.path.length ? i.path.join('.') : '(root)';
    let allowed = i.message;
    if (i.code === 'unrecognized_keys') allowed = `no field(s) ${i.keys.join(', ')}`;
    return `${source}.${path}: expected ${allowed.replace(/^(Invalid input: )?expected /i, '')}, found ${describe(valueAt(input, i.path as PropertyKey[]))}`;
  });
  throw new ConfigError(`invalid model config:\n  ${issues.join('\n  ')}`, issues);
}

export function preset(name: string): ModelConfig {
  if (!(name in PRESETS))
    throw new ConfigError(`unknown preset "${name}": expected one of ${PRESET_NAMES.join(', ')}`, [
      `preset: expected one of ${PRESET_NAMES.join(', ')}, found ${JSON.stringify(name)}`,
    ]);
  return structuredClone(PRESETS[name as PresetName]) as ModelConfig;
}
