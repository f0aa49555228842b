#!/usr/bin/env bash
# Compiles every CUDA source in csrc/ for sm_80 (A100), sm_90 and sm_90a (H100; sm_90a adds the
# Hopper-only wgmma path) with plain nvcc: the kernels include no torch headers, so this runs on
# CPU-only CI machines with only nvcc.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-nvcc}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
shopt -s nullglob
sources=(csrc/*.cu)
if [ ${#sources[@]} -eq 0 ]; then
  echo "compile_kernels: no .cu files in csrc/" >&2
  exit 1
fi
for src in "${sources[@]}"; do
  for arch in 80 90 90a; do
    "$NVCC" -std=c++17 -O3 -arch=sm_$arch -Werror all-warnings -c "$src" \
      -o "$out/$(basename "$src" .cu).sm_$arch.o"
    echo "compiled $src for sm_$arch"
  done
done
