import { configDefaults, defineConfig } from 'vitest/config';

// One project per tier; the edge's workerd project lives in edge/vitest.config.mts (its own pool).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'shared',
          include: ['shared/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
        },
      },
      'wasm/vitest.config.mts',
      {
        test: {
          name: 'train',
          include: ['train/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'gpu-backend',
          include: ['gpu-backend/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      'edge/vitest.config.mts',
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts', 'bench/**/*.test.ts'],
          // The reliability suite is its own project (test/chaos/vitest.config.mts).
          exclude: [...configDefaults.exclude, 'test/chaos/**'],
          environment: 'node',
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      'test/chaos/vitest.config.mts',
    ],
  },
});
