#!/usr/bin/env bash
# One call on a GPU machine: build the CUDA extension, run the op tests (ops vs twins), then the
# kernel benchmark, whose table prints last. Logs go to $OUT (the device tool's folder) or
# ./kernel_logs. TORCH_CUDA_ARCH_LIST defaults to 9.0 here to keep the build short on an H100/H200.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-kernel_logs}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16}
fields=name,driver_version,memory.total,pcie.link.gen.current,pcie.link.width.current
nvidia-smi --format=csv --query-gpu=$fields > "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"
start=$(date +%s)
if ! python setup.py build_ext --inplace > "$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  exit 1
fi
echo "build: $(( $(date +%s) - start )) s"
python -m pytest -q -rs tests/ops > "$out/tests.log" 2>&1
status=$?
tail -30 "$out/tests.log"
echo "tests: exit $status, $(( $(date +%s) - start )) s"
python benchmarks/bench_kernels.py --out "$out/bench.json" 2>&1 | tee "$out/bench.log"
exit $status
