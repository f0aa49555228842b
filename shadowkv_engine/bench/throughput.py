r"""Offline decode throughput, dense vs ShadowKV, on the same engine with random weights of a real
model's shapes (no download: timing does not depend on weight values), against each
configuration's roofline, in one process and run.

    python benchmarks/throughput.py --shape llama3.1-8b --context 32768 122880 --batches 1 8 max \
        --profile --peer hf --project-hit-rates 0.55 0.7 0.89 --out results.json

For each attention mode, context and batch it drives `LLMEngine` directly: adds the batch, steps
until every sequence has its first token (prefill and compression: "prefill"), runs warm-up
steps, then times --new-tokens steps between CUDA synchronisations. It prints decode tokens/s,
the roofline (bytes per step at the HBM bandwidth measured here by a device-to-device copy, and
PCIe bytes at --pcie-gbs; roofline.py), the fraction of it reached, the ShadowKV hit rate of the
timed steps, peak GPU memory, pinned CPU memory and the largest batch each mode fits at this
context ("max" in --batches runs it). --profile breaks a few steps down by kernel phase
(step_profile.py); --peer hf times Hugging Face transformers on the same shape (hf_peer.py).
`--shape tiny --device cpu` is a smoke test that runs on a CPU in seconds.
"""
import argparse
import gc
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

import hf_peer
import throughput_report as report
from engine_steps import MAX_BATCHED_TOKENS, decode_tokens, largest_batch, run_batch, sync
from roofline import ModelShape, SparseSettings, step_bytes
from shadowkv_engine import LLM
from shadowkv_engine.demo_model import ensure_demo_model
from step_profile import format_profile

