"""ShadowKV is exact in the limit (full rank, budget covering the context), tail folding included,
and its memory matches the documented formula."""
import pytest
import torch

from shadowkv_engine import LLM, SamplingParams
from shadowkv_engine.config import EngineConfig
from shadowkv_engine.engine.llm_engine import LLMEngine

# The test model's keys are 2 KV heads x 32 = 64 wide: rank 64 is full rank.
EXACT = dict(rank=64, chunk_size=8, sparse_budget=2048, outlier_chunks=6, local_chunks=2,
             min_context_len=0)
PROMPT_LEN, NEW_TOKENS = 1500, 72


def long_prompt(length, seed=0):
    return torch.randint(5, 1024, (length,), generator=torch.Generator().manual_seed(seed)).tolist()


def greedy(n):
    return SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True)


def test_full_rank_full_budget_equals_dense(make_checkpoint):
    path = make_checkpoint("llama3")
    prompts = [long_prompt(PROMPT_LEN, 0), long_prompt(PROMPT_LEN + 37, 1)]
    dense = LLM(model=str(path), device="cpu", attention="dense", num_gpu_blocks=512,
                max_num_batched_tokens=512).generate(prompts, greedy(NEW_TOKENS), use_tqdm=False)

    engine = LLMEngine(EngineConfig(model=str(path), device="cpu", attention="shadowkv",
                                    shadowkv=EXACT, num_gpu_blocks=1024, num_cpu_blocks=256,
                                    max_num_batched_tokens=512))
    for i, prompt in enumerate(prompts):
        engine.add_request(str(i), prompt, greedy(NEW_TOKENS))
    chunks_after_prefill, outputs = {}, {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            outputs[out.request_id] = out
        for seq in engine.scheduler.running:
            if seq.kv.compressed and seq.request_id not in chunks_after_prefill:
                chunks_after_prefill[seq.request_id] = seq.kv.shadow.n_chunks
        for seq in engine.scheduler.running:
            if seq.kv.compressed:
                folded = seq.kv.shadow.n_chunks - chunks_after_prefill[seq.request_id]
                outputs.setdefault(f"folds-{seq.request_id}", folded)
                outputs[f"folds-{seq.request_id}"] = max(outputs[f"folds-{seq.request_id}"],
                                                         folded)

    for i, expected in enumerate(dense):
        got = outputs[str(i)].outputs[0].token_ids
        assert got == expected.outputs[0].token_ids, f"prompt {i}: ShadowKV diverged from dense"
        # tail of local_chunks*C = 16 exact tokens: a chunk is folded every 8 generated tokens
        assert outputs[f"folds-{i}"] >= NEW_TOKENS // 8 - 2
    stats = engine.stats()
    assert stats.shadowkv_chunks_selected_total > 0
    assert 0.9 <= stats.shadowkv_hit_rate <= 1.0  # the budget holds every chunk: all reused
    assert stats.gpu_blocks_used == 0 and stats.cpu_blocks_used == 0


def test_sparse_settings_run_and_report_hits(make_checkpoint):
    path = make_checkpoint("llama3")
    sparse = dict(rank=16, chunk_size=8, sparse_budget=128, outlier_chunks=4, local_chunks=2,
                  min_context_len=256)
    llm = LLM(model=str(path), device="cpu", attention="shadowkv", shadowkv=sparse,
              num_gpu_blocks=512, num_cpu_blocks=256, max_num_batched_tokens=512)
    out = llm.generate([long_prompt(1200), long_prompt(100, 2)], greedy(24), use_tqdm=False)
    assert [len(o.outputs[0].token_ids) for o in out] == [24, 24]
    stats = llm.engine.stats()
    assert 0.0 < stats.shadowkv_hit_rate < 1.0
    # each miss moves a chunk: 8 tokens x 2 layers... per layer per head 8*32 floats
    assert stats.cpu_bytes_fetched_total > 0
    assert stats.cpu_bytes_fetched_total % (8 * 32 * 4) == 0


def test_short_prompts_stay_dense(make_checkpoint):
    path = make_checkpoint("llama3")
    engine = LLMEngine(EngineConfig(model=str(path), device="cpu", attention="shadowkv",
                                    shadowkv=dict(EXACT, min_context_len=512), num_gpu_blocks=256,
                                    num_cpu_blocks=64))
    engine.add_request("short", long_prompt(300), greedy(4))
    engine.step()
    assert not engine.scheduler.running[0].kv.compressed


@pytest.mark.parametrize("prompt_len,device_value_pages,landmark",
                         [(400, 0, "mean"), (1111, 0, "mean"), (1111, 20, "mean"),
                          (1111, 0, "minmax")])
def test_memory_matches_documented_formula(make_checkpoint, prompt_len, device_value_pages,
                                           landmark):
    """docs/shadowkv.md, "Memory per sequence"; with a device tier, the value pages it holds
    come first and the rest are host pages; minmax landmarks take two rows a chunk."""
    path = make_checkpoint("llama3")
    cfg = dict(rank=24, chunk_size=8, sparse_budget=256, outlier_chunks=5, local_chunks=3,
               min_context_len=0, landmark=landmark)
    arena_page = 2 * 2 * 2 * 16 * 32 * 4  # layers * (K, V) * heads * block * dim * float32
    tier_gb = device_value_pages // 2 * arena_page / 2**30
    engine = LLMEngine(EngineConfig(model=str(path), device="cpu", attention="shadowkv",
                                    shadowkv=cfg, num_gpu_blocks=512, num_cpu_blocks=256,
                                    block_size=16, gpu_value_store_gb=tier_gb))
    assert engine.blocks.value_pool.device.num_pages == device_value_pages
    assert engine.blocks.gpu_pool.num_pages == 512 - device_value_pages // 2
    engine.add_request("r", long_prompt(prompt_len), greedy(30))
    for _ in range(20):
        engine.step()
    seq = engine.scheduler.running[0]
    shadow = seq.kv.shadow
    tokens = seq.kv.num_tokens
    layers, heads, dim, bs, itemsize = 2, 2, 32, 16, 4
    gpu_page = layers * 2 * heads * bs * dim * itemsize
    cpu_page = layers * heads * bs * dim * itemsize
    c = 8
    n_chunks = (prompt_len - 3 * c) // c
    n_chunks += (tokens - n_chunks * c - 3 * c) // c  # chunks folded since (tail >= local + C)
    n_out = min(5, (prompt_len - 3 * c) // c)
    tokens_per_u_page = (2 * heads * bs * dim) // 24
    ceil = lambda a, b: -(-a // b)  # noqa: E731
    tail_pages = len({p // bs for p in range(n_chunks * c, tokens)})
    expected = {
        "gpu_lowrank_bytes": ceil(tokens, tokens_per_u_page) * gpu_page,
        "gpu_landmark_bytes": ceil(n_chunks, 2 * bs // (2 if landmark == "minmax" else 1))
        * gpu_page,
        "gpu_basis_bytes": ceil(24, 2 * bs) * gpu_page,
        "gpu_exact_bytes": ceil((n_out + 256 // c) * c, bs) * gpu_page,
        "gpu_tail_bytes": tail_pages * gpu_page,
        "cpu_value_bytes": max(0, ceil(n_chunks * c, bs) - device_value_pages) * cpu_page,
        "gpu_value_bytes": min(ceil(n_chunks * c, bs), device_value_pages) * cpu_page,
    }
    assert shadow.memory() == expected
    stats = engine.stats()
    assert stats.gpu_blocks_used * gpu_page == sum(v for k, v in expected.items()
                                                   if k.startswith("gpu_") and "value" not in k)
    assert stats.cpu_blocks_used * cpu_page == expected["cpu_value_bytes"]


def test_values_in_gpu_memory_change_only_the_host_traffic(make_checkpoint):
    """The value store's device tier (gpu_value_store_gb) holds values the host store would: the
    same tokens and chunk hits, with fewer bytes read from host memory (none when it holds all)."""
    path = make_checkpoint("llama3")
    sparse = dict(rank=16, chunk_size=8, sparse_budget=128, outlier_chunks=4, local_chunks=2,
                  min_context_len=256)
    arena_page = 2 * 2 * 2 * 16 * 32 * 4  # layers * (K, V) * heads * block * dim * float32
    prompts = [long_prompt(1200), long_prompt(900, 3)]
    runs = {}
    for value_pages in (0, 60, 400):  # none, part of the first prompt's 75, all
        llm = LLM(model=str(path), device="cpu", attention="shadowkv", shadowkv=sparse,
                  num_gpu_blocks=512 + value_pages // 2, num_cpu_blocks=256,
                  max_num_batched_tokens=512,
                  gpu_value_store_gb=value_pages // 2 * arena_page / 2**30)
        out = llm.generate(prompts, greedy(24), use_tqdm=False)
        runs[value_pages] = ([o.outputs[0].token_ids for o in out], llm.engine.stats())
    tokens, host_only = runs[0]
    for value_pages in (60, 400):
        assert runs[value_pages][0] == tokens, f"{value_pages} device value pages changed tokens"
        stats = runs[value_pages][1]
        assert stats.shadowkv_chunk_hits_total == host_only.shadowkv_chunk_hits_total
        assert stats.shadowkv_chunks_selected_total == host_only.shadowkv_chunks_selected_total
    assert host_only.cpu_bytes_fetched_total > runs[60][1].cpu_bytes_fetched_total > 0
    assert runs[400][1].cpu_bytes_fetched_total == 0
