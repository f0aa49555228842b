"""Value offload: the twin against the contract (CPU) and the CUDA op against the twin, on a
NaN-poisoned store so that a row written where it should not be, or not written, shows up."""
import pytest
import torch

from shadowkv_engine.ops.value_offload import offload_values, offload_values_torch
from paged_case import needs_cuda_ops

LAYERS, HEADS, BLOCK_SIZE, CPU_PAGES, ROWS, LAYER = 3, 4, 16, 6, 37, 1
LAYOUTS = ["contiguous", "heads_major", "every_other_head"]


def poisoned_store(head_dim, dtype, pin=False):
    return torch.full((CPU_PAGES, LAYERS, HEADS, BLOCK_SIZE, head_dim), float("nan"), dtype=dtype,
                      pin_memory=pin)


def random_rows(head_dim, dtype, layout, index_dtype, device, seed):
    """values [ROWS, HEADS, D] viewed through `layout`, and distinct (page, offset) slots spread
    over every page."""
    gen = torch.Generator().manual_seed(seed)
    shape = {"contiguous": (ROWS, HEADS), "heads_major": (HEADS, ROWS),
             "every_other_head": (ROWS, 2 * HEADS)}[layout]
    base = torch.randn(*shape, head_dim, generator=gen).to(device, dtype)
    if layout == "heads_major":
        values = base.transpose(0, 1)
    elif layout == "every_other_head":
        values = base[:, 1::2]
    else:
        values = base
    slots = torch.randperm(CPU_PAGES * BLOCK_SIZE, generator=gen)[:ROWS]
    pages, offsets = (slots // BLOCK_SIZE).to(index_dtype), (slots % BLOCK_SIZE).to(index_dtype)
    return values, pages.to(device), offsets.to(device)


def offload_by_hand(store, values, pages, offsets, layer):
    for i in range(values.shape[0]):
        for h in range(values.shape[1]):
            store[int(pages[i]), layer, h, int(offsets[i])] = values[i, h]


@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_twin_writes_exactly_the_named_rows(layout, index_dtype):
    values, pages, offsets = random_rows(16, torch.float32, layout, index_dtype, "cpu", seed=0)
    store = poisoned_store(16, torch.float32)
    want = store.clone()
    offload_by_hand(want, values, pages, offsets, LAYER)
    offload_values(store, values, pages, offsets, LAYER)
    assert int(want.isnan().logical_not().sum()) == values.numel()
    torch.testing.assert_close(store, want, rtol=0, atol=0, equal_nan=True)


@needs_cuda_ops
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_cuda_offload_equals_twin(dtype, head_dim, layout, index_dtype):
    values, pages, offsets = random_rows(head_dim, dtype, layout, index_dtype, "cuda",
                                         seed=head_dim + len(layout))
    store = poisoned_store(head_dim, dtype, pin=True)
    want = store.clone()
    offload_values_torch(want, values, pages, offsets, LAYER)
    torch.ops.shadowkv.offload_values(store, values, pages, offsets, LAYER)
    torch.cuda.synchronize()
    torch.testing.assert_close(store, want, rtol=0, atol=0, equal_nan=True)


@needs_cuda_ops
def test_cuda_offload_does_not_wait_for_the_gpu():
    values, pages, offsets = random_rows(128, torch.bfloat16, "heads_major", torch.int32, "cuda",
                                         seed=3)
    store = poisoned_store(128, torch.bfloat16, pin=True)
    want = store.clone()
    offload_values_torch(want, values, pages, offsets, LAYER)
    torch.cuda.synchronize()
    torch.cuda._sleep(200_000_000)  # ~0.1 s of GPU clock cycles queued ahead of the offload
    offload_values(store, values, pages, offsets, LAYER)
    assert not torch.cuda.current_stream().query(), "offload_values waited for the GPU"
    torch.cuda.synchronize()
    torch.testing.assert_close(store, want, rtol=0, atol=0, equal_nan=True)


@needs_cuda_ops
def test_rows_that_are_not_whole_vectors_fall_back_to_the_twin():
    values, pages, offsets = random_rows(36, torch.float16, "contiguous", torch.int64, "cuda",
                                         seed=4)  # 72-byte rows
    store = poisoned_store(36, torch.float16, pin=True)
    want = store.clone()
    offload_by_hand(want, values.cpu(), pages.cpu(), offsets.cpu(), LAYER)
    offload_values(store, values, pages, offsets, LAYER)
    torch.cuda.synchronize()
    torch.testing.assert_close(store, want, rtol=0, atol=0, equal_nan=True)


def test_twin_writes_pages_past_the_host_store_into_the_device_tier():
    values, pages, offsets = random_rows(16, torch.float32, "heads_major", torch.int64, "cpu",
                                         seed=5)
    want = poisoned_store(16, torch.float32)
    offload_by_hand(want, values, pages, offsets, LAYER)
    store = poisoned_store(16, torch.float32)
    host, device_store = store[:CPU_PAGES // 2].clone(), store[CPU_PAGES // 2:].clone()
    offload_values(host, values, pages, offsets, LAYER, device_store)
    torch.testing.assert_close(torch.cat([host, device_store]), want, rtol=0, atol=0,
                               equal_nan=True)


@needs_cuda_ops
@pytest.mark.parametrize("host_pages", [0, CPU_PAGES // 2, CPU_PAGES])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_cuda_offload_into_two_tiers_equals_twin(dtype, host_pages):
    values, pages, offsets = random_rows(128, dtype, "every_other_head", torch.int32, "cuda",
                                         seed=host_pages)
    store = poisoned_store(128, dtype)
    host = store[:host_pages].clone().pin_memory()
    device_store = store[host_pages:].cuda()
    want_host, want_device = host.clone(), device_store.clone()
    offload_values_torch(want_host, values, pages, offsets, LAYER, want_device)
    offload_values(host, values, pages, offsets, LAYER, device_store)
    torch.cuda.synchronize()
    torch.testing.assert_close(host, want_host, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(device_store, want_device, rtol=0, atol=0, equal_nan=True)
