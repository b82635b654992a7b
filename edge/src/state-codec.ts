// The controller state and a generation in progress as SQLite columns: vectors as little-endian f32 blobs,
// token lists as u16 blobs. Decoding checks every size against the model, so a session written by another
// model is refused instead of misread.
import type { ModelConfig } from '@switchyard/shared/config';
import type { GenerationState, Phase } from '@switchyard/shared/generate';
import type { ControllerState, StmState } from '@switchyard/shared/interfaces';
import { ConflictError } from './errors.ts';

export type Blob = ArrayBuffer;

export type CtrlColumns = {
  h: Blob;
  c: Blob;
  m: Blob;
  stm_keys: Blob;
  stm_values: Blob;
  stm_count: number;
  stm_next: number;
};

export type GenColumns = CtrlColumns & {
  y: number;
  phase: string;
  think_steps: number;
  steps: number;
  reasoning: Blob;
  answer: Blob;
  finish: string | null;
  rng: string;
  recalled: number;
};

const f32 = (v: Float32Array): Blob => v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as Blob;

function u16(tokens: readonly number[]): Blob {
  const a = new Uint16Array(tokens.length);
  a.set(tokens);
  return a.buffer;
}

export const tokensBlob = u16;

export function blobTokens(b: Blob): number[] {
  return Array.from(new Uint16Array(b.slice(0)));
}

function vec(b: Blob, n: number, what: string): Float32Array {
  if (b.byteLength !== n * 4)
    throw new ConflictError(
      `stored session state: ${what} has ${b.byteLength / 4} values, expected ${n} for the model now served; the session was created with another model`,
      'session_model_mismatch',
    );
  return new Float32Array(b.slice(0));
}

type StmSlotColumns = Pick<CtrlColumns, 'stm_keys' | 'stm_values'>;

/** The controller's columns but the STM's slots: what every step rewrites. */
function encodeCtrlState(s: ControllerState): Omit<CtrlColumns, keyof StmSlotColumns> {
  return { h: f32(s.h), c: f32(s.c), m: f32(s.m), stm_count: s.stm.count, stm_next: s.stm.next };
}

const encodeStmSlots = (s: StmState): StmSlotColumns => ({
  stm_keys: f32(s.keys),
  stm_values: f32(s.values),
});

export function encodeCtrl(s: ControllerState): CtrlColumns {
  return { ...encodeCtrlState(s), ...encodeStmSlots(s.stm) };
}

export function decodeCtrl(r: CtrlColumns, config: ModelConfig): ControllerState {
  const H = config.controller.hidden;
  const n = config.memory.stm_slots * config.memory.dim;
  return {
    h: vec(r.h, H, 'h'),
    c: vec(r.c, H, 'c'),
    m: vec(r.m, H, 'm'),
    stm: {
      keys: vec(r.stm_keys, n, 'stm keys'),
      values: vec(r.stm_values, n, 'stm values'),
      count: r.stm_count,
      next: r.stm_next,
    },
  };
}

export function encodeGen(g: GenerationState): GenColumns {
  return { ...encodeStep(g), ...encodeStmSlots(g.ctrl.stm) };
}

/** The columns a step rewrites (STEP_GEN_COLUMNS): everything but the STM's slots, which are not copied. */
export function encodeStep(g: GenerationState): Omit<GenColumns, keyof StmSlotColumns> {
  return {
    ...encodeCtrlState(g.ctrl),
    y: g.y,
    phase: g.phase,
    think_steps: g.thinkSteps,
    steps: g.steps,
    reasoning: u16(g.reasoning),
    answer: u16(g.answer),
    finish: g.finish,
    rng: JSON.stringify(g.rng),
    recalled: g.recalled ? 1 : 0,
  };
}

