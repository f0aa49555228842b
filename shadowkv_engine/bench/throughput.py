r"""`shadowkv bench throughput`: offline decode throughput, dense vs ShadowKV, on the same engine
in one process, against each configuration's roofline. The model is a checkpoint folder
(`--model PATH`, its weights or `--load-format dummy`) or a named shape with random weights
(`--shape llama3.1-8b`; no download: timing does not depend on weight values).

    shadowkv bench throughput --shape llama3.1-8b --context 32768 122880 --batches 1 8 max \
        --profile --peer hf --project-hit-rates 0.33 0.37 0.47 --out results.json

For each attention mode, context and batch it drives `LLMEngine` directly: adds the batch, steps
until every sequence has its first token (prefill and compression: "prefill"), runs warm-up
steps, then times --new-tokens steps between CUDA synchronisations. It prints decode tokens/s,
the equivalent bandwidth (the KV bytes a dense step would read, over the measured step time), the
roofline (bytes per step at the HBM bandwidth measured here by a device-to-device copy, and PCIe
bytes at --pcie-gbs; roofline.py), the fraction of it reached, the ShadowKV hit rate of the timed
steps, peak GPU memory, pinned CPU memory and the largest batch each mode fits at this context
("max" in --batches runs it). --profile breaks a few steps down by kernel phase (step_profile.py);
--peer hf times Hugging Face transformers on the same shape (hf_peer.py; random weights).
`--shape tiny --device cpu` is a smoke test that runs on a CPU in seconds. Also runnable as
`python benchmarks/throughput.py ...`.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..config import LANDMARKS
from ..llm import LLM
from . import hf_peer
from . import throughput_report as report
from .engine_steps import GIB, MAX_BATCHED_TOKENS, decode_tokens, largest_batch, run_batch
from .machine import free_memory, hbm_bandwidth, host_memory, pinned_pool_gb
from .roofline import ModelShape, SparseSettings, dense_step, step_bytes
from .shapes import SHAPES, write_shape
from .step_profile import format_profile

COMPRESS_FROM = 1024  # shadowkv.min_context_len: shorter prompts stay dense


# Attention modes the benchmark compares: ShadowKV with the engine's value placement (values in
# spare GPU memory first, --gpu-value-store-gb), and with every value in host memory (the paper).
MODES = {"dense": ("dense", 0.0), "shadowkv": ("shadowkv", None),
         "shadowkv-host": ("shadowkv", 0.0)}


def build_llm(path: Path, args, mode: str, max_seqs: int, cpu_gb: float,
              enforce_eager: bool) -> LLM:
    on_gpu = args.device != "cpu"
    limit = json.loads((path / "config.json").read_text())["max_position_embeddings"]
    max_len = min(limit, max(args.context) + decode_tokens(max_seqs, max(args.context), args))
    attention, gpu_value_gb = MODES[mode]
    if mode == "shadowkv" and args.gpu_value_store_gb is not None:
        gpu_value_gb = args.gpu_value_store_gb
    return LLM(model=str(path), device=args.device, dtype="bfloat16" if on_gpu else "float32",
               attention=attention, num_gpu_blocks=None if on_gpu else 4096,
               gpu_value_store_gb=gpu_value_gb,
               load_format=args.load_format, max_model_len=max_len, max_num_seqs=max_seqs,
               max_num_batched_tokens=MAX_BATCHED_TOKENS, gpu_memory_utilization=0.92,
               cpu_offload_gb=cpu_gb, enforce_eager=enforce_eager,
               async_scheduling=args.async_scheduling, attention_backend=args.attention_backend,
               two_batch_overlap=args.two_batch_overlap,
               shadowkv={"sparse_budget": args.budget, "min_context_len": COMPRESS_FROM,
                         "landmark": args.landmark})


def timed_context(row: dict, args) -> int:
    """The mean sequence length over the timed steps (prefill-time decodes of early sequences
    ignored)."""
    return row["context"] + args.warmup + 1 + args.new_tokens // 2


def add_roofline(row: dict, mode: str, shape: ModelShape, sparse: SparseSettings | None,
                 args, itemsize: int, hbm_bps: float):
    context = timed_context(row, args)
    compressed = sparse is not None and row["context"] >= COMPRESS_FROM
    hit = row.get("hit_rate") or 0.0
    chunk_bytes = sparse.chunk_size * shape.head_dim * itemsize if sparse else 0
    fetched = row.get("fetched_chunks", 0) * chunk_bytes
    # The share of fetched values read over PCIe (the rest come from the device tier).
    row["host_share"] = row.get("host_fetch_bytes", 0) / fetched if fetched else 1.0
    cost = step_bytes(mode, shape, sparse if compressed else None, row["batch"], context,
                      1.0 - hit, itemsize, row["host_share"])
    seconds = cost.seconds(hbm_bps, args.pcie_gbs * 1e9)
    row["roofline"] = {"hbm_bytes": cost.hbm, "pcie_bytes": cost.pcie, "parts": cost.parts,
                       "step_ms": seconds * 1e3, "tok_s": row["batch"] / seconds,
                       "bound": "PCIe" if cost.pcie / (args.pcie_gbs * 1e9) > cost.hbm / hbm_bps
                       else "HBM"}
    if "decode_tok_s" in row:
        row["roofline_fraction"] = row["decode_tok_s"] / row["roofline"]["tok_s"]


def add_equivalent_bandwidth(row: dict, shape: ModelShape, args, itemsize: int):
    """The full KV a dense step would read (batch x mean context x KV bytes per token) over the
    measured step time: what ShadowKV's step is worth in dense KV bandwidth."""
    kv = dense_step(shape, row["batch"], timed_context(row, args), itemsize).parts["kv"]
    row["dense_kv_bytes"] = kv
    row["equivalent_gbs"] = kv / (row["step_ms"] / 1e3) / 1e9


