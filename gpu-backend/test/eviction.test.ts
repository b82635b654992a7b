// Prompt-cache eviction under a tiny budget: the golden sessions, run at the same time so that they evict
// each other, still give the golden outputs; the evictions show in /metrics and as NEED_PROMPT round trips.
import { afterAll, describe, expect, it } from 'vitest';
import { compareGolden, GOLDEN_SESSIONS, ReferenceEdge, runGoldenSession } from '@switchyard/shared';
import { GpuExpertClient } from '../src/client.ts';
import { loadGolden, metricValue, startServer, type ServerProcess } from './helpers.ts';

const { file, model, golden } = loadGolden();
const servers: ServerProcess[] = [];
afterAll(async () => {
  for (const s of servers) expect(await s.stop()).toBe(0);
});

async function runAll(
  budget: string,
  sessions = GOLDEN_SESSIONS,
): Promise<{ metrics: string; client: GpuExpertClient }> {
  const server = await startServer(['--insecure-no-auth', '--cache-bytes', budget, '--max-wait-ms', '3']);
  servers.push(server);
  expect(server.readyLine).toMatch(/auth OFF \(--insecure-no-auth\)/);
  const client = new GpuExpertClient({ url: server.url });
  const runs = await Promise.all(
    sessions.map((spec) =>
      runGoldenSession(file.config, new ReferenceEdge(model), client, spec, model.initialState()),
    ),
  );
  runs.forEach((run, i) => expect(compareGolden(golden.sessions[i], run, golden.tolerances)).toEqual([]));
  return { metrics: await (await fetch(`${server.url}/metrics`)).text(), client };
}

describe('prompt cache under a tiny budget', () => {
  it('evicts, answers NEED_PROMPT for evicted entries, and still matches the golden outputs', async () => {
    // One tiny-model entry is 2 layers × L × 32 × 4 bytes × (K and V): 12–20 KiB for these prompts.
    const { metrics, client } = await runAll('40000');
    expect(metricValue(metrics, 'switchyard_gpu_cache_evictions_total')).toBeGreaterThan(0);
    expect(metricValue(metrics, 'switchyard_gpu_cache_bytes')).toBeLessThanOrEqual(40000);
    expect(metricValue(metrics, 'switchyard_gpu_need_prompt_total')).toBeGreaterThan(0);
    expect(client.stats.needPrompt).toBe(metricValue(metrics, 'switchyard_gpu_need_prompt_total'));
  });

  it('serves every step even when no entry fits the budget at all', async () => {
    const { metrics } = await runAll('1000', GOLDEN_SESSIONS.slice(0, 1));
    expect(metricValue(metrics, 'switchyard_gpu_cache_entries')).toBe(0);
    expect(metricValue(metrics, 'switchyard_gpu_cache_rejected_total')).toBeGreaterThan(0);
    expect(metricValue(metrics, 'switchyard_gpu_cache_hits_total')).toBe(0);
  });
});
