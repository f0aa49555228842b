"""A checkpoint may recommend its own ShadowKV rank and landmark (config.json "shadowkv_defaults"):
the engine uses them where its own config leaves them unset, and a user's setting wins."""
import json
import logging
import shutil

import pytest

from shadowkv_engine import LLM, SamplingParams
from shadowkv_engine.config import EngineConfig
from shadowkv_engine.default_model import default_model_path
from shadowkv_engine.engine.llm_engine import LLMEngine

RECOMMENDED = {"landmark": "minmax", "rank": 48}
# Selection on: sequences from 64 tokens, 4 chunks of 8 attended beside the local window.
TIGHT = {"min_context_len": 64, "sparse_budget": 32, "outlier_chunks": 1, "local_chunks": 1}


def recommending(source, tmp_path, defaults) -> str:
    model = tmp_path / "recommending"
    shutil.copytree(source, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"shadowkv_defaults": defaults}))
    return str(model)


def engine_shadowkv(model: str, **shadowkv):
    return LLMEngine(EngineConfig(model=model, device="cpu", num_gpu_blocks=128, num_cpu_blocks=64,
                                  max_model_len=1024, shadowkv=shadowkv)).config.shadowkv


def test_the_recommendation_fills_only_what_the_user_left_unset(make_checkpoint, tmp_path):
    model = recommending(make_checkpoint("llama3"), tmp_path, RECOMMENDED)
    assert (engine_shadowkv(model).landmark, engine_shadowkv(model).rank) == ("minmax", 48)
    chosen = engine_shadowkv(model, landmark="mean")
    assert (chosen.landmark, chosen.rank) == ("mean", 48)
    plain = engine_shadowkv(str(make_checkpoint("llama3")))
    assert (plain.landmark, plain.rank) == ("mean", 10)  # the library's: 160/1024 of 2 x 32


def test_generation_under_the_recommendation_equals_the_same_settings_given(make_checkpoint,
                                                                           tmp_path):
    plain = str(make_checkpoint("llama3"))
    model = recommending(plain, tmp_path, RECOMMENDED)
    params = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)
    prompt = [[(7 * i) % 1000 + 2 for i in range(300)]]

    def generate(path, **shadowkv):
        llm = LLM(model=path, device="cpu", num_gpu_blocks=128, num_cpu_blocks=64,
                  max_model_len=1024, shadowkv=TIGHT | shadowkv)
        return llm.generate(prompt, params)[0].outputs[0].token_ids

    assert generate(model) == generate(plain, **RECOMMENDED)


@pytest.mark.parametrize("defaults, message", [
    (["minmax"], "must be a mapping"),
    ({"sparse_budget": 1024}, r"may set only \['rank', 'landmark'\]"),
    ({"landmark": "max"}, "landmark must be one of mean, minmax"),
    ({"rank": "64"}, "rank must be an integer"),
])
def test_a_bad_recommendation_is_refused_naming_the_file(make_checkpoint, tmp_path, defaults,
                                                         message):
    model = recommending(make_checkpoint("llama3"), tmp_path, defaults)
    with pytest.raises(ValueError, match=f"shadowkv_defaults in .*config.json.*{message}"):
        engine_shadowkv(model)


def test_the_embedded_model_recommends_what_its_accuracy_was_measured_with(caplog):
    """docs/accuracy.md: minmax landmarks at rank 64 keep ShadowKV within a point of dense; the
    start-up log says what was resolved and where it came from."""
    with caplog.at_level(logging.INFO, logger="shadowkv_engine.engine.llm_engine"):
        served = engine_shadowkv(str(default_model_path()))
    assert (served.landmark, served.rank, served.sparse_budget) == ("minmax", 64, 2048)
    (line,) = [r.getMessage() for r in caplog.records if "engine ready" in r.getMessage()]
    assert ("attention=shadowkv (rank 64, minmax landmarks, budget 2048; landmark and rank "
            "recommended by the model)") in line


def test_an_eval_records_the_settings_it_ran_with(make_checkpoint, tmp_path, capsys):
    """`shadowkv eval` writes the resolved settings, so a stored result says what it measured."""
    from shadowkv_engine.cli import main

    model = recommending(make_checkpoint("llama3"), tmp_path, RECOMMENDED)
    out = tmp_path / "eval.json"
    assert main(["eval", "--model", model, "--device", "cpu", "--tasks", "passkey", "--lengths",
                 "1k", "--samples", "1", "--shadowkv-sparse-budget", "64", "--output", str(out),
                 "--no-progress"]) == 0
    settings = json.loads(out.read_text())["meta"]["shadowkv"]
    assert (settings["landmark"], settings["rank"], settings["sparse_budget"]) == ("minmax", 48, 64)
    assert '"landmark": "minmax"' in capsys.readouterr().out
