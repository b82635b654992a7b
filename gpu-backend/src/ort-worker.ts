// One ORT worker thread: builds the served experts' graphs from the shared weights bytes, opens a session
// per graph, and runs jobs one at a time. session.run blocks its thread, which is why it lives here and not
// on the HTTP thread.
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import {
  buildExpertPrefillBatch,
  buildExpertStateless,
  buildExpertStep,
  readWeights,
  stepCacheInputs,
  weightSourceFromFile,
  type ExpertGraphOptions,
  type WeightSource,
} from '@switchyard/shared';
import type {
  Job,
  JobResult,
  PrefillJob,
  PromptKv,
  ResolvedProvider,
  StatelessJob,
  StepJob,
  WorkerInit,
  WorkerReady,
  WorkerReply,
  WorkerRequest,
} from './jobs.ts';
import {
  checkCacheRow,
  packLayer,
  planStepGroups,
  stepGroupCost,
  type CacheRow,
  type CacheShape,
  type GroupCost,
} from './step-batch.ts';

interface ExpertSessions {
  prefill: ort.InferenceSession;
  step: ort.InferenceSession;
  stateless: ort.InferenceSession;
}

/**
 * The weights as the graphs should hold them. With 'f32' every int8 tensor is dequantized here, once: the
 * graph then computes with exactly the reference's dequantized weights, and ORT's CPU MatMul runs far faster
 * on float32 than its int8-weight kernel (measured 2–8× per step on the dev machine). 'int8' and
 * 'int8-dynamic' keep the stored int8 tensors.
 */
function weightSource(init: WorkerInit): WeightSource {
  return weightSourceFromFile(
    readWeights(init.weights, { verify: false }),
    init.compute === 'f32' ? 'f32' : 'stored',
  );
}

function sessionOptions(
  threads: number,
  spin: boolean,
  providers: string[],
  quiet = false,
): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: providers,
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    // A probe that is allowed to fail must not print ORT's own error line next to ours.
    logSeverityLevel: quiet ? 4 : 3,
    // ORT would otherwise rewrite int8 DequantizeLinear→MatMul into MatMulNBits that quantizes activations.
    extra: {
      session: {
        qdq_matmulnbits_accuracy_level: '0',
        // Spinning threads compete with the HTTP thread and anything else on the machine; measured 2–3×
        // slower steps with two spinning threads on a busy two-core box.
        intra_op: { allow_spinning: spin ? '1' : '0' },
      },
    },
  };
}

const PROVIDER_LISTS: Record<ResolvedProvider, string[]> = {
  cuda: ['cuda'],
  webgpu: ['webgpu'],
  cpu: ['cpu'],
};

/** What each provider needs from the machine, for the message when it cannot start. */
const PROVIDER_NEEDS: Record<ResolvedProvider, string> = {
  cuda:
    'expected libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so beside onnxruntime_binding.node, ' +
    'and CUDA 12 with cuDNN 9 on the library path (gpu-backend/README.md, "CUDA")',
  webgpu:
    'expected a GPU with a Vulkan driver: libvulkan.so.1 and the vendor ICD (VK_DRIVER_FILES) (gpu-backend/README.md, "WebGPU")',
  cpu: 'the CPU provider is built into onnxruntime-node; this is a bug or a damaged install',
};

class ProviderError extends Error {
  override name = 'ProviderError';
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e)
    .split('\n')[0]
    .trim();
}

/** Opens one session; for 'auto' the first call decides CUDA or CPU and remembers it. */
class SessionFactory {
  provider: ResolvedProvider | undefined;
  fallback: string | undefined;

  constructor(
    private readonly requested: WorkerInit['provider'],
    private readonly threads: number,
    private readonly spin: boolean,
  ) {
    if (requested !== 'auto') this.provider = requested;
  }

  async open(model: Uint8Array): Promise<ort.InferenceSession> {
    if (this.provider) {
      const provider = this.provider;
      return ort.InferenceSession.create(
        model,
        sessionOptions(this.threads, this.spin, PROVIDER_LISTS[provider]),
      ).catch((e: unknown) => {
        throw new ProviderError(`provider ${provider}: ${firstLine(e)}; ${PROVIDER_NEEDS[provider]}`);
      });
    }
    try {
      const s = await ort.InferenceSession.create(
        model,
        sessionOptions(this.threads, this.spin, ['cuda', 'cpu'], true),
      );
      this.provider = 'cuda';
      return s;
    } catch (e) {
      // onnxruntime-node throws instead of falling back when the CUDA provider libraries are missing.
      this.provider = 'cpu';
      this.fallback = firstLine(e);
      return ort.InferenceSession.create(model, sessionOptions(this.threads, this.spin, ['cpu']));
    }
  }
}

