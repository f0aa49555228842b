"""`shadowkv serve` flags: every engine and ShadowKV option, a YAML config they override, and the
embedded demo model when no model is given."""
import subprocess
import sys
from pathlib import Path

import pytest

from shadowkv_engine import LLM, SamplingParams
from shadowkv_engine.cli import build_parser, engine_config, main
from shadowkv_engine.default_model import DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME
from shadowkv_engine.demo_model import DEMO_MODEL_NAME

REPO = Path(__file__).resolve().parents[2]


def config_of(*argv):
    return engine_config(build_parser().parse_args(["serve", *argv]))


def test_flags_set_engine_and_shadowkv_options(tmp_path):
    config = config_of(str(tmp_path), "--device", "cpu", "--dtype", "float32",
                       "--attention", "dense", "--max-model-len", "4096", "--max-num-seqs", "3",
                       "--max-queued-requests", "0", "--cpu-offload-gb", "1.5",
                       "--shadowkv-rank", "64", "--shadowkv-sparse-budget", "256",
                       "--shadowkv-min-context-len", "0", "--shadowkv-landmark", "minmax")
    assert config.model == str(tmp_path)
    assert (config.device, config.dtype, config.attention) == ("cpu", "float32", "dense")
    assert (config.max_model_len, config.max_num_seqs, config.max_queued_requests) == (4096, 3, 0)
    assert config.cpu_offload_gb == 1.5
    assert (config.shadowkv.rank, config.shadowkv.sparse_budget) == (64, 256)
    assert (config.shadowkv.min_context_len, config.shadowkv.landmark) == (0, "minmax")
    assert config.shadowkv.chunk_size == 8  # untouched options keep their defaults


def test_landmark_flag_names_its_choices(tmp_path, capsys):
    with pytest.raises(SystemExit):
        config_of(str(tmp_path), "--shadowkv-landmark", "median")
    err = capsys.readouterr().err
    assert "--shadowkv-landmark: invalid choice: 'median'" in err and "minmax" in err


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "engine.yaml"
    path.write_text(f"model: {tmp_path}\nmax_num_seqs: 5\nseed: 3\n"
                    "shadowkv:\n  rank: 96\n  chunk_size: 16\n")
    config = config_of("--config", str(path), "--max-num-seqs", "7", "--shadowkv-rank", "48")
    assert config.model == str(tmp_path)
    assert (config.max_num_seqs, config.seed) == (7, 3)
    assert (config.shadowkv.rank, config.shadowkv.chunk_size) == (48, 16)


def test_no_model_serves_the_embedded_trained_model():
    config = config_of("--device", "cpu")
    assert Path(config.model) == DEFAULT_MODEL_DIR
    assert config.model_name == DEFAULT_MODEL_NAME


def test_without_the_trained_asset_the_demo_stands_in(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SHADOWKV_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr("shadowkv_engine.default_model.DEFAULT_MODEL_DIR", tmp_path / "absent")
    config = config_of("--device", "cpu")
    assert Path(config.model) == tmp_path / DEMO_MODEL_NAME
    assert config.model_name == DEMO_MODEL_NAME
    assert "RANDOM-WEIGHT DEMO" in caplog.text


def test_invalid_option_is_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="sparse_budget"):
        config_of(str(tmp_path), "--shadowkv-sparse-budget", "12")


def test_generate_prints_the_completion(demo_model, capsys):
    options = ["--device", "cpu", "--num-gpu-blocks", "64", "--num-cpu-blocks", "64"]
    assert main(["generate", str(demo_model), "--prompt", "The river", "--max-tokens", "6",
                 *options]) == 0
    printed = capsys.readouterr().out
    llm = LLM(model=str(demo_model), device="cpu", num_gpu_blocks=64, num_cpu_blocks=64)
    expected = llm.generate("The river", SamplingParams(temperature=0.0, max_tokens=6))
    assert printed == expected[0].outputs[0].text + "\n"


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "serve" in capsys.readouterr().out


def test_the_cli_does_not_import_the_server_dependencies():
    probe = ("import sys; from shadowkv_engine.cli import build_parser; build_parser(); "
             "print('fastapi' in sys.modules, 'uvicorn' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr
