"""`shadowkv bench shape` writes a checkpoint folder without weights, and `shadowkv serve` on it
with `--load-format dummy` answers completions."""
import json

from server_harness import assert_still_serving, serve_in_thread

from shadowkv_engine.bench.shapes import TOKENIZER_FILES
from shadowkv_engine.cli import build_parser, engine_config, main


def test_llama_8b_shape_folder(tmp_path, capsys):
    folder = tmp_path / "llama3.1-8b"
    assert main(["bench", "shape", "llama3.1-8b", str(folder), "--layers", "4"]) == 0
    config = json.loads((folder / "config.json").read_text())
    assert config["vocab_size"] == 128256 and config["num_key_value_heads"] == 8
    assert config["num_hidden_layers"] == 4 and config["max_position_embeddings"] == 131072
    assert sorted(p.name for p in folder.iterdir()) == sorted(("config.json", *TOKENIZER_FILES))
    assert f"shadowkv serve {folder} --load-format dummy" in capsys.readouterr().out


def test_serve_tiny_shape_with_dummy_weights(tmp_path):
    folder = tmp_path / "tiny"
    assert main(["bench", "shape", "tiny", str(folder)]) == 0
    args = build_parser().parse_args([
        "serve", str(folder), "--load-format", "dummy", "--device", "cpu", "--max-model-len",
        "2048", "--num-gpu-blocks", "256", "--num-cpu-blocks", "256", "--max-num-seqs", "4"])
    config = engine_config(args)
    assert config.load_format == "dummy" and config.model == str(folder)
    with serve_in_thread(config) as url:
        assert_still_serving(url)
