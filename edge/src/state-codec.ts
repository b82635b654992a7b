// The controller state and a generation in progress as SQLite columns: vectors as little-endian f32 blobs,
// token lists as u16 blobs. Decoding checks every size against the model, so a session written by another
// model is refused instead of misread.
import type { ModelConfig } from '@switchyard/shared/config';
import type { GenerationState, Phase } from '@switchyard/shared/generate';
import type { ControllerState } from '@switchyard/shared/interfaces';
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

export function encodeCtrl(s: ControllerState): CtrlColumns {
  return {
    h: f32(s.h),
    c: f32(s.c),
    m: f32(s.m),
    stm_keys: f32(s.stm.keys),
    stm_values: f32(s.stm.values),
    stm_count: s.stm.count,
    stm_next: s.stm.next,
  };
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
  return {
    ...encodeCtrl(g.ctrl),
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
