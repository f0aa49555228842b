#!/usr/bin/env bash
# One call on a GPU machine: build the CUDA extension, run the op tests (ops vs twins), then the
# kernel benchmark, whose table prints last. Logs go to $OUT (the device tool's folder) or
# ./kernel_logs. TORCH_CUDA_ARCH_LIST defaults to 9.0a (H100/H200 only) to keep the build short.
# Each test file runs in its own process: a kernel fault poisons the CUDA context of the process,
# and would otherwise fail every later test. A file that faults is rerun under compute-sanitizer.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-kernel_logs}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a} MAX_JOBS=${MAX_JOBS:-16}
fields=name,driver_version,memory.total,pcie.link.gen.current,pcie.link.width.current
nvidia-smi --format=csv --query-gpu=$fields > "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"
start=$(date +%s)
if ! python setup.py build_ext --inplace > "$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  exit 1
fi
echo "build: $(( $(date +%s) - start )) s"
status=0
for test in tests/ops/test_*.py; do
  log="$out/tests.log"
  python -m pytest -q -rs "$test" >> "$log" 2>&1
  rc=$?
  echo "$test: exit $rc, $(( $(date +%s) - start )) s; $(tail -1 "$log")"
  if [ $rc -ne 0 ]; then
    status=1
    if grep -q "illegal\|misaligned\|unspecified launch" "$log"; then
      timeout 150 compute-sanitizer --print-limit 8 python -m pytest -x -q "$test" -k "b1-gqa1" \
        > "$out/sanitizer.log" 2>&1
      grep -m 30 "Invalid\|at 0x\|by thread\|Address\|ERROR SUMMARY" "$out/sanitizer.log"
    fi
  fi
done
grep "^FAILED\|^E  " "$out/tests.log" | head -20
python benchmarks/bench_kernels.py --out "$out/bench.json" 2>&1 | tee "$out/bench.log"
exit $status
