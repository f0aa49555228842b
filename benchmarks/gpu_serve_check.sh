#!/usr/bin/env bash
# One call on a GPU machine for the server under load (issue 18): install the carried wheels
# (flashinfer, and fastapi/uvicorn/pydantic/starlette, which the GPU image lacks), reuse the
# extension and flashinfer's JIT cache from .gpu_cache/ (or build the extension), then for each
# mode (dense, then ShadowKV): write the Llama-3.1-8B shape (random weights), start
# `shadowkv serve --load-format dummy` on 127.0.0.1, wait for /health, run `shadowkv bench serve`
# with random 32K-token prompts once per concurrency level, and stop the server with SIGTERM.
# A summary table (throughput, TTFT/TPOT p50/p99, hit rate) is printed last.
#
#   GIT_COMMIT=abc1234 bash benchmarks/gpu_serve_check.sh
#   CONCURRENCY="1 4" PROMPTS_PER_LEVEL=4 MODES=shadowkv bash benchmarks/gpu_serve_check.sh
#   SHAPE=embedded bash benchmarks/gpu_serve_check.sh      # plumbing test on a CPU, shipped model
#
# Settings (environment):
#   MODES              attention modes, in order (default "dense shadowkv")
#   SHAPE              llama3.1-8b (default: cuda, bf16, random weights) or embedded (the shipped
#                      10M model, or the demo model where it is missing, on the CPU, with short
#                      prompts: a test of this script's plumbing)
#   CONCURRENCY        levels, one `bench serve` each (default "1 4 8 16"; embedded "1 4")
#   PROMPTS_PER_LEVEL  NUMBER, or Nx for N times the level (default 2x)
#   INPUT_LEN          prompt tokens (default 32768; embedded 1200, above ShadowKV's 1024 floor)
#   OUTPUT_LEN         output tokens, sent with ignore_eos (default 64; embedded 8)
#   WARMUPS            requests sent before each level's clock starts: first (default: one,
#                      before the first level only), c (as many as the level's concurrency, so
#                      its decode batch's CUDA graph is captured before the clock), or a number
#   MAX_MODEL_LEN      default INPUT_LEN + OUTPUT_LEN + 64, rounded up to 1024 (33792)
#   CPU_OFFLOAD_GB     ShadowKV's pinned value pool (default 40: 16 x 2 GiB of 32K values)
#   SERVER_ARGS        more `shadowkv serve` flags for both modes; BENCH_ARGS: more bench flags
#   DEVICE_ARGS        replaces the device flags (default: cuda, bf16, 8192-token steps, 0.9 of
#                      the GPU; embedded: cpu); SHAPE=tiny DEVICE_ARGS="--device cpu" on a CPU
#   DEADLINE           seconds this whole script may take (default 560, under run's 600 s limit);
#                      each mode gets an equal share of what is left, each stage its own timeout
#   STARTUP_TIMEOUT    seconds a server may take to answer /health (default 300, within the share)
#   PORT               first port (default 8011; the next mode takes the next one)
#   INSTALL_WHEELS     1 (default) installs .whl/*.whl and .whl_serve/*.whl into /tmp/site
#   BUILD              1 rebuilds the extension even when .gpu_cache holds one (BUILD_TIMEOUT 400)
#   GIT_COMMIT         recorded in the results (the GPU machine's tree has no .git)
#
# Output, within the device tool's 8 files that come back ($OUT, else ./serve_logs):
#   summary.txt, <mode>/result.json (every level, merged; per-request records left out),
#   <mode>/sweep.png, serve_results.tgz (<mode>/: per-level JSON with per-request records and
#   latency PNGs, bench logs, the server log, the merged latency PNG), flashinfer.tgz (the JIT
#   cache to carry next time), _C*.so.<csrc hash>.xz (only when the extension was built here:
#   put it in .gpu_cache/ and carry it next time).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-serve_logs}
work=${WORK_DIR:-/tmp/shadowkv_serve_check}
PY=${PYTHON:-python3}
SHAPE=${SHAPE:-llama3.1-8b}
MODES=${MODES:-dense shadowkv}
PROMPTS_PER_LEVEL=${PROMPTS_PER_LEVEL:-2x}
DEADLINE=${DEADLINE:-560}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-300}
PORT=${PORT:-8011}
if [ "$SHAPE" = embedded ]; then
  CONCURRENCY=${CONCURRENCY:-1 4}
  INPUT_LEN=${INPUT_LEN:-1200}
  OUTPUT_LEN=${OUTPUT_LEN:-8}
  CPU_OFFLOAD_GB=${CPU_OFFLOAD_GB:-1}
  device_args=${DEVICE_ARGS:-"--device cpu --max-num-batched-tokens 2048"}
