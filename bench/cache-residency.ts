// Where the prompt cache should live, measured: one r1-seed expert's cached step with its K/V handed to
// onnxruntime as ordinary (CPU) tensors, as the GPU tier does today, against the same step with the cache
// left where the prefill produced it (preferredOutputLocation 'gpu-buffer': on a GPU provider the K/V never
// leave the device), and the prefill a step without any cache has to redo. The runs interleave, and the two
// steps must give the same y. On the CPU provider 'gpu-buffer' is ignored, so there the difference is the
// per-step copy of the cache into fresh tensors.
// `npx tsx bench/cache-residency.ts [--provider webgpu|cuda|cpu] [--prompt 256]`; also part of `npm run bench`.
// JSON to bench/results/cache-residency[-PROVIDER].json.
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import {
  buildExpertPrefill,
  buildExpertStep,
  GraphBuilder,
  preset,
  readWeights,
  stepCacheInputs,
  weightSourceFromFile,
} from '@switchyard/shared';
import { sampleH, samplePrompt } from '../gpu-backend/src/samples.ts';
import {
  benchProvider,
  printTable,
  quantile,
  seededExpertShard,
  writeResult,
  type BenchProvider,
} from './lib.ts';

export interface CacheResidencyResult {
  provider: string;
  promptLength: number;
  runs: number;
  /** Median ms: the step fed CPU tensors, the step fed the prefill's own outputs, the prefill. */
  stepCacheFromCpuMs: number;
  stepCacheResidentMs: number;
  prefillMs: number;
  /** (prefill + step) / step for each: what the prompt cache saves. */
  cacheSpeedupFromCpu: number;
  cacheSpeedupResident: number;
  /** max |y_resident − y_from_cpu|: the two paths must agree. */
  maxAbsDiff: number;
  /** Where the prefill's K/V ended up (gpu-buffer on a GPU provider). */
  cacheLocation: string;
}

