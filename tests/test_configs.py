"""The shipped YAML configs load, and bad configuration fails with a message naming the option."""
from pathlib import Path

import pytest

from shadowkv_engine.config import EngineConfig, ShadowKVConfig
from shadowkv_engine.errors import InvalidRequestError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path):
    config = EngineConfig.from_yaml(path, model="/models/x")
    assert config.model == "/models/x"
    assert isinstance(config.shadowkv, ShadowKVConfig)


@pytest.mark.parametrize("bad, message", [
    (dict(sparse_budget=100), "multiple of chunk_size"),
    (dict(sparse_budget=4), "at least one chunk"),
    (dict(rank=0), "rank must be at least 1"),
    (dict(local_chunks=0), "local_chunks"),
    (dict(chunk_size="8"), "chunk_size must be an integer"),
    (dict(budget=2048), "unknown option"),
])
def test_invalid_shadowkv_config(bad, message):
    with pytest.raises(InvalidRequestError, match=message):
        ShadowKVConfig.from_dict(bad)


def test_rank_above_key_width_is_rejected():
    with pytest.raises(InvalidRequestError, match=r"rank \(300\) exceeds the key dimension.*256"):
        ShadowKVConfig(rank=300).for_model(num_kv_heads=2, head_dim=128)
    assert ShadowKVConfig().for_model(8, 128).rank == 160  # the paper's ratio


def test_engine_config_checks(tmp_path):
    with pytest.raises(InvalidRequestError, match="block_size"):
        EngineConfig(model="m", block_size=12)
    with pytest.raises(InvalidRequestError, match="attention"):
        EngineConfig(model="m", attention="sparse")
    bad = tmp_path / "c.yaml"
    bad.write_text("max_num_seqs: 4\nmax_seqs: 3\n")
    with pytest.raises(InvalidRequestError, match=r"unknown option\(s\) \['max_seqs'\]"):
        EngineConfig.from_yaml(bad, model="m")