export function decodeGen(r: GenColumns, config: ModelConfig): GenerationState {
  return {
    ctrl: decodeCtrl(r, config),
    y: r.y,
    phase: r.phase as Phase,
    thinkSteps: r.think_steps,
    steps: r.steps,
    reasoning: blobTokens(r.reasoning),
    answer: blobTokens(r.answer),
    finish: r.finish as GenerationState['finish'],
    rng: JSON.parse(r.rng),
    recalled: r.recalled === 1,
  };
}

export const CTRL_COLUMNS = ['h', 'c', 'm', 'stm_keys', 'stm_values', 'stm_count', 'stm_next'] as const;
export const GEN_COLUMNS = [
  ...CTRL_COLUMNS,
  'y',
  'phase',
  'think_steps',
  'steps',
  'reasoning',
  'answer',
  'finish',
  'rng',
  'recalled',
] as const;

/** The turn row's columns a step rewrites: the STM's slots go to the step's own row as a delta instead. */
export const STEP_GEN_COLUMNS = GEN_COLUMNS.filter(
  (c): c is Exclude<(typeof GEN_COLUMNS)[number], 'stm_keys' | 'stm_values'> =>
    c !== 'stm_keys' && c !== 'stm_values',
);

/**
 * What one step wrote to the STM, as a blob: for each slot whose key or value changed, its index (u32) and
 * then its key and value (dim f32 each), in the platform's byte order like every vector blob here (little
 * endian on every runtime this serves from). A step writes one slot (a few more on the step that recalls
 * long-term memory), so persisting this instead of the whole STM cuts a step's write from 64 KB to ~1 KB at
 * r1-seed's 64 slots × 128.
 */
export function encodeStmDelta(before: StmState, after: StmState, dim: number): Blob {
  const words = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
  const [k0, k1, v0, v1] = [words(before.keys), words(after.keys), words(before.values), words(after.values)];
  if (k0.length !== k1.length || v0.length !== v1.length || k0.length !== v0.length || k0.length % dim)
    throw new RangeError(
      `STM delta: expected two STMs of the same [slots, ${dim}] shape, found ${k0.length} and ${k1.length} key values`,
    );
  const changed: number[] = [];
  for (let slot = 0; slot < k0.length / dim; slot++) {
    // Bit patterns, not float equality: a NaN or a -0 written over a 0 still counts as a write.
    for (let i = slot * dim; i < (slot + 1) * dim; i++)
      if (k0[i] !== k1[i] || v0[i] !== v1[i]) {
        changed.push(slot);
        break;
      }
  }
  const entry = 1 + 2 * dim;
  const out = new Uint32Array(changed.length * entry);
  const f = new Float32Array(out.buffer);
  changed.forEach((slot, j) => {
    out[j * entry] = slot;
    f.set(after.keys.subarray(slot * dim, (slot + 1) * dim), j * entry + 1);
    f.set(after.values.subarray(slot * dim, (slot + 1) * dim), j * entry + 1 + dim);
  });
  return out.buffer;
}

/** Writes a stored step's STM delta (encodeStmDelta) over `stm`, checking its size and slot indices. */
export function applyStmDelta(stm: StmState, delta: Blob, dim: number): void {
  const entry = 1 + 2 * dim;
  const slots = stm.keys.length / dim;
  if (delta.byteLength % (entry * 4))
    throw new ConflictError(
      `stored session state: an STM delta of ${delta.byteLength} bytes, expected a multiple of ${entry * 4} (slot index + key + value of ${dim} values); the session was written by another model`,
      'session_model_mismatch',
    );
  const words = new Uint32Array(delta.slice(0));
  const f = new Float32Array(words.buffer);
  for (let j = 0; j < words.length; j += entry) {
    const slot = words[j];
    if (slot >= slots)
      throw new ConflictError(
        `stored session state: an STM delta writes slot ${slot}, expected a slot in [0, ${slots}); the session was written by another model`,
        'session_model_mismatch',
      );
    stm.keys.set(f.subarray(j + 1, j + 1 + dim), slot * dim);
    stm.values.set(f.subarray(j + 1 + dim, j + entry), slot * dim);
  }
}
