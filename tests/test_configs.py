"""The shipped YAML configs load and fit their models, bad configuration fails with a message
naming the option, and `--print-config` shows what file and flags merge into."""
import logging
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from shadowkv_engine import LLM
from shadowkv_engine.cli import main
from shadowkv_engine.config import EngineConfig, ShadowKVConfig
from shadowkv_engine.default_model import DEFAULT_MODEL_DIR
from shadowkv_engine.errors import InvalidRequestError

CONFIG_DIR = Path(__file__).parent.parent / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
# (layers, KV heads, head dim) of the checkpoint each GPU config is for.
MODEL_SHAPES = {
    "llama3.1-8b-instruct-128k-a100-80gb.yaml": (32, 8, 128),
    "llama3.1-8b-instruct-128k-h100-h200.yaml": (32, 8, 128),
    "dense-baseline.yaml": (32, 8, 128),
    "llama3-8b-instruct-gradient-1048k.yaml": (32, 8, 128),
    "yi-9b-200k.yaml": (48, 4, 128),
    "qwen2-7b-instruct.yaml": (28, 4, 128),
    "mistral-7b-instruct-v0.3.yaml": (32, 8, 128),
    "cpu-demo.yaml": (4, 2, 128),
}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path):
    config = EngineConfig.from_yaml(path, model="/models/x")
    assert config.model == "/models/x"
    assert isinstance(config.shadowkv, ShadowKVConfig)
    assert path.read_text().startswith("#"), "each config says what it is for and its budgets"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_fit_their_model(path):
    layers, kv_heads, head_dim = MODEL_SHAPES[path.name]  # a new config names its model here
    config = EngineConfig.from_yaml(path, model="/models/x")
    if config.attention != "shadowkv":
        return
    config.shadowkv.for_model(kv_heads, head_dim)  # rank within the key width
    value_bytes = config.max_model_len * layers * kv_heads * head_dim * 2
    if config.device == "cpu":
        value_bytes *= 2  # float32
    assert config.cpu_offload_gb * 2**30 >= value_bytes, "the value store holds a full sequence"


def test_cpu_demo_config_serves_the_embedded_model_and_logs_the_memory_plan(caplog):
    config = EngineConfig.from_yaml(CONFIG_DIR / "cpu-demo.yaml", model=str(DEFAULT_MODEL_DIR))
    with caplog.at_level(logging.INFO, logger="shadowkv_engine.engine.llm_engine"):
        LLM(**config.to_dict())
    (line,) = [r.getMessage() for r in caplog.records if "memory plan" in r.getMessage()]
    assert "8192 GPU KV pages (1.0 GiB), 16384 CPU value pages (1.0 GiB, not pinned)" in line
    # the embedded model: 4 layers, 2 KV heads x 128, at the rank and landmark it recommends
    # (64, minmax): 128 coefficient rows a page, 4092 chunks (32 landmark rows a page, 2 a chunk),
    # (48 + 256) exact chunks of 8 rows, 16-token pages
    assert ("a sequence of 32768 tokens: GPU pages u 256, lm 256, basis 2, exact 152, tail 4; "
            "value pages 2046" in line)
    assert line.endswith("largest batch at that length: 8")


@pytest.mark.parametrize("text, message", [
    ("max_num_seqs: '4'\n", "max_num_seqs must be an integer, got '4'"),
    ("max_seqs: 3\n", r"unknown option\(s\) \['max_seqs'\]"),
    ("gpu_memory_utilization: high\n", "gpu_memory_utilization must be a number"),
    ("enforce_eager: 'yes'\n", "enforce_eager must be true or false"),
    ("attention: sparse\n", "attention must be one of"),
    ("shadowkv: [1, 2]\n", "shadowkv must be a mapping"),
    ("shadowkv:\n  budget: 2048\n", r"unknown option\(s\) \['budget'\]"),
    ("shadowkv:\n  sparse_budget: 100\n", r"sparse_budget \(100\) must be a multiple"),
    ("- max_num_seqs\n", "must hold a mapping"),
    ("max_num_seqs: [4\n", "not valid YAML"),
])
def test_broken_config_file_is_refused_naming_the_option(tmp_path, text, message):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(InvalidRequestError, match=message) as error:
        EngineConfig.from_yaml(path, model="m")
    assert str(path) in str(error.value)


@pytest.mark.parametrize("bad, message", [
    (dict(sparse_budget=100), "multiple of chunk_size"),
    (dict(sparse_budget=4), "at least one chunk"),
    (dict(rank=0), "rank must be at least 1"),
    (dict(local_chunks=0), "local_chunks"),
    (dict(chunk_size="8"), "chunk_size must be an integer"),
    (dict(budget=2048), "unknown option"),
    (dict(landmark="max"), "landmark must be one of mean, minmax, got 'max'"),
])
def test_invalid_shadowkv_config(bad, message):
    with pytest.raises(InvalidRequestError, match=message):
        ShadowKVConfig.from_dict(bad)


def test_rank_above_key_width_is_rejected():
    with pytest.raises(InvalidRequestError, match=r"rank \(300\) exceeds the key dimension.*256"):
        ShadowKVConfig(rank=300).for_model(num_kv_heads=2, head_dim=128)
    assert ShadowKVConfig().for_model(8, 128).rank == 160  # the paper's ratio


def test_engine_config_checks():
    with pytest.raises(InvalidRequestError, match="block_size"):
        EngineConfig(model="m", block_size=12)
    with pytest.raises(InvalidRequestError, match="attention"):
        EngineConfig(model="m", attention="sparse")
    with pytest.raises(InvalidRequestError, match="max_model_len must be an integer or null"):
        EngineConfig(model="m", max_model_len=True)


def test_print_config_shows_flags_merged_over_the_file_without_loading_a_model(tmp_path, capsys):
    path = tmp_path / "engine.yaml"
    path.write_text("max_num_seqs: 5\nseed: 3\nshadowkv:\n  rank: 96\n  chunk_size: 16\n")
    assert main(["serve", "/no/such/checkpoint", "--config", str(path), "--print-config",
                 "--max-num-seqs", "7", "--shadowkv-rank", "48", "--enforce-eager"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"] == "/no/such/checkpoint"
    assert (printed["max_num_seqs"], printed["seed"], printed["enforce_eager"]) == (7, 3, True)
    assert printed["shadowkv"] == asdict(ShadowKVConfig(rank=48, chunk_size=16))
    merged = tmp_path / "merged.yaml"  # the output is itself a config file
    merged.write_text(yaml.safe_dump(printed))
    assert EngineConfig.from_yaml(merged).to_dict() == printed


def test_print_config_refuses_a_bad_value_naming_it(tmp_path, capsys, caplog):
    path = tmp_path / "engine.yaml"
    path.write_text("max_num_seqs: many\n")
    assert main(["serve", "m", "--config", str(path), "--print-config"]) == 2
    assert capsys.readouterr().out == ""
    assert "max_num_seqs must be an integer, got 'many'" in caplog.text
