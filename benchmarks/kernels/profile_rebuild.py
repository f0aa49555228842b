"""A few launches of the key rebuild on the kernel benchmark's workload, for Nsight Compute.

    ncu --kernel-name regex:rebuild_resident --launch-skip 2 --launch-count 1 \
        --section SpeedOfLight --print-details all \
        --metrics smsp__inst_executed.sum,smsp__issue_active.avg.per_cycle_active \
        python benchmarks/kernels/profile_rebuild.py
    # the mma.sync product (what sm_80 runs): SHADOWKV_REBUILD_KERNEL=mma_sync ncu ...
    # per-instruction counts and stall reasons:
    ncu ... --section SourceCounters --page source --print-source sass --csv python ...
"""
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from bench_kernels import Workload  # noqa: E402

workload = Workload(batch=32, rank=160, fetched=1.0, heads=8, head_dim=128, chunk=8, budget=2048,
                    context=16384)
for _ in range(3):
    workload.rebuild()
torch.cuda.synchronize()
