import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, it } from 'vitest';
import { preset } from '../config.ts';
import { initRandom } from '../init.ts';
import { Rng } from '../random.ts';
import { ReferenceModel, type PromptCache } from '../reference.ts';
import {
  buildExpertPrefill,
  buildExpertPrefillBatch,
  buildExpertStateless,
  buildExpertStep,
  INT8_DYNAMIC_REL_TOL,
  stepCacheInputs,
  toHeadsLayout,
} from './expert.ts';
import { graphSummary } from './graph.ts';
import {
  createSession,
  dequantizedParams,
  f32,
  i64,
  maxAbsDiff,
  PARITY_SESSION_OPTIONS,
  RUNTIMES,
  type Feed,
} from './ort-test-utils.ts';
import { weightSourceFromParams, type WeightSource } from './weights.ts';

// Float32 graphs sum in another order than the reference (which accumulates in float64) and ORT fuses
// ops (FusedMatMul, BiasGelu); measured ≤ 2e-6 on this CPU. 1e-4 leaves room for other kernels (FMA, SIMD
// widths) and is still ~100× below what a wrong mask, position or weight layout produces.
const F32_TOL = 1e-4;
// int8 graphs dequantize to exactly the reference's dequantized weights, so they meet the float32 bound;
// ORT's default int8-activation MatMulNBits (accuracy level 4) misses it by ~2e-2.
const INT8_TOL = 1e-4;
const TOL = { f32: F32_TOL, int8: INT8_TOL } as const;

const cfg = preset('tiny');
const params = initRandom(cfg, 11);
const EXPERT = 2;
const { width: D, layers, heads } = cfg.experts;
const H = cfg.controller.hidden;
const LENGTHS = [1, 7, 20];
const P = 24;

const rng = new Rng(5);
const prompts = LENGTHS.map((n) => Array.from({ length: n }, () => Math.floor(rng.next() * cfg.vocab)));
const hs = LENGTHS.map(() => Float32Array.from({ length: H }, () => Math.tanh(rng.normal())));

interface Setup {
  src: WeightSource;
  ref: ReferenceModel;
  prefill: Uint8Array;
  prefillBatch: Uint8Array;
  step: Uint8Array;
  stateless: Uint8Array;
}

const setups = new Map<string, Setup>();
function setup(scheme: 'f32' | 'int8'): Setup {
  let s = setups.get(scheme);
  if (!s) {
    const src = weightSourceFromParams(cfg, params, scheme);
    // int8 graphs are compared with the reference run on exactly the weights they dequantize to.
    const ref = new ReferenceModel(cfg, scheme === 'f32' ? params : dequantizedParams(src, params.keys()));
    s = {
      src,
      ref,
      prefill: buildExpertPrefill(src, EXPERT),
      prefillBatch: buildExpertPrefillBatch(src, EXPERT),
      step: buildExpertStep(src, EXPERT),
      stateless: buildExpertStateless(src, EXPERT),
    };
    setups.set(scheme, s);
  }
  return s;
}

/**
 * Row caches as the step graph's per-layer past_k_{l}/past_v_{l} [B, heads, P, dh]; positions past each
 * prompt hold junk the mask must hide. `heads` is the config's head count.
 */
function padCaches(caches: PromptCache[], P: number, heads: number): Record<string, Feed> {
  const B = caches.length;
  const D = caches[0].k[0].length / caches[0].length;
  const dh = D / heads;
  const junk = new Rng(99);
  const pack = (pick: (c: PromptCache) => Float32Array) => {
    const out = Float32Array.from({ length: B * heads * P * dh }, () => 3 * junk.normal());
    caches.forEach((c, b) => {
      const x = toHeadsLayout(pick(c), c.length, heads); // [heads, L, dh]
      for (let hd = 0; hd < heads; hd++)
        out.set(x.subarray(hd * c.length * dh, (hd + 1) * c.length * dh), (b * heads + hd) * P * dh);
    });
    return f32(out, [B, heads, P, dh]);
  };
  const feeds: Record<string, Feed> = { prompt_len: i64(caches.map((c) => c.length)) };
  for (let l = 0; l < caches[0].k.length; l++) {
    const name = stepCacheInputs(l);
    feeds[name.k] = pack((c) => c.k[l]);
    feeds[name.v] = pack((c) => c.v[l]);
  }
  return feeds;
}

