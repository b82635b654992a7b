// Wires the server together: the weights file, the worker pool, the prompt cache, the batcher, the
// service, the routes and the HTTP listener; and takes it apart again in order on shutdown.
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readWeights, type ModelConfig } from '@switchyard/shared';
import { RequestVerifier } from './auth.ts';
import { StepBatcher } from './batcher.ts';
import { ConfigError, type ServerOptions } from './config.ts';
import { createApp, type App } from './http.ts';
import type { ResolvedProvider } from './jobs.ts';
import { serverMetrics, type ServerMetrics } from './metrics.ts';
import { PrefillBatcher } from './prefill-batcher.ts';
import { PromptCache } from './prompt-cache.ts';
import { routes } from './routes.ts';
import { AdmissionQueue, ExpertService } from './service.ts';
import { WorkerPool } from './worker-pool.ts';

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly experts: readonly number[];
  readonly provider: ResolvedProvider;
  /** Why `--provider auto` fell back to CPU, when it did. */
  readonly fallback?: string;
  readonly config: ModelConfig;
  readonly metrics: ServerMetrics;
  /** One line that says the server is up, and how it is set up. */
  readonly readyLine: string;
  /** Stops accepting, lets in-flight requests and batches finish, stops the workers. */
  close(): Promise<void>;
}

/** "0-3,5" for [0, 1, 2, 3, 5]. */
export function formatExperts(ids: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ids.length;) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j++;
    parts.push(j > i ? `${ids[i]}-${ids[j]}` : `${ids[i]}`);
    i = j + 1;
  }
  return parts.join(',');
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  let x = n;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return `${u ? x.toFixed(1) : x} ${units[u]}`;
}

export async function loadWeights(path: string): Promise<Uint8Array> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ConfigError(`--model: cannot read "${path}": ${(e as Error).message}`);
  }
  // Shared memory, so that every worker reads the same bytes without a copy each.
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.length));
  shared.set(bytes);
  return shared;
}

