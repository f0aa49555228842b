"""The embedded demo model: a complete Hugging Face Llama checkpoint, generated the same every time."""

import hashlib
import json

import pytest

from shadowkv_engine import demo_model
from shadowkv_engine.demo_model import DEMO_MODEL_NAME, ensure_demo_model, write_demo_model
from shadowkv_engine.model.tokenizer import Tokenizer

FILES = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "README.md",
]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return ensure_demo_model(tmp_path_factory.mktemp("cache"))


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_files_and_label(demo_dir):
    assert demo_dir.name == DEMO_MODEL_NAME
    assert sorted(p.name for p in demo_dir.iterdir()) == sorted(FILES)
    config = json.loads((demo_dir / "config.json").read_text())
    assert config["shadowkv_demo"] == "random-weight demo model"
    assert "random-weight" in (demo_dir / "README.md").read_text()
    assert not [p for p in demo_dir.parent.iterdir() if p.name != DEMO_MODEL_NAME]  # no staging left behind


def test_transformers_loads_it_without_missing_or_unexpected_keys(demo_dir):
    import torch
    from transformers import LlamaForCausalLM

    model, info = LlamaForCausalLM.from_pretrained(demo_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.config.head_dim == 128 and model.config.num_key_value_heads == 2
    logits = model(torch.tensor([[0, 5, 6, 7]])).logits
    assert logits.shape == (1, 4, 1024) and torch.isfinite(logits).all()


def test_our_tokenizer_loads_it_and_renders_chat(demo_dir):
    tok = Tokenizer.from_pretrained(demo_dir)
    assert tok.vocab_size == 1024
    assert tok.eos_token_ids == [tok.token_to_id("<|end_of_text|>"), tok.token_to_id("<|eot_id|>")]
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hello there"}])
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    ids = tok.encode(prompt, add_special_tokens=False)
    assert ids[0] == tok.bos_token_id and tok.decode(ids, skip_special_tokens=False) == prompt
    assert tok.encode("the river")[0] == tok.bos_token_id  # tokenizer.json adds BOS to plain prompts


def test_second_call_reuses_the_model(demo_dir):
    before = (demo_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_demo_model(demo_dir.parent) == demo_dir
    assert (demo_dir / "model.safetensors").stat().st_mtime_ns == before


def test_default_location_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SHADOWKV_CACHE_DIR", str(tmp_path))
    assert ensure_demo_model() == tmp_path / DEMO_MODEL_NAME


def test_generation_is_byte_identical(demo_dir, tmp_path):
    # Rust hash maps inside `tokenizers` are seeded afresh per map, so in-process runs differ too if
    # training depended on hash order; a fresh interpreter was checked by hand to give the same bytes.
    write_demo_model(tmp_path)
    for name in FILES:
        assert sha256(tmp_path / name) == sha256(demo_dir / name), name


def test_losing_a_concurrent_first_start_is_fine(tmp_path, monkeypatch):
    # Another process renames its finished copy into place while this one is still writing.
    def write_while_another_finishes(directory):
        write_demo_model(directory)
        (tmp_path / DEMO_MODEL_NAME).mkdir()
        write_demo_model(tmp_path / DEMO_MODEL_NAME)

    monkeypatch.setattr(demo_model, "write_demo_model", write_while_another_finishes)
    assert ensure_demo_model(tmp_path) == tmp_path / DEMO_MODEL_NAME
    assert [p.name for p in tmp_path.iterdir()] == [DEMO_MODEL_NAME]
