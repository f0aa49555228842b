"""The step metadata of a captured decode step: padded rows read one row of the null page."""
import numpy as np
import torch

from shadowkv_engine.config import EngineConfig
from shadowkv_engine.kv.staging import csr
from shadowkv_engine.kv.step_metadata import StepMetadataBuilder
from shadowkv_engine.kv.storage import NULL_PAGE, KVStorage, PageLayout, head_block_ids


def test_padded_rows_attend_to_the_null_page_in_both_modes():
    layout = PageLayout(2, 2, 64, 16)
    storage = KVStorage(layout, 8, 4, torch.float32, torch.device("cpu"), 16)
    for attention in ("dense", "shadowkv"):
        config = EngineConfig(model="unused", attention=attention, max_num_seqs=4,
                              shadowkv=dict(rank=16, sparse_budget=64, min_context_len=0))
        builder = StepMetadataBuilder(config, storage, 256, 4)
        meta = builder.build([], [], 3, dummy_slot=4, chunk_bucket=lambda _: 32)
        requests = meta.decode
        per_row = 2 if attention == "shadowkv" else 1  # one request per KV head when sparse
        assert np.array_equal(requests.indptr, csr(np.ones(3 * per_row, dtype=int)))
        assert (requests.last_page_len == 1).all()
        assert (meta.kv_page == NULL_PAGE).all() and meta.num_tokens == 3
        if attention == "dense":
            assert (requests.indices_host == NULL_PAGE).all()
            continue
        null = head_block_ids(np.array([NULL_PAGE]), 0, layout, 8)[0]
        assert requests.indices_host.tolist() == [null, null + 2] * 3  # head h at + h * bs // C
        sparse = meta.sparse
        assert sparse.slots.tolist() == [4, 4, 4] and (sparse.n_chunks == 0).all()
        assert sparse.max_chunks == 32
