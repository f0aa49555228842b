"""Our decoder against Hugging Face transformers on tiny random checkpoints (float32)."""
import pytest
import torch
import transformers

from shadowkv_engine import LLM, SamplingParams
from shadowkv_engine.config import EngineConfig
from shadowkv_engine.kv.attention_torch import TorchAttention
from shadowkv_engine.kv.page_pool import PagePool
from shadowkv_engine.kv.sequence_kv import SequenceKV
from shadowkv_engine.kv.step_attention import StepAttention
from shadowkv_engine.kv.step_metadata import PrefillRow, StepMetadataBuilder
from shadowkv_engine.kv.storage import KVStorage, PageLayout
from shadowkv_engine.model.config import ModelConfig
from shadowkv_engine.model.llama import LlamaForCausalLM
from shadowkv_engine.model.loader import load_weights

ARCHS = ["llama3", "qwen2", "mistral"]
PROMPT_LENGTHS = [5, 23, 64, 301]


def prompts(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(5, 1024, (n,), generator=g).tolist() for n in lengths]


def hf_model(path):
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def hf_greedy(reference, ids, new_tokens) -> list[int]:
    with torch.no_grad():
        out = reference.generate(torch.tensor([ids]), max_new_tokens=new_tokens, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("arch", ARCHS)
def test_next_token_logits_match_transformers(make_checkpoint, arch):
    path = make_checkpoint(arch)
    config = ModelConfig.from_pretrained(path)
    ours = LlamaForCausalLM(config, 4096)
    load_weights(ours, path, config.tie_word_embeddings)
    layout = PageLayout(config.num_layers, config.num_kv_heads, config.head_dim, 16)
    storage = KVStorage(layout, 64, 0, torch.float32, torch.device("cpu"), None)
    pool = PagePool("gpu", 64, first_id=1)
    batch = prompts(PROMPT_LENGTHS)
    rows = []
    for slot, ids in enumerate(batch):
        cache = SequenceKV(storage, pool, pool, None, None, slot)
        cache.grow(cache.plan_growth(len(ids)))
        rows.append(PrefillRow(cache, ids, 0))
    engine_config = EngineConfig(model=str(path), attention="dense", max_num_seqs=len(batch),
                                 max_num_batched_tokens=sum(PROMPT_LENGTHS))
    meta = StepMetadataBuilder(engine_config, storage, 4096, len(batch)).build([], rows, 0, 0)
    backend = TorchAttention(storage, config.sliding_window)
    backend.begin_step(meta)
    attention = StepAttention(meta, storage, backend, None, None, ours.rotary.inv_freq)
    hidden = ours(meta.input_ids, meta.positions, attention)
    last = torch.tensor(PROMPT_LENGTHS).cumsum(0) - 1
    logits = ours.compute_logits(hidden[last])

    reference = hf_model(path)
    for row, ids in enumerate(batch):
        with torch.no_grad():
            expected = reference(torch.tensor([ids])).logits[0, -1]
        error = (logits[row] - expected).norm() / expected.norm()
        assert error < 1e-4, f"{arch}, prompt of {len(ids)} tokens: relative error {error:.2e}"


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_generation_is_token_identical(make_checkpoint, arch):
    path = make_checkpoint(arch)
    batch = prompts(PROMPT_LENGTHS, seed=1)
    llm = LLM(model=str(path), device="cpu", attention="dense", num_gpu_blocks=256,
              max_num_batched_tokens=128)
    outputs = llm.generate(batch, SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True),
                           use_tqdm=False)
    reference = hf_model(path)
    for ids, out in zip(batch, outputs):
        assert out.prompt_token_ids == ids
        assert out.outputs[0].token_ids == hf_greedy(reference, ids, 40), f"{arch}, {len(ids)}"
        assert out.outputs[0].finish_reason == "length"


def test_sharded_checkpoint_loads_like_single_file(make_checkpoint):
    single = make_checkpoint("llama3")
    sharded = make_checkpoint("llama3", shard_size="40KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    assert len(list(sharded.glob("model-*.safetensors"))) > 1
    params = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)
    ids = prompts([50], seed=3)
    a = LLM(model=str(single), device="cpu", num_gpu_blocks=64).generate(ids, params)
    b = LLM(model=str(sharded), device="cpu", num_gpu_blocks=64).generate(ids, params)
    assert a[0].outputs[0].token_ids == b[0].outputs[0].token_ids


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_generates(make_checkpoint, dtype):
    path = make_checkpoint("qwen2")
    llm = LLM(model=str(path), device="cpu", dtype=dtype, num_gpu_blocks=64)
    out = llm.generate(prompts([40]), SamplingParams(temperature=0.0, max_tokens=8,
                                                     ignore_eos=True))[0]
    assert len(out.outputs[0].token_ids) == 8
    assert llm.engine.runner.dtype == getattr(torch, dtype)


def test_mistral_sliding_window_matches_transformers(make_checkpoint):
    path = make_checkpoint("mistral", sliding_window=48)
    batch = prompts([120, 70], seed=5)
    llm = LLM(model=str(path), device="cpu", attention="dense", num_gpu_blocks=64)
    outputs = llm.generate(batch, SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True),
                           use_tqdm=False)
    reference = hf_model(path)
    for ids, out in zip(batch, outputs):
        assert out.outputs[0].token_ids == hf_greedy(reference, ids, 24)