else
  CONCURRENCY=${CONCURRENCY:-1 4 8 16}
  INPUT_LEN=${INPUT_LEN:-32768}
  OUTPUT_LEN=${OUTPUT_LEN:-64}
  CPU_OFFLOAD_GB=${CPU_OFFLOAD_GB:-40}
  device_args=${DEVICE_ARGS:-"--device cuda --dtype bfloat16 --max-num-batched-tokens 8192
               --gpu-memory-utilization 0.9"}
fi
MAX_MODEL_LEN=${MAX_MODEL_LEN:-$(( (INPUT_LEN + OUTPUT_LEN + 64 + 1023) / 1024 * 1024 ))}
max_level=0
for c in $CONCURRENCY; do [ "$c" -gt "$max_level" ] && max_level=$c; done

rm -rf "$work"
mkdir -p "$out" "$work" .gpu_cache
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a} MAX_JOBS=${MAX_JOBS:-16}
export FLASHINFER_WORKSPACE_BASE=$PWD/.gpu_cache/flashinfer
start=$(date +%s)
now() { echo $(( $(date +%s) - start )); }
left() { echo $(( DEADLINE - $(now) )); }
elapsed() { echo "[$(now) s] $*"; }
smaller() { [ "$1" -lt "$2" ] && echo "$1" || echo "$2"; }
pack() {  # everything so far into $out, so a run cut short still brings its results back
  tar -czf "$work.tgz" -C "$work" --exclude=shape . 2> /dev/null \
    && mv "$work.tgz" "$out/serve_results.tgz"
}

