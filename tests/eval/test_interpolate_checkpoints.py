"""training.interpolate_checkpoints: the point between two exports that the shipped model is."""
import json

import pytest
import torch
from safetensors.torch import load_file

from training.interpolate_checkpoints import interpolate, main


def with_training_summary(folder, summary: dict):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"shadowkv_training": summary}))
    return folder


@pytest.fixture
def start_and_end(make_checkpoint, tmp_path):
    import shutil

    start = shutil.copytree(make_checkpoint(seed=0), tmp_path / "start")
    end = shutil.copytree(make_checkpoint(seed=1), tmp_path / "end")
    with_training_summary(start, {"steps": 12, "trained_length": 4096})
    with_training_summary(end, {"steps": 3, "trained_length": 4096, "continued_from": [{"steps": 12}]})
    return start, end


def test_weights_lie_the_fraction_of_the_way_and_the_engine_serves_them(start_and_end, tmp_path):
    from shadowkv_engine import LLM, SamplingParams

    start, end = start_and_end
    out = interpolate(start, end, 0.3, tmp_path / "between")
    a, b, mixed = (load_file(folder / "model.safetensors") for folder in (start, end, out))
    assert mixed.keys() == b.keys()
    for name in b:
        assert mixed[name].dtype == b[name].dtype
        torch.testing.assert_close(mixed[name], 0.7 * a[name] + 0.3 * b[name])
    assert not mixed["model.embed_tokens.weight"].equal(a["model.embed_tokens.weight"])
    assert (out / "tokenizer.json").read_bytes() == (end / "tokenizer.json").read_bytes()

    summary = json.loads((out / "config.json").read_text())["shadowkv_training"]
    assert summary["steps"] == 3 and summary["continued_from"] == [{"steps": 12}]
    assert summary["interpolated_from_start"]["fraction_of_this_run"] == 0.3
    assert summary["interpolated_from_start"]["start_run"] == {"steps": 12, "trained_length": 4096}

    llm = LLM(model=str(out), device="cpu", max_model_len=256)
    output = llm.generate(["one two three"], SamplingParams(temperature=0.0, max_tokens=4), use_tqdm=False)
    assert len(output[0].outputs[0].token_ids) == 4


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.2])
def test_a_fraction_outside_zero_to_one_is_refused(start_and_end, tmp_path, fraction):
    start, end = start_and_end
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        interpolate(start, end, fraction, tmp_path / "between")
    assert not (tmp_path / "between").exists()


def test_checkpoints_of_other_shapes_or_tokenizers_are_refused(start_and_end, make_checkpoint, tmp_path):
    start, end = start_and_end
    wider = make_checkpoint(seed=2, intermediate_size=96)
    with pytest.raises(ValueError, match=r"down_proj.weight has shape \(64, 128\) in the start checkpoint and \(64, 96\)"):
        interpolate(start, wider, 0.5, tmp_path / "a")
    tokenizer = json.loads((end / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = list(vocab)[:2]
    vocab[first], vocab[second] = vocab[second], vocab[first]  # two tokens trade ids
    (end / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ValueError, match="different tokenizers"):
        interpolate(start, end, 0.5, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_command_line_names_the_problem_and_never_overwrites(start_and_end, tmp_path, capsys):
    start, end = start_and_end
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit) as exit_info:
        main(["--start", str(start), "--end", str(end), "--fraction", "0.3", "--out", str(taken)])
    assert exit_info.value.code == 2 and "exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]

    with pytest.raises(SystemExit):
        main(["--start", str(tmp_path), "--end", str(end), "--fraction", "0.3", "--out", str(tmp_path / "c")])
    assert "is not an exported checkpoint: no model.safetensors, config.json, tokenizer.json" in capsys.readouterr().err

    main(["--start", str(start), "--end", str(end), "--fraction", "0.3", "--out", str(tmp_path / "d")])
    assert "0.3 of the way from" in capsys.readouterr().out
