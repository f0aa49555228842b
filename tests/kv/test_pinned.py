"""The CPU value store's page-locked memory: exactly the size asked for (torch's pinned allocator
would round 96 GiB up to 128), readable by the GPU, unregistered when its last view is gone."""
import gc

import pytest
import torch

from shadowkv_engine.kv import pinned
from shadowkv_engine.kv.pinned import pinned_empty

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def needs_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


def test_store_is_pinned_and_the_gpu_reads_it():
    store = pinned_empty((3, 5, 2, 16, 24), torch.bfloat16)  # not a power of two in bytes
    assert store.shape == (3, 5, 2, 16, 24) and store.dtype == torch.bfloat16
    assert store.is_pinned() and store.data_ptr() % 4096 == 0
    store.copy_(torch.randn(store.shape))
    on_gpu = store.to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    assert torch.equal(on_gpu.cpu(), store)
    store[1].copy_(on_gpu[2], non_blocking=True)  # the GPU writes into it too
    torch.cuda.synchronize()
    assert torch.equal(store[1], store[2])


def test_registration_ends_with_the_last_view(monkeypatch):
    released = []
    unregister = pinned._unregister
    monkeypatch.setattr(pinned, "_unregister",
                        lambda address: released.append(address) or unregister(address))
    store = pinned.pinned_empty((4, 1024), torch.float32)
    pointer, view = store.data_ptr(), store[2:]
    del store
    gc.collect()
    assert view.is_pinned() and released == []  # a view keeps the memory and its registration
    del view
    gc.collect()
    assert released == [pointer]


def test_zero_size_store():
    assert pinned_empty((0, 4), torch.bfloat16).numel() == 0
