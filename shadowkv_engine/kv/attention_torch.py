"""Paged attention in plain torch: the CPU path, the fallback where flashinfer is missing, and the
twin the flashinfer backend is tested against.

It reads the same step metadata as flashinfer (CSR page lists, see `step_metadata.py`). Decode
is one batched SDPA per layer over the rows' pages gathered into a padded [rows, keys] batch
(a copy, which the paged kernels avoid); prefill attends request by request with a causal mask
built a block of queries at a time, never [T, S] at once for long prompts.
"""
import numpy as np
import torch

from .attention import attend, causal_mask
from .step_metadata import PagedRequests, StepMetadata
from .storage import KVStorage

MASK_ELEMENTS = 1 << 24  # causal mask entries built at once (a block of queries x all keys)


class TorchAttention:
    name = "torch"

    def __init__(self, storage: KVStorage, sliding_window: int | None):
        self.storage = storage
        self.sliding_window = sliding_window
        self.meta: StepMetadata | None = None
        self._decode = None

    def begin_step(self, meta: StepMetadata, graph_batch: int | None = None) -> None:
        if graph_batch is not None:
            raise RuntimeError("the torch attention backend does not run in CUDA graphs")
        self.meta = meta
        self._decode = _padded_table(meta.decode, self.storage.device) if meta.decode else None

    def decode(self, layer: int, q: torch.Tensor) -> torch.Tensor:
        """q: [B, Hq, D], one query per decode row."""
        requests = self.meta.decode
        table, lengths = self._decode
        rows = requests.num_requests
        if requests.per_head:
            k_blocks, v_blocks = self.storage.head_block_views(layer, requests.page_size)
            keys = k_blocks[table].view(rows, 1, -1, q.shape[-1])
            values = v_blocks[table].view(rows, 1, -1, q.shape[-1])
            queries = q.reshape(rows, -1, 1, q.shape[-1])  # the KV head's GQA group
        else:
            kv = self.storage.kv[table, layer]  # [R, n, 2, H, bs, D]
            r, n, _, heads, bs, dim = kv.shape
            kv = kv.permute(2, 0, 3, 1, 4, 5).reshape(2, r, heads, n * bs, dim)
            keys, values = kv[0], kv[1]
            queries = q[:, :, None, :]
        key_pos = torch.arange(keys.shape[2], device=q.device)
        mask = key_pos < lengths[:, None]
        if self.sliding_window is not None and not requests.per_head:
            mask &= key_pos > lengths[:, None] - 1 - self.sliding_window
        group = queries.shape[1] // keys.shape[1]
        out = torch.nn.functional.scaled_dot_product_attention(
            queries, keys, values, attn_mask=mask[:, None, None, :], enable_gqa=group > 1)
        return out.reshape(q.shape)

    def prefill(self, layer: int, q: torch.Tensor) -> torch.Tensor:
        """q: [T, Hq, D], the prefill rows' queries, request after request."""
        requests = self.meta.prefill
        out = torch.empty_like(q)
        bs = requests.page_size
        for r in range(requests.num_requests):
            pages = requests.indices_host[requests.indptr[r]:requests.indptr[r + 1]]
            num_keys = (len(pages) - 1) * bs + int(requests.last_page_len[r])
            kv = self.storage.kv[torch.from_numpy(pages.astype(np.int64)).to(q.device), layer]
            n, _, heads, _, dim = kv.shape
            kv = kv.permute(1, 2, 0, 3, 4).reshape(2, heads, n * bs, dim)[:, :, :num_keys]
            lo, hi = int(requests.qo_indptr[r]), int(requests.qo_indptr[r + 1])
            first = num_keys - (hi - lo)  # position of the first query
            block = max(1, MASK_ELEMENTS // num_keys)
            for start in range(lo, hi, block):
                end = min(hi, start + block)
                mask = causal_mask(first + start - lo, end - start, num_keys, q.device,
                                   self.sliding_window)
                out[start:end] = attend(q[start:end], kv[0], kv[1], mask)
        return out


def _padded_table(requests: PagedRequests, device: torch.device):
    """([R, max_pages] page ids, zero-padded; [R] key counts) of the requests, on `device`."""
    counts = np.diff(requests.indptr)
    width = int(counts.max())
    table = np.zeros((len(counts), width), dtype=np.int64)
    table[np.arange(width)[None, :] < counts[:, None]] = requests.indices_host
    lengths = (counts - 1) * requests.page_size + requests.last_page_len
    return (torch.from_numpy(table).to(device),
            torch.from_numpy(lengths.astype(np.int64)).to(device))
