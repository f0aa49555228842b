"""What the model's attention layers call during one step: store the new keys and values, run the
ShadowKV selection for the decode rows, and attend (decode rows and prefill chunks apart)."""
import torch

from ..config import ShadowKVConfig
from ..ops.model_fusions import store_kv
from .sparse_decode import select_and_fetch, step_outliers
from .sparse_state import SparseDecodeState
from .step_metadata import StepMetadata
from .storage import KVStorage


class StepAttention:
    def __init__(self, meta: StepMetadata, storage: KVStorage, backend,
                 sparse_state: SparseDecodeState | None, shadowkv: ShadowKVConfig | None,
                 inv_freq: torch.Tensor, fetch_turns=None, fetch_blocks: int = 0):
        """fetch_turns, fetch_blocks: how the value fetch runs beside another micro-batch's
        kernels (engine/two_batch.py); None and 0 for a step of one batch."""
        self.meta, self.storage, self.backend = meta, storage, backend
        self.sparse_state, self.shadowkv, self.inv_freq = sparse_state, shadowkv, inv_freq
        self.fetch_turns, self.fetch_blocks = fetch_turns, fetch_blocks
        self._outliers = None  # the decode rows' outlier ids, read at the first layer

    def attend(self, layer: int, q: torch.Tensor, k_pre: torch.Tensor, k: torch.Tensor,
               v: torch.Tensor) -> torch.Tensor:
        """q: [T, Hq, D] post-RoPE; k_pre/k: [T, H, D] before/after RoPE; v: [T, H, D]."""
        meta, kv = self.meta, self.storage.kv
        store_kv(kv, k, v, meta.kv_page, meta.kv_row, layer)  # padding rows: the null page
        rows = meta.num_decode
        outputs = []
        if rows:
            if meta.sparse is not None:
                if self._outliers is None:
                    self._outliers = step_outliers(meta.sparse, self.sparse_state)
                select_and_fetch(layer, q[:rows], k_pre[:rows], meta.sparse, self.storage,
                                 self.sparse_state, self.inv_freq, self.shadowkv,
                                 self._outliers, self.fetch_turns, self.fetch_blocks)
            outputs.append(self.backend.decode(layer, q[:rows]))
        if meta.prefill is not None:
            outputs.append(self.backend.prefill(layer, q[rows:]))
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)
