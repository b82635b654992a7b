import { defineConfig } from 'vitest/config';

// The wasm project: the kernel tests need build/*.wasm, which ensureBuilt() makes (or refreshes) on demand.
export default defineConfig({
  test: {
    name: 'wasm',
    root: import.meta.dirname,
    include: ['src/**/*.test.ts'],
    environment: 'node',
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