class Worker {
  private readonly sessions: Map<number, ExpertSessions>;
  private readonly H: number;
  private readonly shape: CacheShape;
  private readonly cost: GroupCost;
  // The step inputs of a batch, every layer's K then V, each [B, heads, P, dh]. Grown, never shrunk, so
  // steady state allocates nothing per batch; positions past a row's prompt keep older finite values, which
  // the graph's mask hides.
  private past = new Float32Array(0);

  private constructor(
    readonly provider: ResolvedProvider,
    readonly fallback: string | undefined,
    sessions: Map<number, ExpertSessions>,
    src: WeightSource,
  ) {
    this.sessions = sessions;
    const x = src.config.experts;
    this.H = src.config.controller.hidden;
    this.shape = { layers: x.layers, heads: x.heads, dh: x.width / x.heads };
    this.cost = stepGroupCost(x);
  }

  static async create(init: WorkerInit): Promise<Worker> {
    const src = weightSource(init);
    const factory = new SessionFactory(init.provider, init.threads, init.spin);
    const o: ExpertGraphOptions = { matmul: init.compute === 'int8-dynamic' ? 'int8-dynamic' : 'float' };
    const sessions = new Map<number, ExpertSessions>();
    for (const e of init.experts) {
      sessions.set(e, {
        prefill: await factory.open(buildExpertPrefillBatch(src, e, o)),
        step: await factory.open(buildExpertStep(src, e, o)),
        stateless: await factory.open(buildExpertStateless(src, e, o)),
      });
    }
    return new Worker(factory.provider ?? 'cpu', factory.fallback, sessions, src);
  }

  private expert(e: number): ExpertSessions {
    const s = this.sessions.get(e);
    if (!s)
      throw new RangeError(`expert ${e}: not loaded in this worker; it holds [${[...this.sessions.keys()]}]`);
    return s;
  }

  async run(job: Job): Promise<JobResult> {
    switch (job.kind) {
      case 'prefill':
        return this.prefill(job);
      case 'step':
        return this.step(job);
      case 'stateless':
        return this.stateless(job);
    }
  }

  private async prefill(job: PrefillJob): Promise<JobResult> {
    const B = job.prompts.length;
    const empty = job.prompts.findIndex((t) => t.length === 0);
    if (B === 0 || empty >= 0)
      throw new RangeError(
        `prefill: expected one or more prompts of at least one token, found ${B === 0 ? 'no prompts' : `an empty prompt at ${empty}`}`,
      );
    const P = Math.max(...job.prompts.map((t) => t.length));
    // Padding repeats token 0, a valid id; the graph's mask keeps it out of every real position.
    const tokens = new BigInt64Array(B * P);
    job.prompts.forEach((t, b) => t.forEach((id, i) => (tokens[b * P + i] = BigInt(id))));
    const out = await this.expert(job.expert).prefill.run(
      {
        tokens: new ort.Tensor('int64', tokens, [B, P]),
        prompt_len: new ort.Tensor(
          'int64',
          BigInt64Array.from(job.prompts, (t) => BigInt(t.length)),
          [B],
        ),
      },
      ['k', 'v'],
    );
    const k = out.k.data as Float32Array;
    const v = out.v.data as Float32Array;
    return { kind: 'prefill', caches: job.prompts.map((t, b) => this.unpadRow(k, v, B, P, b, t.length)) };
  }

  /**
   * Row b of the batch's k, v [layers, B, heads, P, dh] as its own cache [layers, heads, L, dh], in shared
   * memory: the cache keeps it, and any worker's step batch reads it without a copy.
   */
  private unpadRow(k: Float32Array, v: Float32Array, B: number, P: number, b: number, L: number): PromptKv {
    const { layers, heads, dh } = this.shape;
    const n = layers * heads * L * dh;
    const shared = new SharedArrayBuffer(2 * n * 4);
    const row = { length: L, k: new Float32Array(shared, 0, n), v: new Float32Array(shared, n * 4, n) };
    for (let l = 0; l < layers; l++)
      for (let hd = 0; hd < heads; hd++) {
        const from = ((l * B + b) * heads + hd) * P * dh;
        const to = (l * heads + hd) * L * dh;
        row.k.set(k.subarray(from, from + L * dh), to);
        row.v.set(v.subarray(from, from + L * dh), to);
      }
    return row;
  }