/** A reference cache's per-layer [L, D] tensors as the prefill graph emits them: [layers, heads, L, dh]. */
const headsOf = (xs: Float32Array[], L: number, n = heads) => concat(xs.map((x) => toHeadsLayout(x, L, n)));

const concat = (xs: Float32Array[]) => Float32Array.from(xs.flatMap((x) => Array.from(x)));
const rowOf = (y: Float32Array, b: number, n = H) => y.subarray(b * n, (b + 1) * n);

describe.each(RUNTIMES)('expert graphs in %s', (runtime) => {
  describe.each(['f32', 'int8'] as const)('with %s weights', (scheme) => {
    const tol = TOL[scheme];

    it('prefill gives the reference out, k and v for prompts of length 1, 7 and 20', async () => {
      const { ref, prefill } = setup(scheme);
      const s = await createSession(runtime, prefill);
      for (const prompt of prompts) {
        const want = ref.expertPrefill(EXPERT, prompt);
        const got = await s.run({ tokens: i64(prompt) });
        const L = prompt.length;
        expect(got.out.dims).toEqual([L, D]);
        expect(got.k.dims).toEqual([layers, heads, L, D / heads]);
        expect(got.v.dims).toEqual([layers, heads, L, D / heads]);
        expect(maxAbsDiff(got.out.data, want.out)).toBeLessThanOrEqual(tol);
        expect(maxAbsDiff(got.k.data, headsOf(want.k, L))).toBeLessThanOrEqual(tol);
        expect(maxAbsDiff(got.v.data, headsOf(want.v, L))).toBeLessThanOrEqual(tol);
      }
      await s.release();
    });

    it('batched prefill gives each of 3 prompts (1, 7, 20) padded to P=24 its own k and v', async () => {
      const { ref, prefillBatch } = setup(scheme);
      const s = await createSession(runtime, prefillBatch);
      const pad = new Rng(8); // any valid token ids: the mask keeps them out of the real positions
      const tokens = prompts.flatMap((p) => [
        ...p,
        ...Array.from({ length: P - p.length }, () => Math.floor(pad.next() * cfg.vocab)),
      ]);
      const got = await s.run({
        tokens: i64(tokens, [prompts.length, P]),
        prompt_len: i64(prompts.map((p) => p.length)),
      });
      const dh = D / heads;
      expect(got.k.dims).toEqual([layers, prompts.length, heads, P, dh]);
      expect(got.v.dims).toEqual([layers, prompts.length, heads, P, dh]);
      // Row b's first L positions of every layer and head: [layers, heads, L, dh] like the single prefill.
      const rowOfBatch = (x: ArrayLike<number>, b: number, L: number) =>
        Float32Array.from({ length: layers * heads * L * dh }, (_, i) => {
          const [lh, j] = [Math.floor(i / (L * dh)), i % (L * dh)];
          const [l, hd] = [Math.floor(lh / heads), lh % heads];
          return x[((l * prompts.length + b) * heads + hd) * P * dh + j];
        });
      prompts.forEach((p, b) => {
        const want = ref.expertPrefill(EXPERT, p);
        const L = p.length;
        expect(maxAbsDiff(rowOfBatch(got.k.data, b, L), headsOf(want.k, L))).toBeLessThanOrEqual(tol);
        expect(maxAbsDiff(rowOfBatch(got.v.data, b, L), headsOf(want.v, L))).toBeLessThanOrEqual(tol);
      });
      await s.release();
    });

    it('step batches 3 rows with their own prompt lengths (1, 7, 20) padded to P=24', async () => {
      const { ref, step } = setup(scheme);
      const caches = prompts.map((p) => ref.expertPrefill(EXPERT, p));
      const s = await createSession(runtime, step);
      const got = await s.run({ h: f32(concat(hs), [hs.length, H]), ...padCaches(caches, P, heads) });
      expect(got.y.dims).toEqual([hs.length, H]);
      caches.forEach((cache, b) => {
        const want = ref.expertStep(EXPERT, hs[b], cache);
        expect(maxAbsDiff(rowOf(got.y.data, b), want), `row ${b} (L=${cache.length})`).toBeLessThanOrEqual(
          tol,
        );
      });
      await s.release();
    });

    it('prefill outputs fed to step reproduce the reference, as the GPU tier chains them', async () => {
      const { ref, prefill, step } = setup(scheme);
      const pre = await createSession(runtime, prefill);
      // The prefill outputs go in as they come out: row b's slice [l] of k/v is placed at [b, :, 0..L) of
      // past_k_{l}/past_v_{l}, head by head.
      const B = prompts.length;
      const dh = D / heads;
      const past = Array.from({ length: 2 * layers }, () => new Float32Array(B * heads * P * dh));
      for (const [b, prompt] of prompts.entries()) {
        const o = await pre.run({ tokens: i64(prompt) });
        const L = prompt.length;
        for (let l = 0; l < layers; l++)
          for (let hd = 0; hd < heads; hd++) {
            const from = (l * heads + hd) * L * dh;
            const to = (b * heads + hd) * P * dh;
            past[2 * l].set(o.k.data.subarray(from, from + L * dh), to);
            past[2 * l + 1].set(o.v.data.subarray(from, from + L * dh), to);
          }
      }
      const feeds: Record<string, Feed> = { prompt_len: i64(LENGTHS) };
      for (let l = 0; l < layers; l++) {
        feeds[stepCacheInputs(l).k] = f32(past[2 * l], [B, heads, P, dh]);
        feeds[stepCacheInputs(l).v] = f32(past[2 * l + 1], [B, heads, P, dh]);
      }
      const st = await createSession(runtime, step);
      const got = await st.run({ h: f32(concat(hs), [hs.length, H]), ...feeds });
      prompts.forEach((prompt, b) => {
        const want = ref.expertStep(EXPERT, hs[b], ref.expertPrefill(EXPERT, prompt));
        expect(maxAbsDiff(rowOf(got.y.data, b), want), `row ${b}`).toBeLessThanOrEqual(tol);
      });
      await pre.release();
      await st.release();
    });

    it('stateless equals prefill then step for each of 3 padded rows', async () => {
      const { ref, stateless } = setup(scheme);
      const tokens = prompts.flatMap((p) => [...p, ...Array<number>(P - p.length).fill(0)]);
      const s = await createSession(runtime, stateless);
      const got = await s.run({
        tokens: i64(tokens, [prompts.length, P]),
        prompt_len: i64(LENGTHS),
        h: f32(concat(hs), [hs.length, H]),
      });
      expect(got.y.dims).toEqual([hs.length, H]);
      prompts.forEach((prompt, b) => {
        const want = ref.expertStep(EXPERT, hs[b], ref.expertPrefill(EXPERT, prompt));
        expect(maxAbsDiff(rowOf(got.y.data, b), want), `row ${b}`).toBeLessThanOrEqual(tol);
      });
      await s.release();
    });
  });

  it('prefill takes the longest prompt (Lmax tokens, every prompt position)', async () => {
    const { ref, prefill } = setup('f32');
    const prompt = Array.from({ length: cfg.experts.max_prompt }, (_, i) => (i * 7) % cfg.vocab);
    const s = await createSession(runtime, prefill);
    const got = await s.run({ tokens: i64(prompt) });
    expect(maxAbsDiff(got.out.data, ref.expertPrefill(EXPERT, prompt).out)).toBeLessThanOrEqual(F32_TOL);
    await s.release();
  });

  it('step and stateless take the smallest batch: B=1, P=1', async () => {
    const { ref, step, stateless } = setup('f32');
    const cache = ref.expertPrefill(EXPERT, prompts[0]);
    const want = ref.expertStep(EXPERT, hs[0], cache);
    const st = await createSession(runtime, step);
    const a = await st.run({ h: f32(hs[0], [1, H]), ...padCaches([cache], 1, heads) });
    expect(maxAbsDiff(a.y.data, want)).toBeLessThanOrEqual(F32_TOL);
    const sl = await createSession(runtime, stateless);
    const b = await sl.run({ tokens: i64(prompts[0], [1, 1]), prompt_len: i64([1]), h: f32(hs[0], [1, H]) });
    expect(maxAbsDiff(b.y.data, want)).toBeLessThanOrEqual(F32_TOL);
    await st.release();
    await sl.release();
  });

  it('a stateless row does not depend on its padding or on the other rows', async () => {
    const { stateless } = setup('f32');
    const s = await createSession(runtime, stateless);
    const run = (pad: number, rows: number[]) =>
      s.run({
        tokens: i64(
          rows.flatMap((b) => [...prompts[b], ...Array<number>(P - prompts[b].length).fill(pad)]),
          [rows.length, P],
        ),
        prompt_len: i64(rows.map((b) => LENGTHS[b])),
        h: f32(concat(rows.map((b) => hs[b])), [rows.length, H]),
      });
    const alone = await run(0, [1]);
    const batched = await run(255, [2, 1, 0]);
    expect(maxAbsDiff(alone.y.data, rowOf(batched.y.data, 1))).toBeLessThanOrEqual(F32_TOL);
    await s.release();
  });
});

