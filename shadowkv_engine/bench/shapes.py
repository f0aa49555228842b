"""Named model shapes: a checkpoint folder with config.json and a tokenizer but no weights, so the
engine, the server and `bench throughput` run at a real model's shapes with `--load-format dummy`
(random weights: timing does not depend on weight values).

    shadowkv bench shape llama3.1-8b /tmp/llama3.1-8b-shape
    shadowkv serve /tmp/llama3.1-8b-shape --load-format dummy

The tokenizer is the embedded demo model's (1024 byte-level BPE tokens, Llama 3 chat template):
every id it writes is in any shape's vocabulary, and text in and out works as with a checkpoint.
"""
import json
import shutil
from pathlib import Path

from ..demo_model import ensure_demo_model

SHAPES = {
    "llama3.1-8b": dict(
        architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=128256,
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-5, max_position_embeddings=131072,
        rope_theta=500000.0, torch_dtype="bfloat16", tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    # A smoke-test shape that runs on a CPU in seconds.
    "tiny": dict(
        architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=1024, hidden_size=256,
        intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=128, rms_norm_eps=1e-5, max_position_embeddings=32768, rope_theta=500000.0,
        torch_dtype="float32", tie_word_embeddings=False),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")


def shape_config(name: str, layers: int | None = None) -> dict:
    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
    config = dict(SHAPES[name], shadowkv_shape=f"{name}: no weights, load with "
                                                 "--load-format dummy")
    if layers:
        config["num_hidden_layers"] = layers
    return config


def write_shape(name: str, directory: Path, layers: int | None = None) -> Path:
    """Writes the shape's config.json and the demo tokenizer's files into `directory` (made if
    missing; files already there are replaced); returns it."""
    config = shape_config(name, layers)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    demo = ensure_demo_model()
    for file in TOKENIZER_FILES:
        shutil.copy(demo / file, directory / file)
    return directory


def run_shape(args) -> int:
    path = write_shape(args.shape, args.directory, args.layers)
    print(f"{args.shape} shape written to {path} (config.json and tokenizer, no weights); serve "
          f"it with: shadowkv serve {path} --load-format dummy")
    return 0
