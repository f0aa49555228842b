"""The paged attention backends: the torch twin against exact attention on the CPU, and
flashinfer against the twin on random pages of a shuffled arena (GPU)."""
import numpy as np
import pytest
import torch

from shadowkv_engine.kv.attention import attend, causal_mask
from shadowkv_engine.kv.attention_torch import TorchAttention
from shadowkv_engine.kv.staging import csr
from shadowkv_engine.kv.step_metadata import PagedRequests, StepMetadata
from shadowkv_engine.kv.storage import KVStorage, PageLayout, head_block_ids

HEADS, GROUP, DIM, BS, CHUNK = 2, 4, 64, 16, 8


def make_storage(device, dtype, pages=96, layers=2, seed=0):
    layout = PageLayout(layers, HEADS, DIM, BS)
    storage = KVStorage(layout, pages, 0, dtype, torch.device(device), None)
    g = torch.Generator().manual_seed(seed)
    storage.arena.copy_(torch.randn(storage.arena.shape, generator=g).to(dtype))
    return storage


def meta_of(decode=None, prefill=None, rows=0):
    return StepMetadata(num_decode=rows, num_tokens=0, input_ids=None, positions=None,
                        kv_page=None, kv_row=None, decode=decode, prefill=prefill, sparse=None)


def requests(lists, last, page_size, per_head, device, qo_lengths=None):
    indices = np.concatenate(lists).astype(np.int32)
    return PagedRequests(csr(np.array([len(x) for x in lists])),
                         torch.from_numpy(indices).to(device), indices,
                         np.array(last, dtype=np.int32), page_size, per_head,
                         None if qo_lengths is None else csr(np.array(qo_lengths)))


