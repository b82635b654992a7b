// Builds the kernel modules once before the wasm tests run (a fresh checkout has no build/).
import { ensureBuilt } from '../src/node-loader.ts';

export default function setup(): void {
  ensureBuilt();
}
