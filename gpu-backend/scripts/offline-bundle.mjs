#!/usr/bin/env node
// Packs what the GPU tier needs to run on an offline linux-x64 machine (no npm registry there): this Node
// binary and the node_modules the server, `switchyard-gpu check` and bench/gpu-tier.ts load, with
// onnxruntime-node cut down to its linux-x64 binaries. Run from the repo root:
//   node gpu-backend/scripts/offline-bundle.mjs DIR      → DIR/bundle.tar.xz
// and on the other machine, in a checkout of the same commit: gpu-backend/scripts/gpu-check.sh DIR
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const out = resolve(process.argv[2] ?? '.offline');
const ROOTS = ['tsx', 'onnxruntime-node', 'onnxruntime-common', 'onnx-proto', 'zod'];
const stage = join(out, 'stage');
rmSync(stage, { recursive: true, force: true });
mkdirSync(join(stage, 'node_modules'), { recursive: true });

// Resolved the way Node resolves: a dependency of the package at P is P/node_modules/D, else the same
// under P's parents, else node_modules/D. The lockfile lists every installed path.
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')).packages;
const seen = new Set();
function resolveDep(from, dep) {
  for (let p = from; p; p = p.includes('/node_modules/') ? p.slice(0, p.lastIndexOf('/node_modules/')) : '') {
    if (lock[`${p}/node_modules/${dep}`]) return `${p}/node_modules/${dep}`;
  }
  return `node_modules/${dep}`;
}
function add(path) {
  if (seen.has(path) || !existsSync(path)) return; // not installed: an optional one for another platform
  seen.add(path);
  const pkg = JSON.parse(readFileSync(join(path, 'package.json'), 'utf8'));
  const dest = join(stage, path);
  mkdirSync(dirname(dest), { recursive: true });
  cpSync(path, dest, {
    recursive: true,
    // Nested packages come in only when something needs them. onnxruntime-node ships every platform's
    // binaries (≈ 300 MB); the GPU box is linux-x64.
    filter: (src) =>
      !src.startsWith(`${path}/node_modules`) &&
      !/onnxruntime-node\/bin\/napi-v\d+\/(darwin|win32|linux\/arm64)/.test(src),
  });
  for (const d of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) add(resolveDep(path, d));
}
ROOTS.forEach((r) => add(`node_modules/${r}`));
// The workspace links (node_modules/@switchyard/* → the packages in the checkout).
mkdirSync(join(stage, 'node_modules/@switchyard'), { recursive: true });
for (const l of ['shared', 'gpu-backend', 'wasm']) {
  const link = join('node_modules/@switchyard', l);
  if (lstatSync(link).isSymbolicLink()) symlinkSync(readlinkSync(link), join(stage, link));
}
mkdirSync(join(stage, 'node/bin'), { recursive: true });
cpSync(process.execPath, join(stage, 'node/bin/node'));
execFileSync('tar', ['-C', stage, '-cJf', join(out, 'bundle.tar.xz'), 'node_modules', 'node'], {
  stdio: 'inherit',
  env: { ...process.env, XZ_OPT: '-6 -T2' },
});
rmSync(stage, { recursive: true, force: true });
console.log(`${join(out, 'bundle.tar.xz')}: node ${process.version} and ${seen.size} packages`);
