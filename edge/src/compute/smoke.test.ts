import { it, expect } from 'vitest';
import simd from '@switchyard/wasm/kernels.wasm';
import { relaxedSimdSupported } from '@switchyard/wasm';

it('smoke', async () => {
  console.log('module?', simd instanceof WebAssembly.Module, 'relaxed', relaxedSimdSupported());
  const t0 = performance.now();
  let s = 0;
  for (let i = 0; i < 3e7; i++) s += Math.sqrt(i);
  const t1 = performance.now();
  await new Promise((r) => setTimeout(r, 0));
  const t2 = performance.now();
  console.log('clock', t0, t1, t2, s, Date.now());
  expect(1).toBe(1);
});
