"""The automatic split of the GPU KV budget between the arena and the value store's device tier:
the most sequences of max_model_len, then the most values in device memory."""
import pytest
import torch

from shadowkv_engine.config import EngineConfig
from shadowkv_engine.engine.block_manager import BlockManager
from shadowkv_engine.engine.value_tier_plan import (SequencePages, auto_device_tier,
                                                    sequences_that_fit)
from shadowkv_engine.errors import InvalidRequestError
from shadowkv_engine.model.config import ModelConfig

# Proportions of Llama-3.1-8B at 122K: a sequence's values are 3.4x its compressed arena pages
# (in arena-page units: 2 value pages per arena page).
LONG = SequencePages(peak=2100, steady=300, values=2040)


def best_by_search(arena, host, seq, max_seqs):
    return max(sequences_that_fit(arena - m, host + 2 * m, seq, max_seqs)
               for m in range(arena + 1))


@pytest.mark.parametrize("arena,host,max_seqs", [(9000, 4000, 64), (9000, 40000, 64),
                                                  (9000, 0, 64), (9000, 4000, 3), (2000, 0, 8)])
def test_split_fits_as_many_sequences_as_any_split(arena, host, max_seqs):
    moved = auto_device_tier(arena, host, LONG, max_seqs)
    fits = sequences_that_fit(arena - moved, host + 2 * moved, LONG, max_seqs)
    assert fits == best_by_search(arena, host, LONG, max_seqs)


def test_host_ram_bound_batch_grows_and_values_move_to_the_gpu():
    arena, host = 9000, 4 * LONG.values  # host RAM for 4 sequences' values, arena for 23
    assert sequences_that_fit(arena, host, LONG, 64) == 4
    moved = auto_device_tier(arena, host, LONG, 64)
    assert sequences_that_fit(arena - moved, host + 2 * moved, LONG, 64) > 4
    assert moved > 0


def test_batch_capped_by_max_seqs_puts_all_its_values_in_device_memory():
    moved = auto_device_tier(9000, 10 * LONG.values, LONG, max_seqs=3)
    assert 2 * moved >= 3 * LONG.values  # three sequences' values fit in the device tier
    assert sequences_that_fit(9000 - moved, 10 * LONG.values + 2 * moved, LONG, 3) == 3


def test_nothing_moves_when_nothing_compresses_or_nothing_fits():
    assert auto_device_tier(9000, 0, SequencePages(100, 100, 0), 8) == 0
    assert auto_device_tier(1000, 0, LONG, 8) == 0  # one prefill peak exceeds the arena


def manager(make_checkpoint, **config):
    path = make_checkpoint("llama3")
    engine_config = EngineConfig(model=str(path), device="cpu", attention="shadowkv",
                                 shadowkv=dict(min_context_len=256, sparse_budget=128), **config)
    model_config = ModelConfig.from_pretrained(str(path))
    engine_config.shadowkv = engine_config.shadowkv.for_model(model_config.num_kv_heads,
                                                              model_config.head_dim)
    return BlockManager(engine_config, model_config, torch.float32, torch.device("cpu"),
                        num_gpu_pages=4000, num_cpu_pages=100, max_model_len=8192)


def test_block_manager_auto_split_raises_the_largest_batch(make_checkpoint):
    blocks = manager(make_checkpoint)
    assert blocks.value_pool.device.num_pages == 0  # automatic only on CUDA
    before = blocks.max_concurrent_sequences(8191, 8192)
    moved = blocks.auto_device_tier_pages(4000, 100, 8192)
    split = manager(make_checkpoint, gpu_value_store_gb=moved * blocks.layout.gpu_page_bytes(
        torch.float32) / 2**30)
    assert split.value_pool.device.num_pages == 2 * moved
    assert split.gpu_pool.num_pages == 4000 - moved
    assert split.max_concurrent_sequences(8191, 8192) > before
    assert "GPU value pages" in split.memory_plan(8192)


def test_a_device_tier_that_takes_the_whole_budget_is_refused(make_checkpoint):
    with pytest.raises(InvalidRequestError, match="gpu_value_store_gb .* takes the whole GPU KV"):
        manager(make_checkpoint, gpu_value_store_gb=1000.0)
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(InvalidRequestError, match="gpu_value_store_gb must be a finite"):
            manager(make_checkpoint, gpu_value_store_gb=bad)


def test_no_host_store_when_the_device_tier_holds_every_sequence(make_checkpoint):
    """max_num_seqs sequences of max_model_len fit in the device tier: the host store (and its
    pinning) is skipped; one sequence fewer and it stays."""
    blocks = manager(make_checkpoint, max_num_seqs=2)
    values = blocks.peak_pages(8191, 8192, True)[1]
    page = blocks.layout.gpu_page_bytes(torch.float32) / 2**30
    whole = manager(make_checkpoint, max_num_seqs=2, gpu_value_store_gb=values * page)
    assert whole.value_pool.device.num_pages >= 2 * values
    assert whole.value_pool.host.num_pages == 0 and whole.storage.values.numel() == 0
    assert whole.max_concurrent_sequences(8191, 8192) == 2
    part = manager(make_checkpoint, max_num_seqs=2, gpu_value_store_gb=values * page / 2)
    assert part.value_pool.host.num_pages == 100