# --- packages, extension, flashinfer cache -------------------------------------------------
wheels=$(ls .whl/*.whl .whl_serve/*.whl 2> /dev/null)
if [ "${INSTALL_WHEELS:-1}" = 1 ] && [ -n "$wheels" ]; then
  # shellcheck disable=SC2086
  timeout 180 $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site $wheels || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=$PWD:/tmp/site
  elapsed "wheels installed: $(echo $wheels | wc -w)"
fi
nvidia-smi --format=csv --query-gpu=name,driver_version,memory.total 2> /dev/null
timeout 120 $PY - <<'EOF' || { echo "the server's or the bench's imports fail: see above"; exit 1; }
import importlib.metadata as md, sys
import fastapi, uvicorn, pydantic, starlette, httpx, prometheus_client, matplotlib, tqdm  # noqa
from server.app import build_app  # noqa: every import the server makes
names = ["torch", "fastapi", "starlette", "pydantic", "pydantic_core", "uvicorn", "anyio", "h11",
         "httpx", "typing_extensions", "matplotlib", "flashinfer-python"]
versions = []
for name in names:
    try:
        versions.append(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        versions.append(f"{name} -")
print(f"python {sys.version.split()[0]}: " + ", ".join(versions))
EOF
if $PY -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  [ -f .gpu_cache/flashinfer.tgz ] && tar -xzf .gpu_cache/flashinfer.tgz -C .gpu_cache
  # The extension: a carried .gpu_cache/_C*.so.<csrc hash>.xz (what this script returns; 2 MB
  # instead of 16) when its hash is csrc/'s, else a carried .gpu_cache/_C*.so or one already in
  # the tree (trusted, as gpu_engine_check.sh does), else built here and returned in $out.
  csrc_hash=$(cat csrc/* setup.py | sha256sum | cut -c1-12)
  if [ "${BUILD:-0}" = 1 ]; then
    rm -f shadowkv_engine/_C*.so
  else
    for xz in .gpu_cache/_C*.so."$csrc_hash".xz; do
      [ -f "$xz" ] || continue
      so=$(basename "${xz%."$csrc_hash".xz}")
      $PY -c "import lzma, sys; open(sys.argv[2], 'wb').write(lzma.open(sys.argv[1]).read())" \
        "$xz" "shadowkv_engine/$so" && elapsed "extension from $xz"
    done
    ls shadowkv_engine/_C*.so > /dev/null 2>&1 || cp .gpu_cache/_C*.so shadowkv_engine/ 2> /dev/null
  fi
  if ! ls shadowkv_engine/_C*.so > /dev/null 2>&1; then
    timeout "${BUILD_TIMEOUT:-400}" $PY setup.py build_ext --inplace > "$work/build.log" 2>&1 \
      || { tail -40 "$work/build.log"; exit 1; }
    for so in shadowkv_engine/_C*.so; do
      $PY -c "import lzma, sys; lzma.open(sys.argv[2], 'wb').write(open(sys.argv[1], 'rb').read())" \
        "$so" "$out/$(basename "$so").$csrc_hash.xz"
    done
    elapsed "extension built (csrc $csrc_hash); $out/_C*.$csrc_hash.xz: carry it in .gpu_cache/"
  fi
  elapsed "extension ready: $(ls shadowkv_engine/_C*.so 2> /dev/null)"
fi

# --- the model folder --------------------------------------------------------------------------
if [ "$SHAPE" = embedded ]; then
  model=shadowkv_engine/assets/default_model
  if [ ! -f $model/model.safetensors ]; then  # moved out (say, to fit a device call): the demo
    model=$($PY -c "from shadowkv_engine.demo_model import ensure_demo_model as m; print(m())")
    elapsed "no shipped model.safetensors: serving the random-weight demo model $model"
  fi
  load_args=""
else
  model=$work/shape
  $PY -m shadowkv_engine.cli bench shape "$SHAPE" "$model" > /dev/null || exit 1
  load_args="--load-format dummy"
fi

health() {
  $PY -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=5)" \
    "http://127.0.0.1:$1/health" 2> /dev/null
}
stop_server() {  # SIGTERM (the server drains for 5 s, then exits), SIGKILL after 40 s
  kill -TERM "$1" 2> /dev/null
  for _ in $(seq 40); do kill -0 "$1" 2> /dev/null || break; sleep 1; done
  kill -0 "$1" 2> /dev/null && { echo "server $1 ignored SIGTERM: killed"; kill -KILL "$1"; }
  wait "$1" 2> /dev/null
}

# --- each mode ------------------------------------------------------------------------------------
status=0
modes_left=$(echo $MODES | wc -w)
port=$PORT
for mode in $MODES; do
  dir=$work/$mode
  mkdir -p "$dir"
  mode_end=$(( $(now) + $(left) / modes_left ))
  modes_left=$((modes_left - 1))
  mode_args=""
  [ "$mode" = shadowkv ] && mode_args="--cpu-offload-gb $CPU_OFFLOAD_GB"
  # shellcheck disable=SC2086
  $PY -m shadowkv_engine.cli serve "$model" $load_args $device_args $mode_args \
    --attention "$mode" --max-model-len "$MAX_MODEL_LEN" --max-num-seqs "$max_level" \
    --served-model-name "$SHAPE-$mode" --host 127.0.0.1 --port "$port" --shutdown-timeout 5 \
    ${SERVER_ARGS:-} > "$dir/server.log" 2>&1 &
  server=$!
  ready=0
  wait_until=$(( $(now) + $(smaller "$STARTUP_TIMEOUT" $(( mode_end - $(now) - 30 ))) ))
  while [ "$(now)" -lt "$wait_until" ]; do
    kill -0 $server 2> /dev/null || break
    health $port && { ready=1; break; }
    sleep 2
  done
  if [ $ready != 1 ]; then
    elapsed "$mode: the server did not become healthy; its log ends:"
    tail -30 "$dir/server.log"
    stop_server $server
    status=1; port=$((port + 1)); pack; continue
  fi
  elapsed "$mode: server ready ($(grep -m1 -o 'memory plan.*' "$dir/server.log" | cut -c1-200))"
  first=1
  for c in $CONCURRENCY; do
    case $PROMPTS_PER_LEVEL in
      *x) n=$(( c * ${PROMPTS_PER_LEVEL%x} )) ;;
      *) n=$PROMPTS_PER_LEVEL ;;
    esac
    budget=$(( mode_end - $(now) - 15 ))
    if [ $budget -lt 20 ]; then
      elapsed "$mode: concurrency $c skipped: out of time (DEADLINE=$DEADLINE)"
      status=1; continue
    fi
    case ${WARMUPS:-first} in  # requests before each level's clock: they capture decode graphs
      first) warmups=$first ;;
      c) warmups=$c ;;
      *) warmups=$WARMUPS ;;
    esac
    first=0
    # shellcheck disable=SC2086
    timeout "$budget" $PY -m shadowkv_engine.cli bench serve \
      --base-url "http://127.0.0.1:$port" --tokenizer "$model" --dataset random \
      --random-input-len "$INPUT_LEN" --random-output-len "$OUTPUT_LEN" --ignore-eos \
      --num-prompts "$n" --max-concurrency "$c" --num-warmups $warmups --seed 0 \
      --save-result --save-detailed --plot --result-dir "$dir" --result-filename "c$c.json" \
      --disable-tqdm --metadata "mode=$mode" "shape=$SHAPE" "commit=${GIT_COMMIT:-unknown}" \
      ${BENCH_ARGS:-} > "$dir/bench-c$c.log" 2>&1
    rc=$?
    [ $rc != 0 ] && status=1
    line=$(grep -E "^(Successful requests|Output token throughput)" "$dir/bench-c$c.log" \
      | awk -F'  +' '{printf "%s ", $NF}')
    elapsed "$mode: concurrency $c, $n prompts: rc $rc; ok, output tok/s: ${line:-none}"
    [ $rc != 0 ] && tail -15 "$dir/bench-c$c.log"
    pack
  done
  stop_server $server
  elapsed "$mode: server stopped ($(grep -c ' 200 OK' "$dir/server.log") HTTP 200 responses)"
  grep -E "Traceback|ERROR" "$dir/server.log" | head -5
  port=$((port + 1))
  pack
done

# --- summary -----------------------------------------------------------------------------------
$PY - "$work" "$out" "$MODES" <<'EOF'
import json, os, sys
from pathlib import Path

work, out, modes = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split()
try:
    from shadowkv_engine.bench import plots
except Exception as e:  # matplotlib missing: tables only
    plots = None
    print(f"no merged plots: {e}")
header = (f"{'mode':<9}{'conc':>5}{'ok/n':>7}{'dur s':>8}{'req/s':>7}{'out tok/s':>10}"
          f"{'tot tok/s':>10}{'TTFT p50':>10}{'TTFT p99':>10}{'TPOT p50':>10}{'TPOT p99':>10}"
          f"{'ITL p99':>9}{'E2E p50':>9}{'queue':>8}{'hit':>6}{'preempt':>8}")
rows, any_result = [header, "-" * len(header)], None
for mode in modes:
    levels, first = [], None
    for path in sorted((work / mode).glob("c*.json")):
        result = json.loads(path.read_text())
        first = any_result = first or result
        levels += result["runs"]
    levels.sort(key=lambda run: run["max_concurrency"] or 0)
    for run in levels:
        m, ttft, tpot = run["server_metrics"], run["ttft_ms"], run["tpot_ms"]
        hit = m.get("shadowkv_hit_rate") if m.get("available") else None
        queue = m.get("mean_queue_time_ms") if m.get("available") else None
        n = run["completed"] + run["failed"]
        rows.append(
            f"{mode:<9}{run['max_concurrency']:>5}{run['completed']:>4}/{n:<2}"
            f"{run['duration_s']:>8.1f}{run['request_throughput']:>7.3f}"
            f"{run['output_throughput']:>10.1f}{run['total_token_throughput']:>10.0f}"
            f"{ttft['median']:>10.0f}{ttft['p99']:>10.0f}{tpot['median']:>10.1f}"
            f"{tpot['p99']:>10.1f}{run['itl_ms']['p99']:>9.1f}{run['e2el_ms']['median']:>9.0f}"
            f"{'-' if queue is None else f'{queue:.0f}':>8}"
            f"{'-' if hit is None else f'{hit:.3f}':>6}{m.get('preemptions') or 0:>8.0f}")
    if not levels:
        rows.append(f"{mode:<9} no results")
        continue
    merged = dict(first, runs=levels, num_prompts=sum(r["completed"] + r["failed"] for r in levels),
                  commit=os.environ.get("GIT_COMMIT") or first.get("commit"))
    (out / mode).mkdir(parents=True, exist_ok=True)
    if plots is not None:
        plots.latency_distributions(merged, work / mode / "latency-all.png")
        if len(levels) > 1:
            plots.sweep(merged, out / mode / "sweep.png")
    slim = dict(merged, runs=[{k: v for k, v in r.items() if k != "requests"} for r in levels],
                per_level_commands=[json.loads(p.read_text())["command"]
                                    for p in sorted((work / mode).glob("c*.json"))])
    (out / mode / "result.json").write_text(json.dumps(slim, indent=1) + "\n")
if any_result:
    first = any_result
    rows.append(f"{first['dataset']} prompts of {first['mean_prompt_tokens_sent']:.0f} tokens "
                f"sent, tokenizer {first['tokenizer']}; latencies in ms; queue = the server's "
                f"mean queue time, hit = ShadowKV chunk hit rate, preempt = preemptions, each "
                f"over the level; commit {os.environ.get('GIT_COMMIT') or first.get('commit')}")
table = "\n".join(rows)
(out / "summary.txt").write_text(table + "\n")
print(table)
EOF
pack
if [ -d .gpu_cache/flashinfer ]; then
  tar -czf "$out/flashinfer.tgz" -C .gpu_cache flashinfer 2> /dev/null
fi
elapsed "done (status $status); results in $out: $(cd "$out" && find . -type f | sort | tr '\n' ' ')"
exit $status
