"""Comparing two eval outputs sample for sample (python -m shadowkv_engine.eval.compare)."""
import json

import pytest

from shadowkv_engine.eval.compare import compare, load_cells, main
from shadowkv_engine.eval.runner import evaluate, write_json
from shadowkv_engine.eval.tasks import eval_samples

LENGTH, SAMPLES = 1024, 6


def run(byte_tokenizer, path, right):
    """An eval run on the held-out split whose generator is right on the samples `right` picks
    (by index) and answers '0000' on the others; written where `shadowkv eval --output` would."""
    samples = eval_samples("passkey", byte_tokenizer, LENGTH, SAMPLES, "heldout", "free")
    answers = {tuple(s.prompt_token_ids): s.answer_text if right(i) else "The passkey is 0000."
               for i, s in enumerate(samples)}
    results = evaluate(lambda prompts, _: [answers[tuple(p)] for p in prompts], byte_tokenizer,
                       ["passkey"], [LENGTH], SAMPLES, batch_size=4, progress=False,
                       split="heldout", modes=("free",))
    write_json(path, results, {})
    return samples


def test_compare_counts_kept_answers_and_same_outputs(byte_tokenizer, tmp_path, capsys):
    samples = run(byte_tokenizer, tmp_path / "dense.json", lambda i: i < 4)
    run(byte_tokenizer, tmp_path / "sparse.json", lambda i: i in (1, 2, 5))
    [cell] = compare(load_cells(tmp_path / "dense.json"), load_cells(tmp_path / "sparse.json"))
    assert cell.key == ("passkey", LENGTH, "heldout", "free") and cell.samples == SAMPLES
    assert (cell.reference_correct, cell.candidate_correct, cell.kept) == (4, 3, 2)
    assert cell.same_output == 3  # samples 1 and 2 (right in both), 4 (wrong in both)
    numeric = [i for i, s in enumerate(samples) if s.layout["format"].startswith("digits")]
    [digits] = compare(load_cells(tmp_path / "dense.json"), load_cells(tmp_path / "sparse.json"),
                       digits_only=True)
    assert digits.samples == len(numeric) and digits.reference_correct == sum(i < 4 for i in numeric)
    assert main([str(tmp_path / "dense.json"), str(tmp_path / "sparse.json"),
                 "--lost", str(tmp_path / "lost.json")]) == 0
    assert "passkey @1K (heldout, free)" in capsys.readouterr().out
    # right under dense, wrong under sparse: samples 0 and 3, by seed (replay_samples.py's input)
    assert json.loads((tmp_path / "lost.json").read_text()) == [
        ["passkey", samples[0].seed], ["passkey", samples[3].seed]]


def test_compare_rejects_files_that_are_not_eval_outputs(tmp_path):
    (tmp_path / "other.json").write_text('{"x": 1}')
    with pytest.raises(ValueError, match="not an eval output"):
        load_cells(tmp_path / "other.json")
