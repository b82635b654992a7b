// The fused relaxed-dot path in Node. Node 20's baseline compiler (Liftoff) miscompiles the fused
// i32x4.relaxed_dot_i8x16_i7x16_add_s on AVX-VNNI CPUs, so there the probe in Kernels picks the unfused
// form and kernels.test.ts never runs the fused loop. This file turns Liftoff off before compiling, so the
// optimizing compiler, which gets it right, compiles the module from the start. workerd runs the fused path
// (with 8-bit parts on AVX-VNNI) in edge/src/compute/kernel-cases.test.ts.
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import { dequantize, matVec, quantizeInt8, Rng } from '@switchyard/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import { CASE_FILES, toStored, type AllCases } from '../test/cases.ts';
import { int8FastTolerance } from '../test/tolerance.ts';
import { createKernels, type Kernels } from './kernels.ts';
import { enableRelaxedSimd, ensureBuilt, kernelBytes } from './node-loader.ts';

v8.setFlagsFromString('--no-liftoff');
const relaxedOk = enableRelaxedSimd();

const cases = Object.fromEntries(
  CASE_FILES.map((name) => [
    name,
    JSON.parse(readFileSync(new URL(`../test/cases/${name}.json`, import.meta.url), 'utf8')),
  ]),
) as unknown as AllCases;

/** The module with an extra custom section: V8 reuses a module compiled earlier from the same bytes. */
function salted(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const name = new TextEncoder().encode('switchyard-no-liftoff');
  const section = [0, name.length + 1, name.length, ...name];
  const out = new Uint8Array(bytes.length + section.length);
  out.set(bytes);
  out.set(section, bytes.length);
  return out;
}

let k: Kernels;

beforeAll(async () => {
  ensureBuilt();
  const bytes = kernelBytes();
  k = await createKernels({ simd: bytes.simd, relaxed: salted(bytes.relaxed) }, { flavor: 'relaxed-simd' });
});

function violations(got: ArrayLike<number>, expected: ArrayLike<number>, tol: ArrayLike<number>): string[] {
  const out: string[] = [];
  for (let i = 0; i < got.length; i++) {
    const e = Math.fround(expected[i]);
    if (!(Math.abs(got[i] - e) <= tol[i])) out.push(`[${i}] got ${got[i]}, expected ${e} ± ${tol[i]}`);
  }
  return out.slice(0, 8);
}

describe('relaxed-dot on the fused instruction (Node, optimizing compiler only)', () => {
  it('Node runs relaxed SIMD, and the probe finds the fused form right', () => {
    expect(relaxedOk).toBe(true);
    expect(k.fusedDot).toBe(true);
    expect(['fused-8bit', 'fused-7bit']).toContain(k.relaxedDot);
  });

  it.each(cases['matvec-int8'].cases.map((c) => [c.name, c] as const))('int8 case: %s', (_, c) => {
    if (!c.tolerance.fast) return; // no bound for this case's x (subnormal); kernels.test.ts runs it
    const m = k.loadMatrix(toStored(c.w, c.rows, c.cols), {
      mode: 'relaxed-dot',
      bias: c.bias ? Float32Array.from(c.bias) : undefined,
    });
    expect(violations(k.matVec(m, Float32Array.from(c.x)), c.expected, c.tolerance.fast)).toEqual([]);
  });

  it('an odd number of 16-column chunks and an even one, at r1-seed widths', () => {
    const rng = new Rng(21);
    for (const [rows, cols] of [
      [2048, 896],
      [260, 1024],
      [36, 80],
    ]) {
      const t = quantizeInt8({
        shape: [rows, cols],
        data: Float32Array.from({ length: rows * cols }, () => rng.normal() * 0.03),
      });
      const x = Float32Array.from({ length: cols }, () => rng.normal());
      const w = dequantize(t).data;
      const ref = matVec(w, rows, cols, x);
      const y = k.matVec(k.loadMatrix(t, { mode: 'relaxed-dot' }), x);
      expect(violations(y, ref, int8FastTolerance(w, rows, cols, x, ref)), `${rows}×${cols}`).toEqual([]);
    }
  });
});
