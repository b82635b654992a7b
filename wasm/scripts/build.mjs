// Builds the two kernel modules: plain SIMD (runs wherever SIMD128 does) and relaxed SIMD.
// Each is written under a temporary name and renamed, so a concurrent reader never sees half a file.
import asc from 'assemblyscript/asc';
import { mkdir, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const common = [
  'assembly/index.ts',
  '-O3',
  '--runtime',
  'stub',
  '--noAssert',
  '--use',
  'abort=',
  '--enable',
  'simd',
];
const targets = [
  { out: 'build/kernels.wasm', flags: [] },
  { out: 'build/kernels-relaxed.wasm', flags: ['--enable', 'relaxed-simd'] },
];

await mkdir(join(root, 'build'), { recursive: true });
for (const t of targets) {
  const tmp = `${t.out}.${process.pid}.tmp`;
  const { error, stderr } = await asc.main([...common, ...t.flags, '-o', tmp, '--baseDir', root]);
  if (error) {
    console.error(stderr.toString());
    console.error(`asc failed for ${t.out}: ${error.message}`);
    process.exit(1);
  }
  await rename(join(root, tmp), join(root, t.out));
}