SHAPES = {
    "llama3.1-8b": dict(
        architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=128256,
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-5, max_position_embeddings=131072,
        rope_theta=500000.0, torch_dtype="bfloat16", tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    # A smoke-test shape that runs on a CPU in seconds.
    "tiny": dict(
        architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=1024, hidden_size=256,
        intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=128, rms_norm_eps=1e-5, max_position_embeddings=32768, rope_theta=500000.0,
        torch_dtype="float32", tie_word_embeddings=False),
}
GIB = 1 << 30
COMPRESS_FROM = 1024  # shadowkv.min_context_len: shorter prompts stay dense


def shape_dir(name: str, layers: int | None) -> Path:
    """A checkpoint folder with config.json only (weights are random) and the demo tokenizer."""
    config = dict(SHAPES[name])
    if layers:
        config["num_hidden_layers"] = layers
    path = Path(tempfile.mkdtemp(prefix=f"shape-{name}-"))
    (path / "config.json").write_text(json.dumps(config))
    demo = ensure_demo_model()
    for file in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(demo / file, path / file)
    return path


def build_llm(path: Path, args, attention: str, max_seqs: int, cpu_gb: float,
              enforce_eager: bool) -> LLM:
    on_gpu = args.device != "cpu"
    limit = json.loads((path / "config.json").read_text())["max_position_embeddings"]
    max_len = min(limit, max(args.context) + decode_tokens(max_seqs, max(args.context), args))
    return LLM(model=str(path), device=args.device, dtype="bfloat16" if on_gpu else "float32",
               attention=attention, num_gpu_blocks=None if on_gpu else 4096,
               load_format="dummy", max_model_len=max_len, max_num_seqs=max_seqs,
               max_num_batched_tokens=MAX_BATCHED_TOKENS, gpu_memory_utilization=0.92,
               cpu_offload_gb=cpu_gb, enforce_eager=enforce_eager,
               attention_backend=args.attention_backend,
               shadowkv={"sparse_budget": args.budget, "min_context_len": COMPRESS_FROM})


def add_roofline(row: dict, mode: str, shape: ModelShape, sparse: SparseSettings | None,
                 args, itemsize: int, hbm_bps: float):
    # the mean length over the timed steps (prefill-time decodes of early sequences ignored)
    context = row["context"] + args.warmup + 1 + args.new_tokens // 2
    compressed = sparse is not None and row["context"] >= COMPRESS_FROM
    hit = row.get("hit_rate") or 0.0
    cost = step_bytes(mode, shape, sparse if compressed else None, row["batch"], context,
                      1.0 - hit, itemsize)
    seconds = cost.seconds(hbm_bps, args.pcie_gbs * 1e9)
    row["roofline"] = {"hbm_bytes": cost.hbm, "pcie_bytes": cost.pcie, "parts": cost.parts,
                       "step_ms": seconds * 1e3, "tok_s": row["batch"] / seconds,
                       "bound": "PCIe" if cost.pcie / (args.pcie_gbs * 1e9) > cost.hbm / hbm_bps
                       else "HBM"}
    if "decode_tok_s" in row:
        row["roofline_fraction"] = row["decode_tok_s"] / row["roofline"]["tok_s"]


def run_mode(path, args, mode, shape, itemsize, hbm_bps, cpu_gb) -> tuple[list, dict]:
    """All contexts and batches of one attention mode on one engine; (rows, largest batches)."""
    numeric = [b for b in args.batches if b != "max"]
    max_seqs = args.max_num_seqs if "max" in args.batches else max(numeric)
    llm = build_llm(path, args, mode, max_seqs, cpu_gb if mode == "shadowkv" else 0.0,
                    args.enforce_eager)
    engine = llm.engine
    sparse = SparseSettings.of(engine.config.shadowkv) if mode == "shadowkv" else None
    page = shape.layers * shape.kv_heads * engine.config.block_size * shape.head_dim * itemsize
    pinned_gib = engine.blocks.cpu_pool.num_pages * page / GIB
    rows, largest, hidden = [], {}, []
    for context in args.context:
        largest[context] = largest_batch(engine, context, args, max_seqs)
        for label in args.batches:
            batch = largest[context] if label == "max" else label
            if not batch:
                print(f"{mode:>8} ctx {context} batch {label}: not run (largest batch "
                      f"{report.fmt(largest[context])})", flush=True)
                continue
            row = run_batch(engine, batch, context, args)
            row.update(mode=mode, label=str(label), pinned_cpu_gib=pinned_gib,
                       largest_batch=largest[context], max_num_seqs=max_seqs,
                       kv_in_use_gib=row["gpu_kv_pages_used"] * 2 * page / GIB)
            add_roofline(row, mode, shape, sparse, args, itemsize, hbm_bps)
            print(report.format_row(row), flush=True)
            if "profile" in row:
                kind = "eager" if args.enforce_eager else "default"
                print(format_profile(f"    profile ({kind})", row["profile"]), flush=True)
                if row["profile"]["graphs_hide_kernels"]:
                    hidden.append(row)
            rows.append(row)
    del llm, engine
    free_memory()
    if hidden:
        profile_eager(path, args, mode, cpu_gb, hidden)
    return rows, largest


def profile_eager(path, args, mode: str, cpu_gb: float, rows: list[dict]):
    """Profiles the rows again on an engine without CUDA graphs, whose replays hid the kernels."""
    print(f"    {mode}: the profiler saw graph launches but no kernels inside them (CUDA graph "
          "replays); profiling again on an engine with enforce_eager=True", flush=True)
    llm = build_llm(path, args, mode, max(r["batch"] for r in rows),
                    cpu_gb if mode == "shadowkv" else 0.0, True)
    for row in rows:
        row["profile_eager"] = run_batch(llm.engine, row["batch"], row["context"], args,
                                         timed=False)["profile"]
        print(format_profile(f"    profile, eager engine, ctx {row['context']} batch "
                             f"{row['batch']}", row["profile_eager"]), flush=True)
    del llm
    free_memory()


def free_memory():
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def hbm_bandwidth(device: str) -> float:
    """Bytes/s of a large device-to-device copy, counting bytes read + written: the median of 5
    timings of 10 back-to-back copies (after a warm-up)."""
    on_cuda = device != "cpu"
    nbytes = 2 * GIB if on_cuda else GIB // 4
    x = torch.empty(nbytes, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    y.copy_(x)
    times = []
    for _ in range(5):
        sync(on_cuda)
        start = time.perf_counter()
        for _ in range(10):
            y.copy_(x)
        sync(on_cuda)
        times.append((time.perf_counter() - start) / 10)
    del x, y
    free_memory()
    return 2 * nbytes / sorted(times)[len(times) // 2]


def host_memory() -> tuple[float, float]:
    """(total, available) host RAM in GiB, from /proc/meminfo."""
    info = dict(line.split(":") for line in Path("/proc/meminfo").read_text().splitlines())
    kib = lambda key: int(info[key].split()[0])
    return kib("MemTotal") / 2**20, kib("MemAvailable") / 2**20


def pinned_pool_gb(args, shape: ModelShape, itemsize: int, available_gib: float) -> float:
    if args.cpu_offload_gb is not None:
        return args.cpu_offload_gb
    numeric = [b for b in args.batches if b != "max"]
    seqs = args.max_num_seqs if "max" in args.batches else max(numeric)
    context = max(args.context) + decode_tokens(seqs, max(args.context), args)
    wanted = seqs * context * shape.kv_bytes_per_token(itemsize) / 2 * 1.1 / GIB
    return min(wanted, 0.8 * available_gib)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="llama3.1-8b", choices=sorted(SHAPES))
    parser.add_argument("--layers", type=int, default=None, help="fewer layers (quick runs)")
    parser.add_argument("--context", type=int, nargs="+", default=None,
                        help="prompt lengths (default 32768; 2048 for --shape tiny)")
    parser.add_argument("--batches", nargs="+", default=["1", "4", "8"],
                        help="batch sizes; 'max' = the largest that fits for each mode")
    parser.add_argument("--new-tokens", type=int, default=32, help="timed decode steps")
    parser.add_argument("--warmup", type=int, default=3, help="decode steps before timing")
    parser.add_argument("--budget", type=int, default=2048)
    parser.add_argument("--attention", nargs="+", default=["dense", "shadowkv"],
                        choices=["dense", "shadowkv"])
    parser.add_argument("--attention-backend", default="auto",
                        choices=["auto", "flashinfer", "torch"])
    parser.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--max-num-seqs", type=int, default=64,
                        help="engine batch cap when 'max' is in --batches")
    parser.add_argument("--cpu-offload-gb", type=float, default=None,
                        help="pinned value pool (default: what the batches need, at most 80%% "
                             "of the available host RAM)")
    parser.add_argument("--pcie-gbs", type=float, default=50.0, help="PCIe GB/s of the roofline")
    parser.add_argument("--project-hit-rates", type=float, nargs="*", default=[0.55, 0.7, 0.89],
                        help="hit rates for the roofline-projected ShadowKV/dense ratio")
    parser.add_argument("--profile", action="store_true", help="per-phase GPU time per step")
    parser.add_argument("--profile-steps", type=int, default=5)
    parser.add_argument("--peer", choices=["hf"], default=None,
                        help="also time Hugging Face transformers (same shape, batch, context)")
    parser.add_argument("--peer-batches", type=int, nargs="+", default=None,
                        help="the peer's batch sizes (default: every batch measured)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    args.context = args.context or [2048 if args.shape == "tiny" else 32768]
    args.batches = [b if b == "max" else int(b) for b in args.batches]
    if not args.profile:
        args.profile_steps = 0
    return args


def main():
    args = parse_args()
    path = shape_dir(args.shape, args.layers)
    config = json.loads((path / "config.json").read_text())
    shape = ModelShape.from_config(config)
    itemsize = 4 if args.device == "cpu" else 2
    meta = report.run_meta(args)
    meta["hbm_gbs"] = hbm_bandwidth(args.device) / 1e9
    meta["host_ram_gib"], available = host_memory()
    cpu_gb = pinned_pool_gb(args, shape, itemsize, available)
    print(report.format_meta(meta), flush=True)
    rows, largest = [], {}
    for mode in args.attention:
        mode_rows, largest[mode] = run_mode(path, args, mode, shape, itemsize,
                                            meta["hbm_gbs"] * 1e9, cpu_gb)
        rows += mode_rows
    peers = []
    if args.peer == "hf":
        dtype = torch.float32 if args.device == "cpu" else torch.bfloat16
        for context in args.context:
            measured = {r["batch"] for r in rows if r["context"] == context}
            for batch in sorted(measured & set(args.peer_batches or measured)):
                peer = hf_peer.decode_tok_s(path, batch, context, args.new_tokens, args.device,
                                            dtype, shape.vocab)
                peers.append(dict(context=context, batch=batch, **peer))
                print(report.format_peer(peers[-1]), flush=True)
    projections = report.projections(rows, largest, shape, args, itemsize, meta["hbm_gbs"] * 1e9)
    print(report.summary(meta, rows, largest, peers, projections, args))
    if args.out:
        Path(args.out).write_text(json.dumps(dict(meta=meta, rows=rows, largest_batch=largest,
                                                  peers=peers, projections=projections),
                                             indent=1, default=str))


if __name__ == "__main__":
    main()
