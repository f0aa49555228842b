"""Paged attention on flashinfer's kernels: they read the page arena where it is, no copies.

  - decode: `BatchDecodeWithPagedKVCacheWrapper` (tensor-core kernels), over token pages in dense
    mode, or over head blocks (one request per sequence and KV head, its GQA group of queries)
    in ShadowKV mode;
  - prefill: `BatchPrefillWithPagedKVCacheWrapper`, causal, over token pages.
Each is planned once per step on the host (the page lists are the same for every layer; the
layer only moves the base of the K/V views). Captured decode steps use one wrapper per padded
batch size, in flashinfer's CUDA-graph mode (fixed buffers the plan writes into).
"""
import torch

from .step_metadata import PagedRequests, StepMetadata
from .storage import KVStorage

WORKSPACE_BYTES = 256 << 20


def flashinfer_available() -> bool:
    try:
        import flashinfer  # noqa: F401
    except ImportError:
        return False
    return True


class FlashInferAttention:
    name = "flashinfer"

    def __init__(self, storage: KVStorage, num_q_heads: int, sliding_window: int | None,
                 max_indices: int, prefill: bool = True):
        """prefill=False: decode only (the second micro-batch of a two-batch-overlap step)."""
        import flashinfer

        self.flashinfer = flashinfer
        self.storage = storage
        self.num_q_heads = num_q_heads
        self.window_left = -1 if sliding_window is None else sliding_window - 1
        device = storage.device
        self.decode_workspace = torch.zeros(WORKSPACE_BYTES, dtype=torch.uint8, device=device)
        self.eager_decode = flashinfer.BatchDecodeWithPagedKVCacheWrapper(
            self.decode_workspace, "HND", use_tensor_cores=True)
        self.prefill_wrapper = None
        if prefill:
            self.prefill_workspace = torch.zeros(WORKSPACE_BYTES, dtype=torch.uint8,
                                                 device=device)
            self.prefill_wrapper = flashinfer.BatchPrefillWithPagedKVCacheWrapper(
                self.prefill_workspace, "HND", backend="fa2")
        # CUDA-graph wrappers share one page-index buffer: one plan is live per step.
        self.graph_indices = torch.zeros(max_indices, dtype=torch.int32, device=device)
        self.graph_decode: dict[int, object] = {}
        self.meta: StepMetadata | None = None
        self.decode_wrapper = None
        # Page-locked copies of the plan's host arrays: flashinfer copies them to the device
        # without blocking only from pinned memory (from pageable memory the copy waits for the
        # GPU, and the next step could not be launched while this one runs). The engine rewrites
        # them only after the GPU has copied the previous step's (model_runner.py).
        self.pinned: dict[str, torch.Tensor] = {}

    def _graph_wrapper(self, num_requests: int):
        wrapper = self.graph_decode.get(num_requests)
        if wrapper is None:
            device = self.storage.device
            wrapper = self.flashinfer.BatchDecodeWithPagedKVCacheWrapper(
                self.decode_workspace, "HND", use_tensor_cores=True, use_cuda_graph=True,
                paged_kv_indptr_buffer=torch.zeros(num_requests + 1, dtype=torch.int32,
                                                   device=device),
                paged_kv_indices_buffer=self.graph_indices,
                paged_kv_last_page_len_buffer=torch.zeros(num_requests, dtype=torch.int32,
                                                          device=device))
            self.graph_decode[num_requests] = wrapper
        return wrapper

    def begin_step(self, meta: StepMetadata, graph_batch: int | None = None) -> None:
        self.meta = meta
        dtype = self.storage.dtype
        layout = self.storage.layout
        if meta.decode is not None:
            requests = meta.decode
            self.decode_wrapper = (self._graph_wrapper(requests.num_requests)
                                   if graph_batch is not None else self.eager_decode)
            if requests.per_head:
                q_heads, kv_heads = self.num_q_heads // layout.num_kv_heads, 1
            else:
                q_heads, kv_heads = self.num_q_heads, layout.num_kv_heads
            self.decode_wrapper.plan(
                self._host("decode_indptr", requests.indptr), requests.indices,
                self._host("decode_last", requests.last_page_len),
                q_heads, kv_heads, layout.head_dim, requests.page_size, q_data_type=dtype,
                kv_data_type=dtype,
                window_left=-1 if requests.per_head else self.window_left)
        if meta.prefill is not None:
            requests = meta.prefill
            self.prefill_wrapper.plan(
                self._host("prefill_qo_indptr", requests.qo_indptr),
                self._host("prefill_indptr", requests.indptr), requests.indices,
                self._host("prefill_last", requests.last_page_len), self.num_q_heads,
                layout.num_kv_heads, layout.head_dim, requests.page_size, causal=True,
                q_data_type=dtype,
                kv_data_type=dtype, window_left=self.window_left)

    def decode(self, layer: int, q: torch.Tensor) -> torch.Tensor:
        requests: PagedRequests = self.meta.decode
        if requests.per_head:
            cache = self.storage.head_block_views(layer, requests.page_size)
            queries = q.view(requests.num_requests, -1, q.shape[-1])
        else:
            cache = (self.storage.kv[:, layer, 0], self.storage.kv[:, layer, 1])
            queries = q
        return self.decode_wrapper.run(queries, cache).view(q.shape)

    def prefill(self, layer: int, q: torch.Tensor) -> torch.Tensor:
        cache = (self.storage.kv[:, layer, 0], self.storage.kv[:, layer, 1])
        return self.prefill_wrapper.run(q, cache)

    def _host(self, name: str, values) -> torch.Tensor:
        """values (a numpy array) in this name's pinned buffer, grown as needed."""
        buffer = self.pinned.get(name)
        if buffer is None or len(buffer) < len(values):
            buffer = self.pinned[name] = torch.empty(max(len(values), 1024),
                                                     dtype=torch.from_numpy(values).dtype,
                                                     pin_memory=True)
        view = buffer[:len(values)]
        view.numpy()[:] = values
        return view
