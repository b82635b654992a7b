// What a request needs besides its own data, built once per isolate: settings, the model config and edge
// compute over the loaded weights, and the expert tier client (whose breakers and session affinity must
// outlive a request).
import type { ModelConfig } from '@switchyard/shared/config';
import type { EdgeComputeBackend, ExpertBackend } from '@switchyard/shared/interfaces';
import { createEdgeCompute } from './compute/index.ts';
import { loadEdgeWeights } from './compute/weights.ts';
import type { Env } from './env.ts';
import { ExpertRouter, type ShardHealth } from './experts/router.ts';
import { checkShardCoverage } from './experts/shard-map.ts';
import { settingsFor, type Settings } from './settings.ts';

export interface ExpertTier extends ExpertBackend {
  health?(): Promise<ShardHealth[]>;
}

export interface Services {
  settings: Settings;
  config: ModelConfig;
  edge: EdgeComputeBackend;
  /** Resolved lazily: a misconfigured expert tier must not break /health or validation errors. */
  experts(): ExpertTier;
  weightsSource: string;
}

export type ExpertFactory = (config: ModelConfig, settings: Settings) => ExpertTier;

const defaultExperts: ExpertFactory = (config, settings) => {
  checkShardCoverage(settings.experts.shards, config.experts.count);
  return new ExpertRouter(settings.experts.shards, config, settings.experts);
};

let expertFactory: ExpertFactory = defaultExperts;
let cache = new WeakMap<Settings, Promise<Services>>();

/**
 * Replaces how the expert tier is built (null restores the real client). For tests that run routes and
 * actors inside workerd without a GPU tier; the next request in this isolate rebuilds its services.
 */
export function setExpertFactory(f: ExpertFactory | null): void {
  expertFactory = f ?? defaultExperts;
  cache = new WeakMap();
}

export function getServices(env: Env): Promise<Services> {
  const settings = settingsFor(env);
  let p = cache.get(settings);
  if (!p) {
    const map = cache;
    p = build(env, settings);
    p.catch(() => map.delete(settings));
    map.set(settings, p);
  }
  return p;
}

async function build(env: Env, settings: Settings): Promise<Services> {
  const weights = await loadEdgeWeights(env, settings.weightsR2Key);
  const config = weights.file.config;
  const edge = await createEdgeCompute(settings.computeBackend, weights.file);
  const factory = expertFactory;
  let experts: ExpertTier | null = null;
  return {
    settings,
    config,
    edge,
    experts: () => (experts ??= factory(config, settings)),
    weightsSource: weights.source,
  };
}
