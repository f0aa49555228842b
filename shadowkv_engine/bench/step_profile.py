"""Where a decode step's time goes: torch.profiler over a few engine steps, kernels by phase.

On CUDA each kernel counts its GPU duration; GPU busy time is the union of kernel intervals (a
kernel on the copy stream that overlaps compute counts once), and wall minus busy is host
overhead the GPU waited through. On the CPU the same phases are read from the ops' own (self)
CPU time, so the table still says where time goes. The engine's `host:*` ranges say where the
host's share of a step goes (scheduling, metadata, attention plan, launch, sampling, outputs).
"""
import time

import torch

# First match wins: the specific ShadowKV kernels before the generic names they also contain.
PHASES = (
    ("top-k + plan (one kernel)", ("select_kernel",)),
    ("coefficient projection", ("project_kernel",)),
    ("value gather", ("gather_kernel",)),
    ("value offload", ("offload_kernel",)),
    ("key rebuild", ("rebuild",)),
    ("landmark scoring", ("score", "normalize_kernel")),
    ("sampling", ("sampl", "argmax", "multinomial", "exponential")),
    ("top-k", ("topk", "radix", "sort")),
    ("hit/miss plan", ("plan",)),
    ("attention", ("flashinfer", "batchdecode", "batchprefill", "flash", "attention", "sdpa",
                   "fmha")),
    ("GEMM", ("gemm", "gemv", "cutlass", "cublas", "nvjet", "xmma", "aten::mm", "aten::addmm",
              "aten::bmm")),
    ("copy/index glue", ("memcpy", "memset", "copy", "catarray", "aten::cat", "index", "scatter",
                         "gather")),
)
OTHER = "other elementwise"


def classify(name: str) -> str:
    lowered = name.lower()
    for phase, patterns in PHASES:
        if any(p in lowered for p in patterns):
            return phase
    return OTHER


def union_us(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of [start, end) intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


TOP_KERNELS = 40  # kernels by name kept in a result, the longest first


def breakdown(kernels: list[tuple[str, float, float]], steps: int, wall_s: float) -> dict:
    """kernels: (name, start µs, duration µs). Milliseconds per step by phase, busy and wall;
    and the TOP_KERNELS longest kernel names: (name, phase, launches per step, ms per step)."""
    phases = {phase: 0.0 for phase, _ in PHASES} | {OTHER: 0.0}
    by_name: dict[str, list[float]] = {}
    for name, _, duration in kernels:
        phases[classify(name)] += duration / 1e3 / steps
        entry = by_name.setdefault(name, [0.0, 0.0])
        entry[0] += 1 / steps
        entry[1] += duration / 1e3 / steps
    top = sorted(by_name.items(), key=lambda item: -item[1][1])[:TOP_KERNELS]
    busy = union_us([(start, start + duration) for _, start, duration in kernels]) / 1e3 / steps
    return {"phases_ms": phases, "busy_ms": busy, "wall_ms": wall_s * 1e3 / steps,
            "kernels_per_step": len(kernels) / steps,
            "top_kernels": [(name, classify(name), count, ms) for name, (count, ms) in top]}


def profile_steps(engine, steps: int, on_cuda: bool) -> dict:
    """Runs `steps` engine steps under the profiler; the per-step breakdown, and whether CUDA
    graph replays hid their kernels (graph launches seen, no GEMM kernel seen)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    with profile(activities=activities) as prof:
        if on_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            engine.step()
        if on_cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    events = prof.events()
    if on_cuda:
        device = torch.autograd.DeviceType.CUDA
        # The engine's host:* ranges also show on the GPU timeline (as user annotations over
        # the kernels they launched): they are not kernels.
        kernels = [(e.name, e.time_range.start, e.time_range.elapsed_us()) for e in events
                   if e.device_type == device and not e.name.startswith("host:")]
    else:
        kernels = [(e.name, e.time_range.start, e.self_cpu_time_total) for e in events
                   if "::" in e.name]  # ops (aten::, shadowkv::), not Python-level ranges
    result = breakdown(kernels, steps, wall)
    graph_launches = sum("cudaGraphLaunch" in e.name for e in events)
    result["graph_launches_per_step"] = graph_launches / steps
    result["graphs_hide_kernels"] = bool(graph_launches) and result["phases_ms"]["GEMM"] == 0.0
    result["host_ms"] = host_phases(events, steps)
    if not on_cuda:  # self times of nested ops overlap in time: no meaningful union
        result["busy_ms"] = sum(result["phases_ms"].values())
    return result


def host_phases(events, steps: int) -> dict:
    """Host milliseconds per step in each of the engine's `host:*` ranges (llm_engine.step,
    model_runner.run). All but the sampler's run while the GPU waits for the next launch
    (the end-of-step work is issued after the launch and overlaps it)."""
    host: dict[str, float] = {}
    cpu = torch.autograd.DeviceType.CPU
    for e in events:
        if e.name.startswith("host:") and e.device_type == cpu:
            name = e.name.removeprefix("host:")
            host[name] = host.get(name, 0.0) + e.time_range.elapsed_us() / 1e3 / steps
    return host


def format_profile(label: str, result: dict, top_kernels: int = 0) -> str:
    """The phases, longest first; with top_kernels, that many kernel names after them."""
    wall, busy = result["wall_ms"], result["busy_ms"]
    lines = [f"{label}: wall {wall:.2f} ms/step, busy {busy:.2f} ms/step "
             f"({100 * busy / wall if wall else 0:.0f}%), host overhead {max(wall - busy, 0):.2f} "
             f"ms/step, {result['kernels_per_step']:.0f} kernels/step, "
             f"{result['graph_launches_per_step']:.1f} graph launches/step"]
    if result.get("host_ms"):
        lines.append("    host, ms/step: " + ", ".join(
            f"{name} {ms:.2f}" for name, ms in result["host_ms"].items()))
    for phase, ms in sorted(result["phases_ms"].items(), key=lambda kv: -kv[1]):
        if ms > 0:
            share = 100 * ms / busy if busy else 0.0
            lines.append(f"    {phase:<25} {ms:8.3f} ms/step  {share:5.1f}%")
    kernels = result.get("top_kernels", [])[:top_kernels]
    if kernels:
        lines.append(f"    longest {len(kernels)} kernels (launches/step, ms/step, phase):")
    for name, phase, count, ms in kernels:
        lines.append(f"      {count:6.1f} {ms:7.3f}  {phase:<25} {_short(name)}")
    return "\n".join(lines)


def _short(name: str, width: int = 110) -> str:
    """A kernel's name cut to one line: C++ template arguments make them very long."""
    return name if len(name) <= width else name[:width - 3] + "..."
