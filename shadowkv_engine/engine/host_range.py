"""Named host ranges for the profiler (bench/step_profile.py reads the `host:*` ones).

`torch.profiler.record_function` costs a dispatcher call on entry and exit even when nobody is
profiling; the engine marks a handful of ranges every step, so it marks them only under an
active profiler.
"""
import contextlib

import torch
from torch.profiler import record_function


def host_range(name: str):
    """A `host:<name>` profiler range while a profiler runs, else nothing."""
    if torch.autograd._profiler_enabled():
        return record_function(f"host:{name}")
    return contextlib.nullcontext()