describe.each(RUNTIMES)('int8-dynamic matrix products in %s', (runtime) => {
  const { src, ref } = setup('int8');
  const o = { matmul: 'int8-dynamic' } as const;
  /** Largest |got - want| over the rows, as a share of the rows' largest |want|. */
  const relErr = (got: Float32Array, wants: Float32Array[]) => {
    const scale = Math.max(...wants.flatMap((w) => Array.from(w, Math.abs)));
    return maxAbsDiff(got, concat(wants)) / scale;
  };

  it('step (3 rows padded to P=24) and stateless stay within INT8_DYNAMIC_REL_TOL of the reference', async () => {
    const caches = prompts.map((p) => ref.expertPrefill(EXPERT, p));
    const wants = caches.map((c, b) => ref.expertStep(EXPERT, hs[b], c));
    const st = await createSession(runtime, buildExpertStep(src, EXPERT, o));
    const a = await st.run({ h: f32(concat(hs), [hs.length, H]), ...padCaches(caches, P, heads) });
    const sl = await createSession(runtime, buildExpertStateless(src, EXPERT, o));
    const tokens = prompts.flatMap((p) => [...p, ...Array<number>(P - p.length).fill(0)]);
    const b = await sl.run({
      tokens: i64(tokens, [prompts.length, P]),
      prompt_len: i64(LENGTHS),
      h: f32(concat(hs), [hs.length, H]),
    });
    // It is an approximation: not exact, and not off by more than the documented bound.
    for (const got of [a.y.data, b.y.data]) {
      const err = relErr(got, wants);
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThanOrEqual(INT8_DYNAMIC_REL_TOL);
    }
    await st.release();
    await sl.release();
  });

  it('prefill keys and values stay within the bound too', async () => {
    const s = await createSession(runtime, buildExpertPrefill(src, EXPERT, o));
    const prompt = prompts[2];
    const got = await s.run({ tokens: i64(prompt) });
    const want = ref.expertPrefill(EXPERT, prompt);
    expect(relErr(got.k.data, [headsOf(want.k, prompt.length)])).toBeLessThanOrEqual(INT8_DYNAMIC_REL_TOL);
    expect(relErr(got.v.data, [headsOf(want.v, prompt.length)])).toBeLessThanOrEqual(INT8_DYNAMIC_REL_TOL);
    await s.release();
  });
});

