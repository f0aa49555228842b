"""`shadowkv bench shape` writes a checkpoint folder without weights, and `shadowkv serve` on it
with `--load-format dummy` answers completions."""
import json

import pytest

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


def test_bench_times_every_token_even_when_the_tokenizer_cannot_spell_it(tmp_path):
    """A shape's vocabulary is larger than the demo tokenizer's 1024 tokens (llama3.1-8b's
    128256), so most ids a random-weight model samples decode to no text. The server still
    streams one chunk per token, and bench serve's ITL has one gap per token after the first,
    while other prompts prefill in several chunks (the H200 report of a 21 s "ITL" was the
    server sending only the first and last chunks of such outputs)."""
    folder = tmp_path / "tiny-wide-vocab"
    assert main(["bench", "shape", "tiny", str(folder)]) == 0
    config_file = folder / "config.json"
    config_file.write_text(json.dumps(json.loads(config_file.read_text()) | {"vocab_size": 8192}))
    args = build_parser().parse_args([
        "serve", str(folder), "--load-format", "dummy", "--device", "cpu", "--attention",
        "dense", "--max-model-len", "2048", "--num-gpu-blocks", "256", "--num-cpu-blocks", "256",
        "--max-num-batched-tokens", "128"])
    with serve_in_thread(engine_config(args)) as url:
        assert main(["bench", "serve", "--base-url", url, "--tokenizer", str(folder),
                     "--dataset", "random", "--random-input-len", "300",
                     "--random-output-len", "16", "--ignore-eos", "--temperature", "1.0",
                     "--num-prompts", "4", "--max-concurrency", "4", "--save-result",
                     "--save-detailed", "--result-dir", str(tmp_path), "--disable-tqdm"]) == 0
    (run,) = json.loads(next(tmp_path.glob("*.json")).read_text())["runs"]
    assert run["completed"] == 4
    for request in run["requests"]:
        assert request["output_tokens"] == 16
        assert len(request["itl_s"]) == 15
        assert sum(request["itl_s"]) == pytest.approx(request["latency_s"] - request["ttft_s"])