export async function run(
  o: { provider?: BenchProvider; promptLength?: number; runs?: number } = {},
): Promise<CacheResidencyResult> {
  const provider = o.provider ?? 'cpu';
  const L = o.promptLength ?? 256;
  const runs = o.runs ?? 12;
  const config = preset('r1-seed');
  const file = readWeights(seededExpertShard(config, 1, [0]));
  // float32 weights, as the tier's default --compute f32 builds them
  const src = weightSourceFromFile(file, 'f32');
  const { layers, heads, width: D } = config.experts;
  const dh = D / heads;
  const H = config.controller.hidden;
  const options = (extra: ort.InferenceSession.SessionOptions = {}): ort.InferenceSession.SessionOptions => ({
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    ...extra,
  });
  const prefillGraph = buildExpertPrefill(src, 0);
  const resident = await ort.InferenceSession.create(
    prefillGraph,
    options({ preferredOutputLocation: { out: 'cpu', k: 'gpu-buffer', v: 'gpu-buffer' } }),
  );
  const prefill = await ort.InferenceSession.create(prefillGraph, options());
  // The step reads one [1, heads, L, dh] tensor per layer; the prefill emits [layers, heads, L, dh]. A
  // Gather per layer, on the device, splits it there.
  const g = new GraphBuilder();
  const k = g.input('k', 'float32', [layers, heads, 'L', dh]);
  const v = g.input('v', 'float32', [layers, heads, 'L', dh]);
  const where: Record<string, 'gpu-buffer'> = {};
  for (let l = 0; l < layers; l++) {
    const n = stepCacheInputs(l);
    g.output(g.op('Gather', [k, g.ints([l])], { axis: 0 }), n.k, 'float32', [1, heads, 'L', dh]);
    g.output(g.op('Gather', [v, g.ints([l])], { axis: 0 }), n.v, 'float32', [1, heads, 'L', dh]);
    [where[n.k], where[n.v]] = ['gpu-buffer', 'gpu-buffer'];
  }
  const split = await ort.InferenceSession.create(
    g.build({ graphName: 'split-cache', doc: 'bench/cache-residency.ts' }),
    options({ preferredOutputLocation: where }),
  );
  const step = await ort.InferenceSession.create(buildExpertStep(src, 0), options());
  try {
    const tokens = new ort.Tensor('int64', BigInt64Array.from(samplePrompt(5, L), BigInt), [L]);
    const h = new ort.Tensor('float32', sampleH(5, H), [1, H]);
    const common = { h, prompt_len: new ort.Tensor('int64', BigInt64Array.from([BigInt(L)]), [1]) };
    const kept = await resident.run({ tokens });
    const onDevice = { ...common, ...(await split.run({ k: kept.k, v: kept.v })) };
    const cpu = await prefill.run({ tokens });
    const size = heads * L * dh;
    // Fresh tensors per step, as the tier's worker copies each row's cache into its step inputs.
    const fromCpu = () => {
      const feeds: Record<string, ort.Tensor> = { ...common };
      for (let l = 0; l < layers; l++) {
        const n = stepCacheInputs(l);
        const part = (t: ort.Tensor) =>
          new ort.Tensor('float32', (t.data as Float32Array).slice(l * size, (l + 1) * size), [
            1,
            heads,
            L,
            dh,
          ]);
        [feeds[n.k], feeds[n.v]] = [part(cpu.k), part(cpu.v)];
      }
      return feeds;
    };
    const ya = (await step.run(fromCpu())).y.data as Float32Array;
    const yb = (await step.run(onDevice)).y.data as Float32Array;
    let maxAbsDiff = 0;
    for (let i = 0; i < H; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(ya[i] - yb[i]));
    const t = { cpu: [] as number[], dev: [] as number[], pre: [] as number[] };
    const time = async (xs: number[], f: () => Promise<unknown>) => {
      const s = performance.now();
      await f();
      xs.push(performance.now() - s);
    };
    for (let i = 0; i < runs + 2; i++) {
      await time(t.cpu, () => step.run(fromCpu()));
      await time(t.dev, () => step.run(onDevice));
      await time(t.pre, () => prefill.run({ tokens }));
    }
    const med = (xs: number[]) => quantile(xs.slice(2), 0.5); // the first two warm up
    const [a, b, p] = [med(t.cpu), med(t.dev), med(t.pre)];
    const result: CacheResidencyResult = {
      provider,
      promptLength: L,
      runs,
      stepCacheFromCpuMs: a,
      stepCacheResidentMs: b,
      prefillMs: p,
      cacheSpeedupFromCpu: (p + a) / a,
      cacheSpeedupResident: (p + b) / b,
      maxAbsDiff,
      cacheLocation: kept.k.location,
    };
    printTable(
      `prompt cache residency, r1-seed expert 0, prompt ${L}, onnxruntime-node ${provider} (medians of ${runs})`,
      ['run', 'ms', '(prefill + step) / step'],
      [
        [
          'step, cache handed over as CPU tensors (the tier today)',
          a,
          `${result.cacheSpeedupFromCpu.toFixed(1)}×`,
        ],
        [
          `step, cache left where the prefill put it (${result.cacheLocation})`,
          b,
          `${result.cacheSpeedupResident.toFixed(1)}×`,
        ],
        ['prefill (what a step without a cache redoes)', p, ''],
      ],
    );
    console.log(`\nthe two steps agree: max |Δy| ${maxAbsDiff.toExponential(2)}`);
    console.log(
      `wrote ${writeResult(provider === 'cpu' ? 'cache-residency' : `cache-residency-${provider}`, result)}`,
    );
    return result;
  } finally {
    await Promise.all([resident, prefill, split, step].map((s) => s.release()));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { provider: { type: 'string' }, prompt: { type: 'string' } } });
  await run({
    provider: benchProvider('cache-residency', values.provider),
    promptLength: values.prompt === undefined ? undefined : Number(values.prompt),
  });
}