describe('int8-dynamic graph structure', () => {
  it('multiplies int8 weights with MatMulInteger, leaves float32 weights float, and refuses unknown modes', () => {
    const q = graphSummary(buildExpertStep(setup('int8').src, EXPERT, { matmul: 'int8-dynamic' })).ops;
    // Four weight matrices per layer, plus W_in and W_out.
    expect(q.MatMulInteger).toBe(4 * layers + 2);
    expect(q.DynamicQuantizeLinear).toBe(4 * layers + 2);
    const f = graphSummary(buildExpertStep(setup('f32').src, EXPERT, { matmul: 'int8-dynamic' })).ops;
    expect(f.MatMulInteger).toBeUndefined();
    expect(() => buildExpertStep(setup('f32').src, EXPERT, { matmul: 'int4' as unknown as 'float' })).toThrow(
      /matmul: expected one of float, int8-dynamic, found "int4"/,
    );
  });
});

describe('ORT session options for int8 graphs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-onnx-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** accuracy_level of every MatMulNBits node ORT put into its optimized copy of the prefill graph. */
  async function fusedAccuracyLevels(extra: Record<string, unknown>): Promise<number[]> {
    const path = join(dir, `opt-${JSON.stringify(extra).replace(/\W/g, '')}.onnx`);
    const { prefill } = setup('int8');
    const s = await createSession('onnxruntime-node', prefill, {
      ...PARITY_SESSION_OPTIONS,
      extra,
      optimizedModelFilePath: path,
    });
    await s.release();
    const m = onnxProto.onnx.ModelProto.decode(new Uint8Array(readFileSync(path)));
    return (
      (m.graph?.node ?? [])
        .filter((n) => n.opType === 'MatMulNBits')
        // an absent attribute means 0, MatMulNBits's default
        .map((n) => Number(n.attribute?.find((a) => a.name === 'accuracy_level')?.i ?? 0))
    );
  }

  it('ORT by default fuses DequantizeLinear→MatMul into int8-activation MatMulNBits (level 4)', async () => {
    const levels = await fusedAccuracyLevels({});
    expect(levels.length).toBeGreaterThan(0);
    expect(new Set(levels)).toEqual(new Set([4]));
  });

  it('the parity options keep the fused kernels in float32 (level 0) and within INT8_TOL', async () => {
    const levels = await fusedAccuracyLevels(PARITY_SESSION_OPTIONS.extra!);
    expect(levels.length).toBeGreaterThan(0);
    expect(new Set(levels)).toEqual(new Set([0]));
    const { ref, prefill } = setup('int8');
    const s = await createSession('onnxruntime-node', prefill);
    const got = await s.run({ tokens: i64(prompts[2]) });
    expect(maxAbsDiff(got.out.data, ref.expertPrefill(EXPERT, prompts[2]).out)).toBeLessThanOrEqual(INT8_TOL);
    await s.release();
  });
});

