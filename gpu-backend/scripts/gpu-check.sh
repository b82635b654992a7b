#!/usr/bin/env bash
# The GPU machine's check, in one run: which providers start, whether their outputs match the float32
# reference (`switchyard-gpu check` on the golden model and on r1-seed-sized experts), and the GPU-tier
# benchmark on a GPU provider and on this machine's CPU side by side.
#
#   gpu-backend/scripts/gpu-check.sh [BUNDLE_DIR]     (from anywhere; results under $OUT, default ./gpu-check)
#
# On an offline machine, BUNDLE_DIR (default .offline) holds bundle.tar.xz from offline-bundle.mjs (Node and
# the node_modules this needs) and optionally .debs of libvulkan1 and libglvnd (libglvnd0 libgl1 libglx0
# libegl1 libgles2 libopengl0), unpacked when the machine lacks them; with node_modules present the
# bundle is not used. GPU_CHECK_BENCH=0 skips the benchmarks, GPU_CHECK_CPU_BENCH=0 the CPU one;
# GPU_CHECK_PROVIDER picks the GPU provider (default webgpu).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUNDLE=$(cd "${1:-.offline}" 2>/dev/null && pwd || echo "$ROOT/.offline")
OUT=${OUT:-$ROOT/gpu-check}
GPU=${GPU_CHECK_PROVIDER:-webgpu}
mkdir -p "$OUT"
LOG=$OUT/log.txt
say() { echo "== $*" | tee -a "$LOG"; }
# Dawn prints adapter warnings on every start; they are not results.
run() {
  local limit=$1
  shift
  say "$*"
  timeout "$limit" "$@" 2>&1 | grep -v -e '^Warning: ' -e '^ - While' -e '^    at ' | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  say "exit $rc"
  return "$rc"
}

if [ -x "$ROOT/node/bin/node" ]; then export PATH="$ROOT/node/bin:$PATH"; fi
if { [ ! -d node_modules/onnxruntime-node ] || ! command -v node >/dev/null; } && [ -f "$BUNDLE/bundle.tar.xz" ]; then
  say "unpacking $BUNDLE/bundle.tar.xz"
  tar -C "$ROOT" -xJf "$BUNDLE/bundle.tar.xz"
fi
if [ -x "$ROOT/node/bin/node" ]; then export PATH="$ROOT/node/bin:$PATH"; fi
# The Vulkan loader, and the GL dispatch libraries NVIDIA's Vulkan driver (libGLX_nvidia.so.0) needs to load:
# without libGLdispatch the loader says "Could not get 'vkCreateInstance' via 'vk_icdGetInstanceProcAddr'".
if ! ldconfig -p | grep -q 'libvulkan.so.1' || ! ldconfig -p | grep -q 'libGLdispatch.so.0'; then
  for d in "$BUNDLE"/*.deb; do [ -f "$d" ] && dpkg -x "$d" / && say "installed $(basename "$d")"; done
  ldconfig
fi
# Container images mount the NVIDIA driver outside the loader's search path.
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd; break; fi
done
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
say "node $(node --version), $(nproc) cores, $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
say "vulkan loader: $(ldconfig -p | grep -m1 'libvulkan.so.1' || echo none), ICD ${VK_DRIVER_FILES:-default}"

GPUBIN="node gpu-backend/bin/switchyard-gpu.mjs"
TINY=shared/golden/tiny-int8.safetensors
: >"$OUT/checks.jsonl"
check() {
  local name=$1
  shift
  say "check $name: $*"
  timeout 90 $GPUBIN check --json "$@" >"$OUT/check.tmp" 2>"$OUT/check.err"
  local rc=$?
  grep -v -e '^Warning: ' -e '^ - While' -e '^    at ' "$OUT/check.err" >>"$LOG"
  say "exit $rc"
  node -e 'const fs=require("fs");let r;try{r=JSON.parse(fs.readFileSync(process.argv[1],"utf8"))}catch{r=null}
    const err=fs.readFileSync(process.argv[4],"utf8").split("\n").filter((l)=>l.startsWith("switchyard-gpu")).pop();
    console.log(JSON.stringify({name:process.argv[2],exit:+process.argv[3],report:r,error:r?undefined:err}))' \
    "$OUT/check.tmp" "$name" "$rc" "$OUT/check.err" >>"$OUT/checks.jsonl"
  rm -f "$OUT/check.tmp" "$OUT/check.err"
}
# Providers that must fail or fall back cleanly where their libraries are missing, then the GPU provider.
check cuda --model $TINY --provider cuda
check auto --model $TINY --provider auto
for c in f32 int8 int8-dynamic; do check "$GPU-$c" --model $TINY --provider "$GPU" --compute $c; done
R1=$(mktemp -d)/r1-seed.safetensors
run 120 node node_modules/tsx/dist/cli.mjs shared/cli/main.ts init --preset r1-seed --seed 1 -o "$R1"
check "$GPU-r1-seed" --model "$R1" --experts 0-3 --provider "$GPU"
check cpu-r1-seed --model "$R1" --experts 0-3 --provider cpu
rm -f "$R1"
node -e 'for (const l of require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n")) {
  const {name, exit, report: r, error} = JSON.parse(l);
  console.log(name.padEnd(22), "exit", exit, r ? `provider ${r.provider}, max error ${Math.max(...r.experts.map((x) => x.maxError)).toExponential(2)} (tol ${r.tolerance}), golden ${r.golden ? r.golden.matched + "/" + r.golden.sessions : "-"}` : error);
}' "$OUT/checks.jsonl" | tee -a "$LOG"

if [ "${GPU_CHECK_BENCH:-1}" != 0 ]; then
  export SWITCHYARD_BENCH_MACHINE="${SWITCHYARD_BENCH_MACHINE:-$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)}"
  run 200 node node_modules/tsx/dist/cli.mjs bench/gpu-tier.ts --provider "$GPU" --seconds "${GPU_CHECK_SECONDS:-3}" &&
    cp "bench/results/gpu-tier-$GPU.json" "$OUT/"
  [ "${GPU_CHECK_CPU_BENCH:-1}" != 0 ] &&
    run 150 node node_modules/tsx/dist/cli.mjs bench/gpu-tier.ts --provider cpu --seconds "${GPU_CHECK_SECONDS:-3}" &&
    cp bench/results/gpu-tier.json "$OUT/gpu-tier-cpu.json"
fi
say "done"