/** `weights`: o.model's bytes when the caller has already read them with loadWeights (they are not read again). */
export async function startServer(
  o: ServerOptions,
  log: (line: string) => void = console.error,
  weights?: Uint8Array,
): Promise<RunningServer> {
  weights ??= await loadWeights(o.model);
  // Checks the whole file (structure and checksums) once here; the workers then skip the checksums.
  const file = readWeights(weights);
  const config = file.config;
  const held = file.experts();
  if (held.length === 0)
    throw new ConfigError(
      `--model: "${o.model}" holds no experts (it is a ${file.shard.kind} file); expected a full model or an expert shard`,
    );
  const experts = o.experts ?? held;
  const missing = experts.filter((e) => !held.includes(e));
  if (missing.length)
    throw new ConfigError(
      `--experts: expected ids the file holds, [${formatExperts(held)}]; found [${missing.join(', ')}] not in "${o.model}"`,
    );

  const pool = await WorkerPool.start({
    size: o.workers,
    weights,
    experts,
    provider: o.provider,
    threads: o.threads,
    spin: o.spin,
    compute: o.compute,
    log,
  });
  if (pool.fallback) log(`switchyard-gpu: provider auto: CUDA unavailable (${pool.fallback}); using CPU`);

  const metrics = serverMetrics();
  const cache = new PromptCache(o.cacheBytes);
  const admission = new AdmissionQueue(o.queueLimit);
  const batcher = new StepBatcher(pool, {
    maxBatch: o.maxBatch,
    maxWaitMs: o.maxWaitMs,
    hidden: config.controller.hidden,
    onDispatch: (expert, rows) => {
      admission.release(rows);
      metrics.batchSize.observe({ expert }, rows);
    },
    onBatch: (expert, _rows, computeUs, ok) => {
      if (ok) metrics.batchComputeSeconds.observe({ expert }, computeUs / 1e6);
    },
  });
  const prefills = new PrefillBatcher(pool, {
    maxTokens: o.maxPrefillTokens,
    onBatch: (expert, prompts, _us, ok) => {
      if (ok) metrics.prefillBatchSize.observe({ expert }, prompts);
    },
  });
  const service = new ExpertService({
    config,
    served: experts,
    cache,
    batcher,
    prefills,
    runner: pool,
    admission,
    metrics,
  });

  const r = metrics.registry;
  r.sampled(
    'switchyard_gpu_queue_depth',
    'Expert rows admitted and not yet handed to a worker.',
    'gauge',
    () => admission.size,
  );
  r.sampled(
    'switchyard_gpu_batcher_queued_rows',
    'Rows waiting in the per-expert batch queues.',
    'gauge',
    () => batcher.queued,
  );
  r.sampled(
    'switchyard_gpu_prefill_queued_prompts',
    'Prompts waiting in the per-expert prefill queues.',
    'gauge',
    () => prefills.queued,
  );
  r.sampled('switchyard_gpu_workers_busy', 'ORT workers running a job.', 'gauge', () => pool.busy);
  r.sampled('switchyard_gpu_cache_hits_total', 'Prompt-cache hits.', 'counter', () => cache.stats().hits);
  r.sampled(
    'switchyard_gpu_cache_misses_total',
    'Prompt-cache misses.',
    'counter',
    () => cache.stats().misses,
  );
  r.sampled(
    'switchyard_gpu_cache_evictions_total',
    'Prompt-cache entries evicted to stay under budget.',
    'counter',
    () => cache.stats().evictions,
  );
  r.sampled(
    'switchyard_gpu_cache_rejected_total',
    'Prefills larger than the whole cache budget (used once, not kept).',
    'counter',
    () => cache.stats().rejected,
  );
  r.sampled(
    'switchyard_gpu_cache_bytes',
    'Bytes held by the prompt cache.',
    'gauge',
    () => cache.stats().bytes,
  );
  r.sampled(
    'switchyard_gpu_cache_entries',
    'Entries in the prompt cache.',
    'gauge',
    () => cache.stats().entries,
  );
  r.sampled(
    'switchyard_gpu_cache_budget_bytes',
    'The prompt-cache byte budget.',
    'gauge',
    () => o.cacheBytes,
  );
  r.sampled('switchyard_gpu_in_flight_requests', 'HTTP requests being handled.', 'gauge', () => app.inFlight);

  let ready = false;
  const verifier = o.insecureNoAuth
    ? undefined
    : new RequestVerifier({ secret: o.secret!, windowMs: o.authWindowMs });
  const app: App = createApp({
    routes: routes({ service, metrics, ready: () => ready && !app.draining, maxRows: o.queueLimit }),
    maxBodyBytes: o.maxBodyBytes,
    verifier,
    metrics,
    log,
  });

  const server: Server = createServer({ keepAliveTimeout: 5000 }, app.listener);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) =>
      reject(new ConfigError(`cannot listen on ${o.host}:${o.port}: ${e.message}`)),
    );
    server.listen(o.port, o.host, () => resolve());
  }).catch(async (e) => {
    await pool.close();
    throw e;
  });
  ready = true;
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  const url = `http://${host}:${port}`;
  const readyLine =
    `switchyard-gpu listening on ${url} (experts ${formatExperts(experts)}, provider ${pool.provider}, ` +
    `workers ${o.workers}×${o.threads} threads${o.spin ? ' (spinning)' : ''}, compute ${o.compute}, max batch ${o.maxBatch}, max wait ${o.maxWaitMs} ms, prefill batch ${o.maxPrefillTokens} tokens, ` +
    `queue limit ${o.queueLimit}, cache ${formatBytes(o.cacheBytes)}, auth ${verifier ? 'hmac' : 'OFF (--insecure-no-auth)'})`;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      // No new connections; requests already received (and any that still arrive on open keep-alive
      // connections, which get 503) are answered before the workers stop.
      server.close();
      await app.drain();
      server.closeIdleConnections();
      await pool.close();
      server.closeAllConnections();
    })());

  return {
    url,
    port,
    experts,
    provider: pool.provider,
    fallback: pool.fallback,
    config,
    metrics,
    readyLine,
    close,
  };
}
