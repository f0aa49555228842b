"""PNG plots of a result: latency distributions per level, and throughput and p99 TTFT against
concurrency for a sweep. matplotlib is the `bench` extra, imported only here."""
from pathlib import Path

import numpy as np

PANELS = (("ttft_s", "TTFT (ms)"), ("tpot_s", "TPOT (ms)"), ("itl_s", "ITL (ms)"),
          ("latency_s", "E2E latency (ms)"))


def pyplot():
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ModuleNotFoundError("plots need matplotlib: pip install 'shadowkv-engine[bench]'"
                                  ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def level_label(run: dict) -> str:
    return f"concurrency {run['max_concurrency'] or 'unbounded'}"


def milliseconds(run: dict, key: str) -> list[float]:
    done = [r for r in run["requests"] if r["success"]]
    if key == "itl_s":
        return [1000 * gap for r in done for gap in r["itl_s"]]
    return [1000 * r[key] for r in done if r[key] is not None]


def latency_distributions(result: dict, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, (key, title) in zip(axes.flat, PANELS):
        per_run = [milliseconds(run, key) for run in result["runs"]]
        pooled = [v for values in per_run for v in values]
        bins = np.histogram_bin_edges(pooled, bins=30) if pooled else 30
        for run, values in zip(result["runs"], per_run):
            if values:
                ax.hist(values, bins=bins, alpha=0.5, label=level_label(run))
        ax.set_xlabel(title)
        ax.set_ylabel("count")
        ax.legend(fontsize="small")
    fig.suptitle(f"{result['model']} — {result['dataset']}, {result['num_prompts']} prompts")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sweep(result: dict, path: Path) -> Path:
    plt = pyplot()
    runs = [r for r in result["runs"] if r["max_concurrency"]]
    levels = [r["max_concurrency"] for r in runs]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = (("output_throughput", "output tokens/s"), ("total_token_throughput",
              "total tokens/s (input + output)"), ("p99_ttft", "p99 TTFT (ms)"))
    for ax, (key, title) in zip(axes, panels):
        values = [r["ttft_ms"]["p99"] if key == "p99_ttft" else r[key] for r in runs]
        ax.plot(levels, values, marker="o")
        ax.set_ylabel(title)
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(n) for n in levels])
        ax.set_xlabel("max concurrency")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{result['model']} — {result['dataset']}, {result['num_prompts']} prompts")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