def run_mode(path, args, mode, shape, itemsize, hbm_bps, cpu_gb) -> tuple[list, dict]:
    """All contexts and batches of one attention mode on one engine; (rows, largest batches)."""
    numeric = [b for b in args.batches if b != "max"]
    max_seqs = args.max_num_seqs if "max" in args.batches else max(numeric)
    start = time.perf_counter()
    llm = build_llm(path, args, mode, max_seqs, cpu_gb if mode != "dense" else 0.0,
                    args.enforce_eager)
    engine = llm.engine
    sparse = SparseSettings.of(engine.config.shadowkv) if mode != "dense" else None
    page = shape.layers * shape.kv_heads * engine.config.block_size * shape.head_dim * itemsize
    pinned_gib = engine.blocks.value_pool.host.num_pages * page / GIB
    gpu_value_gib = engine.blocks.value_pool.device.num_pages * page / GIB
    # Pinning 100 GiB of host memory alone takes about 70 s: the time before the first prefill.
    print(f"{mode:>8} engine built in {time.perf_counter() - start:.1f} s (pinned value pool "
          f"{pinned_gib:.2f} GiB, values in GPU memory {gpu_value_gib:.2f} GiB)", flush=True)
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
                       gpu_value_gib=gpu_value_gib,
                       largest_batch=largest[context], max_num_seqs=max_seqs,
                       kv_in_use_gib=row["gpu_kv_pages_used"] * 2 * page / GIB)
            add_roofline(row, mode, shape, sparse, args, itemsize, hbm_bps)
            add_equivalent_bandwidth(row, shape, args, itemsize)
            print(report.format_row(row), flush=True)
            if "profile" in row:
                kind = "eager" if args.enforce_eager else "default"
                print(format_profile(f"    profile ({kind})", row["profile"], args.profile_kernels),
                      flush=True)
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
                    cpu_gb if mode != "dense" else 0.0, True)
    for row in rows:
        row["profile_eager"] = run_batch(llm.engine, row["batch"], row["context"], args,
                                         timed=False)["profile"]
        print(format_profile(f"    profile, eager engine, ctx {row['context']} batch "
                             f"{row['batch']}", row["profile_eager"], args.profile_kernels),
              flush=True)
    del llm
    free_memory()


