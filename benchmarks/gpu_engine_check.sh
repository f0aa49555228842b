#!/usr/bin/env bash
# One call on a GPU machine for the engine's decode path: install carried wheels (flashinfer),
# build the CUDA extension (or reuse one carried in .gpu_cache/), run the GPU tests, then
# `benchmarks/throughput.py` with the arguments given (none: no benchmark). Logs, and the build
# products worth carrying to the next call (the extension, flashinfer's JIT cache), go to $OUT
# as soon as they exist. Each stage has its own time limit, so one that hangs costs only its own.
#
#   GPU_TESTS="tests/kv tests/engine" bash benchmarks/gpu_engine_check.sh --context 32768 --batches 8
#
# SIDE_BY_SIDE="ARGS" runs two benchmarks at once on a 2-GPU machine: the arguments given on GPU 0
# and ARGS (split at spaces, no quoting) on GPU 1, each under BENCH_TIMEOUT, its log and JSON in
# $OUT/throughput_gpu0.* and throughput_gpu1.*, its printed lines prefixed [gpu0] / [gpu1]; then
# one table of both (bench/compare_runs.py). Dense vs ShadowKV at 122K, each at its largest batch,
# in one call on nvidia-h200-x2 (carry .gpu_cache, so that nothing is built). --cpu-offload-gb 100
# caps the pinned value pool at what the 1-GPU machine's 128 GiB host allowed (99.8 GiB): by
# default it would be 80% of this host's 256 GiB, ~30 sequences whose prefills outlast the call.
#
#   GIT_COMMIT=<sha> GPU_TESTS=" " BENCH_TIMEOUT=545 SIDE_BY_SIDE="--context 122880 --batches max \
#     --attention dense --new-tokens 16 --warmup 2" bash benchmarks/gpu_engine_check.sh \
#     --context 122880 --batches max --attention shadowkv --cpu-offload-gb 100 --new-tokens 16 \
#     --warmup 2
#
# THROUGHPUT replaces `python benchmarks/throughput.py` (a stub, to test this script on a CPU).
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
# bench NAME PREFIX ARGS...: one benchmark, its log and JSON $out/NAME.{log,json}, lines prefixed.
bench() {
  local name=$1 prefix=$2; shift 2
  timeout "${BENCH_TIMEOUT:-400}" ${THROUGHPUT:-python benchmarks/throughput.py} \
    --out "$out/$name.json" "$@" 2>&1 | tee "$out/$name.log" | sed -u "s/^/$prefix/"
  local rc=$?
  elapsed "${prefix}benchmark done (exit $rc)"
  return $rc
}
if [ -n "${SIDE_BY_SIDE:-}" ]; then
  nvidia-smi topo -m
  CUDA_VISIBLE_DEVICES=0 bench throughput_gpu0 "[gpu0] " "$@" &
  gpu0=$!
  # shellcheck disable=SC2086  # SIDE_BY_SIDE is a list of arguments
  CUDA_VISIBLE_DEVICES=1 bench throughput_gpu1 "[gpu1] " $SIDE_BY_SIDE &
  gpu1=$!
  wait $gpu0 || status=1
  wait $gpu1 || status=1
  python -m shadowkv_engine.bench.compare_runs --title "one call, side by side on $(hostname): \
GPU 0 (A) and GPU 1 (B) started together" "$out/throughput_gpu0.json" "$out/throughput_gpu1.json" \
    || status=1
elif [ $# -gt 0 ]; then
  bench throughput "" "$@" || status=1
fi
[ -n "${SIDE_BY_SIDE:-}$*" ] && tar -czf "$out/flashinfer.tgz" -C .gpu_cache flashinfer 2> /dev/null
exit $status
