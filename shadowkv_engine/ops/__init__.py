"""One Python entry per kernel. Each has a plain-torch twin (the oracle, runs anywhere) and, where
the CUDA extension `shadowkv_engine._C` is built and the tensors are on a GPU, a fast path."""
from .chunk_plan import plan_chunk_reuse
from .chunk_selection import select_and_plan
from .chunk_scores import score_chunks, score_chunks_paged
from .chunk_topk import select_top_chunks
from .coefficients import project_coefficients
from .key_rebuild import rebuild_keys
from .paged import PagedTables, gather_head_rows
from .value_gather import gather_values
from .value_offload import offload_values

__all__ = ["PagedTables", "gather_head_rows", "gather_values", "offload_values",
           "plan_chunk_reuse", "project_coefficients", "rebuild_keys", "score_chunks",
           "score_chunks_paged", "select_and_plan", "select_top_chunks"]
