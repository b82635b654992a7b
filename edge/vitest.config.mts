// Routes and actors inside workerd (vitest-pool-workers), with the Worker's own wrangler.toml. Tests see the
// API keys below; the expert tier is swapped for an in-process one by test-utils.ts (the real GPU tier is
// exercised by the integration tests in test/edge-*.test.ts).
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';
import { KEYS as TEST_KEYS } from './src/test-keys.ts';

// The repository root, so that modules outside edge/ (shared's golden files) load as Data modules too.
const root = fileURLToPath(new URL('..', import.meta.url));
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export default defineConfig({
  root,
  plugins: [
    cloudflareTest({
      wrangler: { configPath: fileURLToPath(new URL('../wrangler.toml', import.meta.url)) },
      miniflare: {
        bindings: {
          API_KEYS: JSON.stringify([
            { sha256: sha256(TEST_KEYS.alice), tenant: 'alice' },
            { sha256: sha256(TEST_KEYS.bob), tenant: 'bob' },
            { sha256: sha256(TEST_KEYS.limited), tenant: 'limited', rpm: 6, burst: 2 },
            { sha256: sha256(TEST_KEYS.metered), tenant: 'metered', rpm: 60, burst: 5 },
          ]),
          EXPERT_SHARDS: JSON.stringify([{ url: 'http://127.0.0.1:9', experts: '0-3' }]),
          MAX_BODY_BYTES: '65536',
          // Route and actor tests compare with the float32 reference bit for bit; the compiled backends have
          // their own parity tests (compute/*.test.ts) against the golden cases within stated tolerances.
          COMPUTE_BACKEND: 'reference',
          LTM_MAX_ENTRIES: '50',
        },
        r2Buckets: ['WEIGHTS'],
      },
    }),
  ],
  test: {
    name: 'edge',
    root,
    include: ['edge/src/**/*.test.ts'],
    testTimeout: 30_000,
  },
});
