// One ORT worker thread: builds the served experts' graphs from the shared weights bytes, opens a session
// per graph, and runs jobs one at a time. session.run blocks its thread, which is why it lives here and not
// on the HTTP thread.
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import {
  buildExpertPrefill,
  buildExpertStateless,
  buildExpertStep,
  dequantize,
  readWeights,
  type StoredTensor,
  type WeightSource,
} from '@switchyard/shared';
import type {
  Job,
  JobResult,
  PrefillJob,
  ResolvedProvider,
  StatelessJob,
  StepJob,
  WorkerInit,
  WorkerReady,
  WorkerReply,
  WorkerRequest,
} from './jobs.ts';

interface ExpertSessions {
  prefill: ort.InferenceSession;
  step: ort.InferenceSession;
  stateless: ort.InferenceSession;
}

/**
 * The weights as the graphs should hold them. With 'f32' every int8 tensor is dequantized here, once: the
 * graph then computes with exactly the reference's dequantized weights, and ORT's CPU MatMul runs far faster
 * on float32 than its int8-weight kernel (measured 2–8× per step on the dev machine).
 */
function weightSource(init: WorkerInit): WeightSource {
  const file = readWeights(init.weights, { verify: false });
  if (init.compute === 'int8') return { config: file.config, get: (n) => file.stored(n) };
  return {
    config: file.config,
    get(name: string): StoredTensor {
      const t = file.stored(name);
      return t.scheme === 'f32' ? t : { scheme: 'f32', ...dequantize(t) };
    },
  };
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
      // This fusion turns the step graph's per-layer Gather of past_k/past_v into one Split that copies the
      // whole cache single-threaded: a batch-64 step (r1-seed, prompt 64) spent 36 of 90 ms in it, 10 ms
      // in the Gathers it replaces.
      optimization: { disable_specified_optimizers: 'GatherSliceToSplitFusion' },
    },
  };
}

const PROVIDER_LISTS: Record<ResolvedProvider, string[]> = {
  cuda: ['cuda'],
  webgpu: ['webgpu'],
  cpu: ['cpu'],
};

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
    if (this.provider)
      return ort.InferenceSession.create(
        model,
        sessionOptions(this.threads, this.spin, PROVIDER_LISTS[this.provider]),
      );
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
  private readonly D: number;
  private readonly layers: number;
  // Grown, never shrunk: a step batch reuses them, so steady state allocates nothing per batch. Positions
  // past a row's prompt keep older finite values, which the graph's mask hides.
  private pastK = new Float32Array(0);
  private pastV = new Float32Array(0);

  private constructor(
    readonly provider: ResolvedProvider,
    readonly fallback: string | undefined,
    sessions: Map<number, ExpertSessions>,
    src: WeightSource,
  ) {
    this.sessions = sessions;
    this.H = src.config.controller.hidden;
    this.D = src.config.experts.width;
    this.layers = src.config.experts.layers;
  }

  static async create(init: WorkerInit): Promise<Worker> {
    const src = weightSource(init);
    const factory = new SessionFactory(init.provider, init.threads, init.spin);
    const sessions = new Map<number, ExpertSessions>();
    for (const e of init.experts) {
      sessions.set(e, {
        prefill: await factory.open(buildExpertPrefill(src, e)),
        step: await factory.open(buildExpertStep(src, e)),
        stateless: await factory.open(buildExpertStateless(src, e)),
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
    const L = job.tokens.length;
    const tokens = new ort.Tensor(
      'int64',
      BigInt64Array.from(job.tokens, (t) => BigInt(t)),
      [L],
    );
    const out = await this.expert(job.expert).prefill.run({ tokens }, ['k', 'v']);
    const n = this.layers * L * this.D;
    // Shared memory: the cache keeps these, and any worker's step batch reads them without a copy.
    const shared = new SharedArrayBuffer(2 * n * 4);
    const k = new Float32Array(shared, 0, n);
    const v = new Float32Array(shared, n * 4, n);
    k.set(out.k.data as Float32Array);
    v.set(out.v.data as Float32Array);
    return { kind: 'prefill', length: L, k, v };
  }

  private async step(job: StepJob): Promise<JobResult> {
    const { H, D, layers } = this;
    const B = job.rows.length;
    const P = Math.max(...job.rows.map((r) => r.length));
    const n = layers * B * P * D;
    if (this.pastK.length < n) {
      this.pastK = new Float32Array(n);
      this.pastV = new Float32Array(n);
    }
    const pastK = this.pastK.subarray(0, n);
    const pastV = this.pastV.subarray(0, n);
    job.rows.forEach((r, b) => {
      const span = r.length * D;
      for (let l = 0; l < layers; l++) {
        const at = (l * B + b) * P * D;
        pastK.set(r.k.subarray(l * span, (l + 1) * span), at);
        pastV.set(r.v.subarray(l * span, (l + 1) * span), at);
      }
    });
    const out = await this.expert(job.expert).step.run(
      {
        h: new ort.Tensor('float32', job.h, [B, H]),
        past_k: new ort.Tensor('float32', pastK, [layers, B, P, D]),
        past_v: new ort.Tensor('float32', pastV, [layers, B, P, D]),
        prompt_len: new ort.Tensor(
          'int64',
          BigInt64Array.from(job.rows, (r) => BigInt(r.length)),
          [B],
        ),
      },
      ['y'],
    );
    return { kind: 'step', y: Float32Array.from(out.y.data as Float32Array) };
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
