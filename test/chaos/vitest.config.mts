// The reliability and security suite: faults, bad input, security and load against the real stack on
// loopback. `npm test` runs its short form; `npm run test:chaos` (SWITCHYARD_CHAOS=full) the long one, with
// the 5-minute load and more generated inputs. Files run one after another, and after every other project
// (groupOrder 1), since each starts its own processes on a machine with two shared cores.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const full = process.env.SWITCHYARD_CHAOS === 'full';
const root = fileURLToPath(new URL('../..', import.meta.url));

export default defineConfig({
  test: {
    name: 'chaos',
    root,
    include: ['test/chaos/**/*.test.ts'],
    environment: 'node',
    fileParallelism: false,
    sequence: { groupOrder: 1 },
    testTimeout: full ? 900_000 : 180_000,
    hookTimeout: 180_000,
  },
});
