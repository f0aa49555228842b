"""A broken checkpoint fails with a message that names what is wrong."""
import json
import shutil

import pytest

from shadowkv_engine import LLM


def copy_of(path, tmp_path):
    target = tmp_path / "ckpt"
    shutil.copytree(path, target)
    return target


def edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


def load(path):
    return LLM(model=str(path), device="cpu", num_gpu_blocks=16)


def test_missing_config(make_checkpoint, tmp_path):
    path = copy_of(make_checkpoint("llama3"), tmp_path)
    (path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load(path)


def test_unsupported_architecture(make_checkpoint, tmp_path):
    path = copy_of(make_checkpoint("llama3"), tmp_path)
    edit_config(path, architectures=["GPT2LMHeadModel"], model_type="gpt2")
    with pytest.raises(ValueError, match="unsupported model architecture.*GPT2LMHeadModel"):
        load(path)


def test_missing_weights_file(make_checkpoint, tmp_path):
    path = copy_of(make_checkpoint("llama3"), tmp_path)
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load(path)


def test_missing_shard(make_checkpoint, tmp_path):
    path = copy_of(make_checkpoint("llama3", shard_size="40KB"), tmp_path)
    shard = sorted(path.glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=f"missing.*{shard.name}"):
        load(path)


def test_shape_mismatch_names_the_weight(make_checkpoint, tmp_path):
    path = copy_of(make_checkpoint("llama3"), tmp_path)
    edit_config(path, intermediate_size=96)
    with pytest.raises(ValueError, match=r"shape mismatch for model\.layers\.0\.mlp\.\w+_proj"):
        load(path)


def test_truncated_weights_file(make_checkpoint, tmp_path):
    path = copy_of(make_checkpoint("llama3"), tmp_path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="model.safetensors"):
        load(path)


def test_missing_layer_weights(make_checkpoint, tmp_path):
    path = copy_of(make_checkpoint("llama3"), tmp_path)
    edit_config(path, num_hidden_layers=3)
    with pytest.raises(ValueError, match=r"lacks weights: \['model\.layers\.2\."):
        load(path)


def test_missing_tokenizer(make_checkpoint, tmp_path):
    path = copy_of(make_checkpoint("llama3"), tmp_path)
    (path / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load(path)


def test_sliding_window_model_needs_dense_attention(make_checkpoint, tmp_path):
    path = copy_of(make_checkpoint("mistral"), tmp_path)
    edit_config(path, sliding_window=256)
    with pytest.raises(ValueError, match="sliding window of 256 tokens"):
        LLM(model=str(path), device="cpu", attention="shadowkv", num_gpu_blocks=16)
    LLM(model=str(path), device="cpu", attention="shadowkv", max_model_len=256,
        num_gpu_blocks=16)