  private async step(job: StepJob): Promise<JobResult> {
    const B = job.rows.length;
    for (const r of job.rows) checkCacheRow(r, this.shape);
    const groups =
      B === 1
        ? [[0]]
        : planStepGroups(
            job.rows.map((r) => r.length),
            this.cost,
          );
    const time = { packUs: 0 };
    if (groups.length === 1 && groups[0].every((i, b) => i === b)) {
      const y = await this.stepGroup(job.expert, job.rows, job.h, time);
      return { kind: 'step', y: Float32Array.from(y), runs: 1, packUs: Math.round(time.packUs) };
    }
    const { H } = this;
    const y = new Float32Array(B * H);
    for (const g of groups) {
      const h = new Float32Array(g.length * H);
      g.forEach((i, b) => h.set(job.h.subarray(i * H, (i + 1) * H), b * H));
      const out = await this.stepGroup(
        job.expert,
        g.map((i) => job.rows[i]),
        h,
        time,
      );
      g.forEach((i, b) => y.set(out.subarray(b * H, (b + 1) * H), i * H));
    }
    return { kind: 'step', y, runs: groups.length, packUs: Math.round(time.packUs) };
  }

  /** One step-graph run over rows padded to their longest prompt; adds its copying time to `time`. */
  private async stepGroup(
    expert: number,
    rows: CacheRow[],
    h: Float32Array,
    time: { packUs: number },
  ): Promise<Float32Array> {
    const { H, shape } = this;
    const { layers, heads, dh } = shape;
    const t0 = performance.now();
    const B = rows.length;
    const P = Math.max(...rows.map((r) => r.length));
    const feeds: Record<string, ort.Tensor> = {
      h: new ort.Tensor('float32', h, [B, H]),
      prompt_len: new ort.Tensor(
        'int64',
        BigInt64Array.from(rows, (r) => BigInt(r.length)),
        [B],
      ),
    };
    const dims = [B, heads, P, dh];
    const n = B * heads * P * dh;
    if (this.past.length < 2 * layers * n) this.past = new Float32Array(2 * layers * n);
    for (let l = 0; l < layers; l++) {
      const name = stepCacheInputs(l);
      for (const [i, which] of (['k', 'v'] as const).entries()) {
        // The rows' caches sit in SharedArrayBuffers, which onnxruntime-node refuses as input ("Invalid
        // argument"), so even a single row is copied: once, into the buffer ORT reads.
        const data = this.past.subarray((2 * l + i) * n, (2 * l + i + 1) * n);
        packLayer(rows, which, l, P, shape, data);
        feeds[name[which]] = new ort.Tensor('float32', data, dims);
      }
    }
    time.packUs += (performance.now() - t0) * 1000;
    const out = await this.expert(expert).step.run(feeds, ['y']);
    return out.y.data as Float32Array;
  }

  private async stateless(job: StatelessJob): Promise<JobResult> {
    const out = await this.expert(job.expert).stateless.run(
      {
        tokens: new ort.Tensor('int64', job.tokens, [job.batch, job.width]),
        prompt_len: new ort.Tensor('int64', job.promptLen, [job.batch]),
        h: new ort.Tensor('float32', job.h, [job.batch, this.H]),
      },
      ['y'],
    );
    return { kind: 'stateless', y: Float32Array.from(out.y.data as Float32Array) };
  }
}

function describe(e: unknown): { name: string; message: string } {
  const err = e as Error;
  return { name: err?.name ?? 'Error', message: String(err?.message ?? e) };
}

// ORT prints failed provider loads itself before throwing; the pool logs one line of its own instead.
ort.env.logLevel = 'fatal';

const port = parentPort!;
const init = workerData as WorkerInit;
let worker: Worker;
try {
  worker = await Worker.create(init);
  port.postMessage({
    type: 'ready',
    provider: worker.provider,
    fallback: worker.fallback,
  } satisfies WorkerReady);
} catch (e) {
  port.postMessage({ type: 'init-failed', error: describe(e) } satisfies WorkerReady);
  process.exit(1);
}

port.on('message', async (msg: WorkerRequest) => {
  const t0 = performance.now();
  try {
    const result = await worker.run(msg.job);
    const computeUs = Math.round((performance.now() - t0) * 1000);
    const reply: WorkerReply = { type: 'done', id: msg.id, result, computeUs };
    // Step and stateless outputs are fresh buffers: hand them over instead of copying.
    const transfer = result.kind === 'prefill' ? [] : [result.y.buffer as ArrayBuffer];
    port.postMessage(reply, transfer);
  } catch (e) {
    port.postMessage({ type: 'failed', id: msg.id, error: describe(e) } satisfies WorkerReply);
  }
});
