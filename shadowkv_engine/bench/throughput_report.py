"""What `bench throughput` prints: the run's identity, one block per measured configuration, the HF
peer, and the summary per context with the roofline-projected ShadowKV/dense ratios."""
import datetime
import os
import platform
import subprocess
import sys

import torch

from ..config import ShadowKVConfig
from .roofline import ModelShape, SparseSettings, roofline_tokens_per_s


def fmt(value, spec: str = "", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def git_commit() -> str:
    """GIT_COMMIT wins: the GPU machine may get the tree without .git."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_meta(args) -> dict:
    on_cuda = args.device != "cpu"
    return {"device": torch.cuda.get_device_name() if on_cuda else
            f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(), "torch": torch.__version__, "command": " ".join(sys.argv),
            "model": args.model, "shape": args.shape, "load_format": args.load_format,
            "layers": args.layers, "budget": args.budget, "landmark": args.landmark,
            "enforce_eager": args.enforce_eager, "attention_backend": args.attention_backend,
            "async_scheduling": args.async_scheduling,
            "two_batch_overlap": args.two_batch_overlap, "pcie_gbs": args.pcie_gbs}


def model_label(meta: dict) -> str:
    return meta["model"] or meta["shape"]


def format_meta(meta: dict) -> str:
    return (f"{meta['device']}, {meta['date']}, commit {meta['commit']}, torch {meta['torch']}\n"
            f"{model_label(meta)} ({meta['load_format']} weights"
            f"{', ' + str(meta['layers']) + ' layers' if meta['layers'] else ''})"
            f", budget {meta['budget']}, {meta.get('landmark', 'mean')} landmarks"
            f", backend {meta['attention_backend']}"
            f"{', eager' if meta['enforce_eager'] else ''}"
            f"{'' if meta.get('async_scheduling', True) else ', no async scheduling'}"
            f", two-batch overlap {meta.get('two_batch_overlap', 'off')}; HBM copy "
            f"{meta['hbm_gbs']:.0f} GB/s "
            f"(read + write, this run), PCIe {meta['pcie_gbs']:.0f} GB/s (roofline), host RAM "
            f"{meta['host_ram_gib']:.1f} GiB")


# The summary's ShadowKV rows, by mode, with what their batch label gets appended.
SPARSE_MODES = {"shadowkv": "", "shadowkv-host": " host"}


def format_row(row: dict) -> str:
    roof = row["roofline"]
    hit = fmt(row.get("hit_rate"), ".3f")
    lines = [
        f"{row['mode']:>8} ctx {row['context']} batch {row['batch']}"
        f"{' (max)' if row['label'] == 'max' else ''}: prefill {row['prefill_s']:.2f} s"
        f"{_preempted(row)}, decode "
        f"{row['decode_tok_s']:.1f} tok/s ({row['step_ms']:.2f} ms/step), hit rate {hit}",
        f"         equivalent bandwidth {row['equivalent_gbs']:.5g} GB/s (a dense step's "
        f"{row['dense_kv_bytes'] / 1e9:.4g} GB of KV over the measured step time)",
        f"         roofline {roof['step_ms']:.2f} ms/step = {roof['tok_s']:.0f} tok/s "
        f"({roof['bound']} bound: {roof['hbm_bytes'] / 1e9:.2f} GB HBM, "
        f"{roof['pcie_bytes'] / 1e9:.3f} GB PCIe a step): {100 * row['roofline_fraction']:.1f}% "
        "reached",
        f"         peak GPU {fmt(row['peak_gpu_gib'], '.1f')} GiB, KV pages in use "
        f"{row['kv_in_use_gib']:.2f} GiB, pinned CPU {row['pinned_cpu_gib']:.2f} GiB, values in "
        f"GPU memory {row['gpu_value_gib']:.2f} GiB; largest batch {fmt(row['largest_batch'])}"]
    if row["mode"] != "dense":
        lines.append(f"         fetched values read over PCIe: {100 * row['host_share']:.1f}% "
                     f"({row['host_fetch_bytes'] / 1e9:.2f} GB in {row['steps']} steps)")
    if not row["batch_intact"] or row["preemptions"]:
        lines.append(f"         WARNING: {row['tokens']} tokens in {row['steps']} steps (not "
                     f"{row['batch']} a step), {row['preemptions']} preemptions")
    return "\n".join(lines)


def _preempted(row: dict) -> str:
    """Preemptions while the batch prefilled (recomputed prompts), when there were any."""
    count = row.get("prefill_preemptions")
    return f" ({count} preemptions)" if count else ""


def format_peer(peer: dict) -> str:
    head = f"      hf ctx {peer['context']} batch {peer['batch']}:"
    if "skipped" in peer:
        return f"{head} skipped: {peer['skipped']}"
    return f"{head} decode {peer['decode_tok_s']:.1f} tok/s (prefill {peer['prefill_s']:.2f} s)"


def _batches(label, context: int, largest: dict) -> tuple:
    if label != "max":
        return label, label
    return tuple(largest.get(mode, {}).get(context) for mode in ("dense", "shadowkv"))


def projections(rows, largest, shape: ModelShape, args, itemsize: int, hbm_bps: float) -> list:
    """Roofline ShadowKV/dense tokens/s at each --project-hit-rates value, per context and batch
    (each mode at its own largest batch for 'max'), with the share of fetched values that the
    shadowkv row read over PCIe (all, where it was not measured)."""
    kv = ShadowKVConfig(sparse_budget=args.budget, landmark=args.landmark).for_model(
        shape.kv_heads, shape.head_dim)
    sparse = SparseSettings.of(kv)
    out = []
    labels = list(dict.fromkeys(args.batches + ["max"]))
    for context in args.context:
        seen = set()
        for label in labels:
            dense_b, sparse_b = _batches(label, context, largest)
            if not dense_b or not sparse_b or (dense_b, sparse_b) in seen:
                continue
            seen.add((dense_b, sparse_b))
            measured = [r for r in rows if r["mode"] == "shadowkv" and r["context"] == context
                        and r["label"] == str(label) and "host_share" in r]
            host_share = measured[0]["host_share"] if measured else 1.0
            for hit in args.project_hit_rates:
                dense, tps = roofline_tokens_per_s(shape, sparse, context, dense_b, sparse_b, hit,
                                                   itemsize, hbm_bps, args.pcie_gbs * 1e9,
                                                   host_share)
                out.append({"context": context, "label": str(label), "dense_batch": dense_b,
                            "shadowkv_batch": sparse_b, "hit_rate": hit, "dense_tok_s": dense,
                            "shadowkv_tok_s": tps, "ratio": tps / dense,
                            "host_share": host_share})
    return out


def summary(meta, rows, largest, peers, projections, args) -> str:
    lines = []
    hf = {(p["context"], p["batch"]): p["decode_tok_s"] for p in peers if "decode_tok_s" in p}
    for context in args.context:
        lines += ["", f"== context {context}: {meta['device']}, {model_label(meta)}, budget "
                      f"{meta['budget']}, commit {meta['commit']}, {meta['date']}",
                  f"{'batch':<12} {'dense tok/s (roof)':>20} {'shadowkv tok/s (roof)':>23} "
                  f"{'ratio':>6} {'hit rate':>8} {'HF tok/s':>9} {'dense/HF':>8} "
                  f"{'skv/HF':>7} {'equiv GB/s dense|skv':>21}"]
        for label, sparse_mode in ((str(b), m) for b in dict.fromkeys(args.batches)
                                   for m in SPARSE_MODES):
            cell = {r["mode"]: r for r in rows if r["context"] == context and r["label"] == label}
            if not cell or (sparse_mode not in cell and sparse_mode != "shadowkv"):
                continue
            dense, skv = cell.get("dense"), cell.get(sparse_mode)
            if dense is None and skv is None:  # e.g. a run of shadowkv-host alone
                continue
            name = label if label != "max" else "max " + "|".join(
                str(cell[m]["batch"]) if m in cell else "-" for m in ("dense", sparse_mode))
            name += SPARSE_MODES[sparse_mode]

            def tps(r):
                return "-" if r is None else (f"{r['decode_tok_s']:.1f} "
                                              f"({100 * r['roofline_fraction']:.0f}%)")

            ratio = skv["decode_tok_s"] / dense["decode_tok_s"] if dense and skv else None

            def versus_hf(r):
                peer = r and hf.get((context, r["batch"]))
                return peer and r["decode_tok_s"] / peer

            first = dense or skv
            equivalent = "|".join(fmt(r and r["equivalent_gbs"], ".5g") for r in (dense, skv))
            lines.append(
                f"{name:<12} {tps(dense):>20} {tps(skv):>23} {fmt(ratio, '.2f'):>6} "
                f"{fmt(skv and skv['hit_rate'], '.3f'):>8} "
                f"{fmt(hf.get((context, first['batch'])), '.1f'):>9} "
                f"{fmt(versus_hf(dense), '.2f'):>8} {fmt(versus_hf(skv), '.2f'):>7} "
                f"{equivalent:>21}")
        sparse_rows = [r for r in rows if r["mode"] != "dense"]
        pinned = max((r["pinned_cpu_gib"] for r in sparse_rows), default=None)
        on_gpu = max((r["gpu_value_gib"] for r in sparse_rows), default=None)
        cap = max((r["max_num_seqs"] for r in rows), default=None)
        fits = ", ".join(f"{mode} {fmt(batches.get(context))}" for mode, batches in largest.items())
        lines.append(f"largest batch that fits: {fits} (at most the engine's max_num_seqs "
                     f"{fmt(cap)}; pinned value pool {fmt(pinned, '.2f')} GiB of "
                     f"{meta['host_ram_gib']:.1f} GiB host RAM, values in GPU memory up to "
                     f"{fmt(on_gpu, '.2f')} GiB)")
        proj = [p for p in projections if p["context"] == context]
        if proj:
            lines.append("roofline-projected ShadowKV/dense tok/s at hit rate "
                         + " / ".join(f"{h:g}" for h in args.project_hit_rates) + ":")
            for label in dict.fromkeys(p["label"] for p in proj):
                cells = [p for p in proj if p["label"] == label]
                lines.append(f"  batch {cells[0]['dense_batch']} vs {cells[0]['shadowkv_batch']}"
                             f"{' (largest)' if label == 'max' else ''}: "
                             + " / ".join(f"{p['ratio']:.2f}" for p in cells))
    return "\n".join(lines)