def dense_case(storage, lengths, seed):
    """Per sequence a random set of pages covering `lengths` tokens."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.arange(1, storage.arena.shape[0]))
    lists, last, at = [], [], 0
    for n in lengths:
        pages = -(-n // BS)
        lists.append(order[at:at + pages])
        last.append(n - (pages - 1) * BS)
        at += pages
    return lists, last


def exact_keys(storage, pages, n, layer):
    kv = storage.kv[torch.as_tensor(pages, dtype=torch.long, device=storage.device), layer]
    kv = kv.permute(1, 2, 0, 3, 4).reshape(2, HEADS, -1, DIM)[:, :, :n]
    return kv[0], kv[1]


def test_twin_dense_decode_and_prefill_equal_exact_attention():
    storage = make_storage("cpu", torch.float32)
    lengths = [5, 40, 17]
    lists, last = dense_case(storage, lengths, 1)
    backend = TorchAttention(storage, None)
    q = torch.randn(3, HEADS * GROUP, DIM)
    backend.begin_step(meta_of(decode=requests(lists, last, BS, False, "cpu"), rows=3))
    got = backend.decode(1, q)
    for b, (pages, n) in enumerate(zip(lists, lengths)):
        k, v = exact_keys(storage, pages, n, 1)
        torch.testing.assert_close(got[b], attend(q[b:b + 1], k, v)[0])

    queries = [3, 40, 1]  # the last tokens of each sequence are this step's prefill chunk
    q = torch.randn(sum(queries), HEADS * GROUP, DIM)
    backend.begin_step(meta_of(prefill=requests(lists, last, BS, False, "cpu", queries)))
    got = backend.prefill(0, q)
    at = 0
    for pages, n, t in zip(lists, lengths, queries):
        k, v = exact_keys(storage, pages, n, 0)
        want = attend(q[at:at + t], k, v, causal_mask(n - t, t, n, "cpu"))
        torch.testing.assert_close(got[at:at + t], want)
        at += t


def head_block_case(storage, blocks_per_request, seed):
    """Per (sequence, KV head) a random list of head blocks, the last one partly filled."""
    rng = np.random.default_rng(seed)
    layout = storage.layout
    lists, last = [], []
    for r, count in enumerate(blocks_per_request):
        head = r % HEADS
        pages = rng.integers(1, storage.arena.shape[0], count)
        rows = rng.integers(0, BS // CHUNK, count) * CHUNK
        lists.append(head_block_ids(pages, rows, layout, CHUNK) + head * (BS // CHUNK))
        last.append(int(rng.integers(1, CHUNK + 1)))
    return lists, last


def test_twin_head_blocks_read_the_named_rows():
    storage = make_storage("cpu", torch.float32)
    lists, last = head_block_case(storage, [3, 1, 5, 2], 2)
    backend = TorchAttention(storage, None)
    q = torch.randn(2, HEADS * GROUP, DIM)
    backend.begin_step(meta_of(decode=requests(lists, last, CHUNK, True, "cpu"), rows=2))
    got = backend.decode(1, q)
    k_blocks, v_blocks = storage.head_block_views(1, CHUNK)
    for r, (blocks, n) in enumerate(zip(lists, last)):
        ids = torch.as_tensor(blocks.astype(np.int64))
        k = k_blocks[ids, 0].reshape(-1, DIM)[:(len(blocks) - 1) * CHUNK + n]
        v = v_blocks[ids, 0].reshape(-1, DIM)[:(len(blocks) - 1) * CHUNK + n]
        b, h = divmod(r, HEADS)
        qh = q[b, h * GROUP:(h + 1) * GROUP]
        want = torch.softmax(qh @ k.T / DIM ** 0.5, -1) @ v
        torch.testing.assert_close(got[b, h * GROUP:(h + 1) * GROUP], want)


def flashinfer_backend(storage, window=None):
    pytest.importorskip("flashinfer")
    from shadowkv_engine.kv.attention_flashinfer import FlashInferAttention

    return FlashInferAttention(storage, HEADS * GROUP, window, 1 << 16)


def assert_close_bf16(got, want):
    error = (got.float() - want.float()).norm() / want.float().norm()
    assert not got.isnan().any() and error < 1e-2, f"relative error {error:.2e}"


@pytest.mark.gpu
@pytest.mark.parametrize("window", [None, 24])
@pytest.mark.parametrize("seed", [0, 1])
def test_flashinfer_dense_decode_and_prefill_equal_twin(seed, window):
    storage = make_storage("cuda", torch.bfloat16, pages=400, seed=seed)
    fast, twin = flashinfer_backend(storage, window), TorchAttention(storage, window)
    lengths = [1, 16, 77, 1000, 333]
    lists, last = dense_case(storage, lengths, seed)
    q = torch.randn(len(lengths), HEADS * GROUP, DIM, device="cuda", dtype=torch.bfloat16)
    for backend in (fast, twin):
        backend.begin_step(meta_of(decode=requests(lists, last, BS, False, "cuda"),
                                   rows=len(lengths)))
    assert_close_bf16(fast.decode(1, q), twin.decode(1, q))
    queries = [1, 16, 50, 300, 333]
    q = torch.randn(sum(queries), HEADS * GROUP, DIM, device="cuda", dtype=torch.bfloat16)
    for backend in (fast, twin):
        backend.begin_step(meta_of(prefill=requests(lists, last, BS, False, "cuda", queries)))
    assert_close_bf16(fast.prefill(0, q), twin.prefill(0, q))


@pytest.mark.gpu
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flashinfer_head_block_decode_equals_twin(seed):
    storage = make_storage("cuda", torch.bfloat16, pages=400, seed=seed)
    fast, twin = flashinfer_backend(storage), TorchAttention(storage, None)
    rng = np.random.default_rng(seed)
    rows = 5
    lists, last = head_block_case(storage, rng.integers(1, 300, rows * HEADS).tolist(), seed)
    q = torch.randn(rows, HEADS * GROUP, DIM, device="cuda", dtype=torch.bfloat16)
    for backend in (fast, twin):
        backend.begin_step(meta_of(decode=requests(lists, last, CHUNK, True, "cuda"), rows=rows))
    for layer in (0, 1):
        assert_close_bf16(fast.decode(layer, q), twin.decode(layer, q))
