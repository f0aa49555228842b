"""Shared fixtures: tiny Hugging Face checkpoints made on the spot, and the GPU marker's skip."""
import shutil
from pathlib import Path

import pytest
import torch

from shadowkv_engine.demo_model import ensure_demo_model

GPU_AVAILABLE = torch.cuda.is_available()
# Tiny models: thread start-up costs more than it saves, and oversubscribed OpenMP threads on a
# 2-core machine slow small matmuls twentyfold.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA GPU; run on the GPU machine")
    for item in items:
        if "gpu" in item.keywords and not GPU_AVAILABLE:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The demo model's tokenizer files (byte-level BPE, Llama 3 chat template, vocab 1024)."""
    return ensure_demo_model(tmp_path_factory.mktemp("demo"))


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")

ARCHITECTURES = {
    "llama3": dict(
        cls="LlamaConfig", head_dim=32,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 256}),
    "qwen2": dict(cls="Qwen2Config", tie_word_embeddings=True),
    "mistral": dict(cls="MistralConfig", head_dim=32, sliding_window=None),
}


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory, tokenizer_dir):
    """make_checkpoint(arch, **config) -> Path of a random-weight HF checkpoint (float32) with the
    demo tokenizer; arch is one of ARCHITECTURES. Same arguments, same directory (cached)."""
    import transformers

    made: dict[tuple, Path] = {}

    def make(arch: str = "llama3", seed: int = 0, shard_size: str | None = None, **overrides):
        key = (arch, seed, shard_size, tuple(sorted(overrides.items())))
        if key in made:
            return made[key]
        spec = dict(ARCHITECTURES[arch])
        config_cls = getattr(transformers, spec.pop("cls"))
        values = dict(vocab_size=1024, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=4096, bos_token_id=0, eos_token_id=[1, 4])
        values.update(spec)
        values.update(overrides)
        config = config_cls(**values)
        torch.manual_seed(seed)
        model_cls = {"LlamaConfig": transformers.LlamaForCausalLM,
                     "Qwen2Config": transformers.Qwen2ForCausalLM,
                     "MistralConfig": transformers.MistralForCausalLM}[type(config).__name__]
        model = model_cls(config).eval()
        _spread_weights(model)
        path = tmp_path_factory.mktemp(f"{arch}-ckpt")
        kwargs = {"max_shard_size": shard_size} if shard_size else {}
        model.save_pretrained(path, **kwargs)
        for name in TOKENIZER_FILES:
            shutil.copy(tokenizer_dir / name, path / name)
        made[key] = path
        return path

    return make


def _spread_weights(model) -> None:
    """HF's init (std 0.02) gives near-uniform logits where greedy ties flip on rounding noise;
    larger weights give the random model decisive, still arbitrary, preferences."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.15 if "embed" in name or "lm_head" in name else 0.08)
            elif "bias" in name:
                p.normal_(0.0, 0.02)
