"""The same ShadowKV path on a GPU: exact in the limit, and the sparse settings run in bf16 with
the values in pinned host memory (through the CUDA ops where the extension is built)."""
import pytest
import torch

from shadowkv_engine import LLM, SamplingParams
from shadowkv_engine.ops.extension import cuda_ops_available

pytestmark = pytest.mark.gpu

# head_dim 64 so the CUDA key-rebuild kernel (head dims 64/128/256) is the one exercised.
EXACT = dict(rank=128, chunk_size=8, sparse_budget=2048, outlier_chunks=6, local_chunks=2,
             min_context_len=0)


def prompt(length, seed):
    return torch.randint(5, 1024, (length,), generator=torch.Generator().manual_seed(seed)).tolist()


def greedy(n):
    return SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True)


def test_exact_limit_on_cuda(make_checkpoint):
    path = str(make_checkpoint("llama3", head_dim=64))
    prompts = [prompt(1500, 0), prompt(1700, 1)]
    common = dict(device="cuda", dtype="float32", num_gpu_blocks=1024, num_cpu_blocks=256)
    dense = LLM(model=path, attention="dense", **common).generate(prompts, greedy(72))
    shadow_llm = LLM(model=path, attention="shadowkv", shadowkv=EXACT, **common)
    shadow = shadow_llm.generate(prompts, greedy(72))
    assert shadow_llm.engine.blocks.storage.values.is_pinned()
    print("CUDA ops in use:", cuda_ops_available())
    for d, s in zip(dense, shadow):
        assert s.outputs[0].token_ids == d.outputs[0].token_ids


@pytest.mark.parametrize("landmark", ["mean", "minmax"])  # minmax: the scoring op at 2x width
def test_sparse_bf16_on_cuda(make_checkpoint, landmark):
    path = str(make_checkpoint("llama3", head_dim=64))
    sparse = dict(rank=16, chunk_size=8, sparse_budget=128, outlier_chunks=4, local_chunks=2,
                  min_context_len=256, landmark=landmark)
    llm = LLM(model=path, device="cuda", dtype="bfloat16", attention="shadowkv", shadowkv=sparse,
              num_gpu_blocks=1024, num_cpu_blocks=512)
    out = llm.generate([prompt(3000, 2), prompt(900, 3), prompt(60, 4)], greedy(40))
    assert [len(o.outputs[0].token_ids) for o in out] == [40, 40, 40]
    stats = llm.engine.stats()
    assert 0.0 < stats.shadowkv_hit_rate < 1.0 and stats.cpu_bytes_fetched_total > 0
    assert stats.gpu_blocks_used == 0 and stats.cpu_blocks_used == 0


def test_values_in_gpu_memory_change_only_the_host_traffic_on_cuda(make_checkpoint):
    """The gather and offload kernels over both value tiers, in captured decode steps: the same
    tokens and hits as with every value in pinned memory, less (or no) PCIe traffic."""
    path = str(make_checkpoint("llama3", head_dim=64))
    sparse = dict(rank=16, chunk_size=8, sparse_budget=128, outlier_chunks=4, local_chunks=2,
                  min_context_len=256)
    prompts = [prompt(3000, 2), prompt(2000, 5)]
    runs = {}
    for value_pages in (0, 120, 1000):  # none, part of the first prompt's 188, all
        llm = LLM(model=path, device="cuda", dtype="bfloat16", attention="shadowkv",
                  shadowkv=sparse, num_gpu_blocks=1024 + value_pages // 2, num_cpu_blocks=512,
                  gpu_value_store_gb=value_pages // 2 * 16384 / 2**30)
        assert llm.engine.blocks.layout.gpu_page_bytes(torch.bfloat16) == 16384
        assert llm.engine.blocks.value_pool.device.num_pages == value_pages
        out = llm.generate(prompts, greedy(40))
        runs[value_pages] = ([o.outputs[0].token_ids for o in out], llm.engine.stats())
        del llm
    tokens, host_only = runs[0]
    for value_pages in (120, 1000):
        assert runs[value_pages][0] == tokens, f"{value_pages} device value pages changed tokens"
        assert (runs[value_pages][1].shadowkv_chunk_hits_total
                == host_only.shadowkv_chunk_hits_total)
    assert host_only.cpu_bytes_fetched_total > runs[120][1].cpu_bytes_fetched_total > 0
    assert runs[1000][1].cpu_bytes_fetched_total == 0