def add_throughput_args(parser: argparse.ArgumentParser):
    model = parser.add_argument_group("model")
    model.add_argument("--model", metavar="PATH", help="a checkpoint folder (instead of --shape)")
    model.add_argument("--shape", choices=sorted(SHAPES), default=None,
                       help="a named shape with random weights (default: llama3.1-8b)")
    model.add_argument("--load-format", choices=["safetensors", "dummy"], default=None,
                       help="dummy: random weights of the model's shapes (always, for --shape)")
    model.add_argument("--layers", type=int, default=None, help="fewer layers (--shape only)")
    parser.add_argument("--context", type=int, nargs="+", default=None,
                        help="prompt lengths (default 32768; 2048 for --shape tiny)")
    parser.add_argument("--batches", nargs="+", default=["1", "4", "8"],
                        help="batch sizes; 'max' = the largest that fits for each mode")
    parser.add_argument("--new-tokens", type=int, default=32, help="timed decode steps")
    parser.add_argument("--warmup", type=int, default=3, help="decode steps before timing")
    parser.add_argument("--budget", type=int, default=2048)
    parser.add_argument("--landmark", default="mean", choices=LANDMARKS,
                        help="ShadowKV chunk landmarks (minmax: twice the landmark bytes)")
    parser.add_argument("--attention", nargs="+", default=["dense", "shadowkv"],
                        choices=sorted(MODES),
                        help="shadowkv-host: ShadowKV with every value in host memory")
    parser.add_argument("--gpu-value-store-gb", type=float, default=None,
                        help="the shadowkv mode's values in GPU memory (default: the engine's "
                             "automatic split)")
    parser.add_argument("--attention-backend", default="auto",
                        choices=["auto", "flashinfer", "torch"])
    parser.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs")
    parser.add_argument("--async-scheduling", action=argparse.BooleanOptionalAction,
                        default=True, help="launch each step before reading the previous "
                        "step's tokens (the engine's default); --no-async-scheduling: wait")
    parser.add_argument("--two-batch-overlap", default="auto", choices=["auto", "on", "off"],
                        help="decode steps as two micro-batches on two streams (engine option; "
                        "auto: ShadowKV steps that read values from host memory)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--max-num-seqs", type=int, default=64,
                        help="engine batch cap when 'max' is in --batches")
    parser.add_argument("--cpu-offload-gb", type=float, default=None,
                        help="pinned value pool (default: what the batches need, at most 80%% "
                             "of the available host RAM)")
    parser.add_argument("--pcie-gbs", type=float, default=50.0, help="PCIe GB/s of the roofline")
    # The shipped model's hit rates at the default budget at 32K, 16K and 8K (docs/accuracy.md).
    parser.add_argument("--project-hit-rates", type=float, nargs="*", default=[0.33, 0.37, 0.47],
                        help="hit rates for the roofline-projected ShadowKV/dense ratio")
    parser.add_argument("--profile", action="store_true", help="per-phase GPU time per step")
    parser.add_argument("--profile-steps", type=int, default=5)
    parser.add_argument("--profile-kernels", type=int, default=0, metavar="N",
                        help="with --profile, also print the N longest kernels by name")
    parser.add_argument("--peer", choices=["hf"], default=None,
                        help="also time Hugging Face transformers (same shape, batch, context)")
    parser.add_argument("--peer-batches", type=int, nargs="+", default=None,
                        help="the peer's batch sizes (default: every batch measured)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")


def check_args(args) -> str | None:
    """Fills in the defaults that depend on other options; what is wrong with them, if anything."""
    if args.model and (args.shape or args.layers):
        return "--model and --shape/--layers exclude each other"
    if args.model is None:
        args.shape = args.shape or "llama3.1-8b"
        if args.load_format == "safetensors":
            return f"--shape {args.shape} has no weights: use --load-format dummy"
        args.load_format = "dummy"
    args.load_format = args.load_format or "safetensors"
    args.context = args.context or [2048 if args.shape == "tiny" else 32768]
    try:
        args.batches = [b if b == "max" else int(b) for b in args.batches]
    except ValueError:
        return "--batches takes integers and 'max'"
    if not args.profile:
        args.profile_steps = 0
    return None


def model_dir(args) -> Path:
    if args.model:
        return Path(args.model)
    return write_shape(args.shape, Path(tempfile.mkdtemp(prefix=f"shape-{args.shape}-")),
                       args.layers)


def run(args: argparse.Namespace) -> int:
    if problem := check_args(args):
        print(f"bench throughput: {problem}", file=sys.stderr)
        return 2
    path = model_dir(args)
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
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/throughput.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_throughput_args(parser)
    return run(parser.parse_args(argv))
