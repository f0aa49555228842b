#!/usr/bin/env bash
# One call on a GPU machine for the engine's decode path: install carried wheels (flashinfer),
# build the CUDA extension (or reuse one carried in .gpu_cache/), run the GPU tests, then
# `benchmarks/throughput.py` with the arguments given (none: no benchmark). Logs, and the build
# products worth carrying to the next call (the extension, flashinfer's JIT cache), go to $OUT
# as soon as they exist. Each stage has its own time limit, so one that hangs costs only its own.
#
#   GPU_TESTS="tests/kv tests/engine" bash benchmarks/gpu_engine_check.sh --context 32768 --batches 8
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-engine_logs}
mkdir -p "$out" .gpu_cache
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a} MAX_JOBS=${MAX_JOBS:-16}
export FLASHINFER_WORKSPACE_BASE=$PWD/.gpu_cache/flashinfer
start=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - start )) s] $*"; }
if ls .whl/*.whl > /dev/null 2>&1; then
  python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site
fi
nvidia-smi --format=csv --query-gpu=name,driver_version,memory.total,pcie.link.gen.current
[ -f .gpu_cache/flashinfer.tgz ] && tar -xzf .gpu_cache/flashinfer.tgz -C .gpu_cache
cp .gpu_cache/_C*.so shadowkv_engine/ 2> /dev/null
if ! ls shadowkv_engine/_C*.so > /dev/null 2>&1; then
  python setup.py build_ext --inplace > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
  cp shadowkv_engine/_C*.so "$out/"
fi
elapsed "extension ready"
status=0
for target in ${GPU_TESTS:-tests/ops tests/kv tests/engine tests/sample}; do
  timeout "${TEST_TIMEOUT:-300}" python -m pytest -q -rs -m gpu "$target" >> "$out/tests.log" 2>&1 \
    || status=1
  elapsed "$target: $(tail -1 "$out/tests.log")"
done
grep "^FAILED\|^E  \|Timeout" "$out/tests.log" | head -30
tar -czf "$out/flashinfer.tgz" -C .gpu_cache flashinfer 2> /dev/null
if [ $# -gt 0 ]; then
  timeout "${BENCH_TIMEOUT:-400}" python benchmarks/throughput.py --out "$out/throughput.json" "$@" \
    2>&1 | tee "$out/throughput.log"
  elapsed "benchmark done"
  tar -czf "$out/flashinfer.tgz" -C .gpu_cache flashinfer 2> /dev/null
fi
exit $status
