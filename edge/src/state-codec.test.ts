import { describe, expect, it } from 'vitest';
import type { StmState } from '@switchyard/shared/interfaces';
import { ReferenceModel } from '@switchyard/shared/reference';
import { applyStmDelta, encodeStmDelta } from './state-codec.ts';

const dim = 3;
const slots = 4;
const empty = (): StmState => ({
  keys: new Float32Array(slots * dim),
  values: new Float32Array(slots * dim),
  count: 0,
  next: 0,
});
const copy = (s: StmState): StmState => ({ ...s, keys: s.keys.slice(), values: s.values.slice() });
const write = (s: StmState, x: number) =>
  ReferenceModel.stmWrite(s, Float32Array.of(x, x + 1, x + 2), Float32Array.of(-x, -x - 1, -x - 2));

describe('STM deltas', () => {
  it('carry exactly the slots a step wrote, and replay to the same STM', () => {
    const before = empty();
    for (const x of [1, 2, 3, 4, 5]) write(before, x); // full, wrapped once: next = 1
    const after = copy(before);
    write(after, 10); // slot 1
    write(after, 20); // slot 2
    const delta = encodeStmDelta(before, after, dim);
    expect(delta.byteLength).toBe(2 * (1 + 2 * dim) * 4);
    expect(new Uint32Array(delta)[0]).toBe(1);
    const replayed = copy(before);
    applyStmDelta(replayed, delta, dim);
    expect(Array.from(replayed.keys)).toEqual(Array.from(after.keys));
    expect(Array.from(replayed.values)).toEqual(Array.from(after.values));
  });

  it('count a write of the same number with another sign as a change, and nothing as nothing', () => {
    const before = empty();
    const after = copy(before);
    after.values[dim] = -0;
    expect(encodeStmDelta(before, after, dim).byteLength).toBe((1 + 2 * dim) * 4);
    expect(encodeStmDelta(before, copy(before), dim).byteLength).toBe(0);
  });

  it('refuse STMs of different shapes, a truncated delta and a slot out of range, saying what was expected', () => {
    const small: StmState = { ...empty(), keys: new Float32Array(dim), values: new Float32Array(dim) };
    expect(() => encodeStmDelta(empty(), small, dim)).toThrow(
      /expected two STMs of the same \[slots, 3\] shape/,
    );
    const after = empty();
    write(after, 1);
    const delta = encodeStmDelta(empty(), after, dim);
    expect(() => applyStmDelta(empty(), delta.slice(0, 8), dim)).toThrow(/expected a multiple of 28/);
    const far = new Uint32Array(delta.slice(0));
    far[0] = slots;
    expect(() => applyStmDelta(empty(), far.buffer, dim)).toThrow(/slot 4, expected a slot in \[0, 4\)/);
  });
});
