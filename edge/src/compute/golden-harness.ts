// Test-only: runs shared's golden sessions with an edge compute backend under test and shared's
// ReferenceExperts, and compares every step's numbers with the float32 reference fed the same inputs.
// Runtime-free (no node:, no cloudflare:), so workerd and Node tests share it.
import {
  compareGolden,
  GOLDEN_SESSIONS,
  runGoldenSession,
  type GoldenFile,
  type GoldenMismatch,
} from '@switchyard/shared/golden';
import type {
  ControllerState,
  EdgeComputeBackend,
  HeadOutput,
  SparseCode,
} from '@switchyard/shared/interfaces';
import { ReferenceExperts, ReferenceModel } from '@switchyard/shared/reference';
import { readWeights, splitWeights, type WeightsFile } from '@switchyard/shared/weights/index';
import { int8FastTolerance } from '../../../wasm/test/tolerance.ts';

export interface GoldenModel {
  /** The edge part of the golden file, as the Worker would bundle it. */
  edge: WeightsFile;
  /** The float32 reference over the whole file (edge weights dequantized as the golden run had them). */
  reference: ReferenceModel;
}

export function goldenModel(fullFileBytes: ArrayBuffer | Uint8Array): GoldenModel {
  const bytes = fullFileBytes instanceof Uint8Array ? fullFileBytes : new Uint8Array(fullFileBytes);
  const full = readWeights(bytes);
  const edge = readWeights(splitWeights(full, 1).edge);
  return { edge, reference: new ReferenceModel(full.config, full.params()) };
}

/** The largest |a − b| of each compared quantity, over every step of every session. */
export interface StepErrors {
  h: number;
  c: number;
  probs: number;
  logits: number;
  stmKey: number;
  stmValue: number;
  ltmWeights: number;
  /** Steps whose LTM code picked other atoms than the reference. */
  ltmAtomMismatches: number;
  /**
   * The largest |logit − reference| / bound, the bound being the int8 'fast' kernels' documented error for
   * W_o [h; m] (wasm/test/tolerance.ts): ≤ 1 where a backend keeps to that bound.
   */
  logitsOverFastBound: number;
  steps: number;
}

/** How far a path's run is from the golden data in its continuous quantities (tokens aside). */
export interface GoldenDeviation {
  /** Largest |checksum − golden| / max(1, |golden|), what compareGolden holds to tolerances.logits_checksum. */
  logitsChecksum: number;
  gate: number;
}

export interface GoldenRun {
  mismatches: GoldenMismatch[];
  deviation: GoldenDeviation;
  errors: StepErrors;
  /** The smallest top-1/top-2 logit gap the golden data records, where a flip would happen first. */
  minGoldenMargin: number;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

function cloneState(s: ControllerState): ControllerState {
  return {
    h: s.h.slice(),
    c: s.c.slice(),
    m: s.m.slice(),
    stm: { keys: s.stm.keys.slice(), values: s.stm.values.slice(), count: s.stm.count, next: s.stm.next },
  };
}

/**
 * The backend, with every call also made on the reference from the same inputs (so errors are per step,
 * not compounded) and the LTM code of each new h compared too. The run continues on the backend's outputs.
 */
function comparing(backend: EdgeComputeBackend, ref: ReferenceModel, e: StepErrors): EdgeComputeBackend {
  const code = (s: SparseCode, r: SparseCode) => {
    if (JSON.stringify(s.atoms) !== JSON.stringify(r.atoms)) e.ltmAtomMismatches++;
    else e.ltmWeights = Math.max(e.ltmWeights, maxAbsDiff(s.weights, r.weights));
  };
  const headW = ref.params.get('head.w')!.data;
  return {
    name: backend.name,
    async controller(state, token) {
      const want = ref.controller(cloneState(state), token);
      const got = await backend.controller(state, token);
      e.h = Math.max(e.h, maxAbsDiff(got.h, want.h));
      e.c = Math.max(e.c, maxAbsDiff(got.c, want.c));
      e.probs = Math.max(e.probs, maxAbsDiff(got.probs, ref.route(want.h).probs));
      code(await backend.ltmCode(got.h), ref.ltmCode(got.h));
      e.steps++;
      return got;
    },
    async head(h, m): Promise<HeadOutput> {
      const want = ref.head(h, m);
      const got = await backend.head(h, m);
      e.logits = Math.max(e.logits, maxAbsDiff(got.logits, want.logits));
      const hm = new Float32Array(h.length + m.length);
      hm.set(h);
      hm.set(m, h.length);
      const bound = int8FastTolerance(headW, ref.V, hm.length, hm, want.logits);
      got.logits.forEach((v, i) => {
        const r = Math.abs(v - want.logits[i]) / bound[i];
        e.logitsOverFastBound = Math.max(e.logitsOverFastBound, Number.isNaN(r) ? Infinity : r);
      });
      e.stmKey = Math.max(e.stmKey, maxAbsDiff(got.stmKey, want.stmKey));
      e.stmValue = Math.max(e.stmValue, maxAbsDiff(got.stmValue, want.stmValue));
      return got;
    },
    ltmCode: (h) => backend.ltmCode(h),
  };
}

/** Every golden session through `backend` (edge) and the reference experts; mismatches and step errors. */
export async function runGolden(
  backend: EdgeComputeBackend,
  model: GoldenModel,
  golden: GoldenFile,
): Promise<GoldenRun> {
  const ref = model.reference;
  const errors: StepErrors = {
    h: 0,
    c: 0,
    probs: 0,
    logits: 0,
    stmKey: 0,
    stmValue: 0,
    ltmWeights: 0,
    ltmAtomMismatches: 0,
    logitsOverFastBound: 0,
    steps: 0,
  };
  const deviation: GoldenDeviation = { logitsChecksum: 0, gate: 0 };
  const edge = comparing(backend, ref, errors);
  const mismatches: GoldenMismatch[] = [];
  let minGoldenMargin = Infinity;
  for (const [i, spec] of GOLDEN_SESSIONS.entries()) {
    const expected = golden.sessions[i];
    if (expected?.name !== spec.name)
      throw new Error(`golden session ${i}: expected "${spec.name}", found "${expected?.name}"`);
    const got = await runGoldenSession(ref.config, edge, new ReferenceExperts(ref), spec, ref.initialState());
    mismatches.push(...compareGolden(expected, got, golden.tolerances));
    expected.turns.forEach((t, ti) =>
      t.steps.forEach((s, si) => {
        if (!s.forced) minGoldenMargin = Math.min(minGoldenMargin, s.margin);
        const a = got.turns[ti]?.steps[si];
        if (!a) return;
        const d = Math.abs(a.logits_checksum - s.logits_checksum) / Math.max(1, Math.abs(s.logits_checksum));
        deviation.logitsChecksum = Math.max(deviation.logitsChecksum, d);
        s.gates.forEach((g, k) => (deviation.gate = Math.max(deviation.gate, Math.abs(g - a.gates[k]))));
      }),
    );
  }
  return { mismatches, deviation, errors, minGoldenMargin };
}
