"""What the machine offers a throughput run: HBM copy bandwidth, host RAM and the pinned pool it
affords, freeing memory between engines."""
import gc
import time
from pathlib import Path

import torch

from .engine_steps import GIB, decode_tokens, sync
from .roofline import ModelShape


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
    """--cpu-offload-gb, else the values (half the KV) of the most sequences at the longest
    context with 10% to spare, at most 80% of the available host RAM."""
    if args.cpu_offload_gb is not None:
        return args.cpu_offload_gb
    numeric = [b for b in args.batches if b != "max"]
    seqs = args.max_num_seqs if "max" in args.batches else max(numeric)
    context = max(args.context) + decode_tokens(seqs, max(args.context), args)
    wanted = seqs * context * shape.kv_bytes_per_token(itemsize) / 2 * 1.1 / GIB
    return min(wanted, 0.8 * available_gib)