describe('r1-seed sized expert step', () => {
  it('builds, runs with B=2, P=8 on onnxruntime-node and matches the reference', async () => {
    const big = preset('r1-seed');
    const p = initRandom(big, 3, (s) => s.tier === 'expert-shared' || s.expert === 0);
    const src = weightSourceFromParams(big, p, 'int8');
    const model = buildExpertStep(src, 0);
    const bigH = big.controller.hidden;
    const bigD = big.experts.width;
    const { layers: bigLayers, heads: bigHeads } = big.experts;
    const cacheDims = ['B', bigHeads, 'P', bigD / bigHeads];
    expect(graphSummary(model).inputs.map((i) => [i.name, i.dims])).toEqual([
      ['h', ['B', bigH]],
      ['prompt_len', ['B']],
      ...Array.from({ length: bigLayers }, (_, l) => [
        [`past_k_${l}`, cacheDims],
        [`past_v_${l}`, cacheDims],
      ]).flat(),
    ]);
    const ref = new ReferenceModel(big, dequantizedParams(src, p.keys()), 'experts');
    const r = new Rng(8);
    const rows = [3, 8].map((n) => ({
      cache: ref.expertPrefill(
        0,
        Array.from({ length: n }, () => Math.floor(r.next() * big.vocab)),
      ),
      h: Float32Array.from({ length: bigH }, () => Math.tanh(r.normal())),
    }));
    const s = await createSession('onnxruntime-node', model);
    const got = await s.run({
      h: f32(concat(rows.map((x) => x.h)), [rows.length, bigH]),
      ...padCaches(
        rows.map((x) => x.cache),
        8,
        bigHeads,
      ),
    });
    await s.release();
    expect(got.y.dims).toEqual([rows.length, bigH]);
    expect(got.y.data.every(Number.isFinite)).toBe(true);
    rows.forEach((x, b) => {
      const want = ref.expertStep(0, x.h, x.cache);
      expect(maxAbsDiff(rowOf(got.y.data, b, bigH), want), `row ${b}`).toBeLessThanOrEqual(INT8_TOL);
    });
  });
});
