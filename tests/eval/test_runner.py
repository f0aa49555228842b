import argparse
import json

import pytest

from shadowkv_engine.config import ShadowKVConfig
from shadowkv_engine.eval.cli import add_parser, answer_modes, parse_tasks
from shadowkv_engine.eval.runner import evaluate, format_table, write_json
from shadowkv_engine.eval.tasks import eval_samples

TASKS = ["passkey", "niah_multivalue"]
LENGTHS = [1024, 2048]


def oracle(tokenizer, samples_per_cell, tasks=TASKS, split="classic", modes=("prefixed",)):
    """A generator that answers perfectly for every other prompt and wrongly for the rest."""
    answers = {}
    for task in tasks:
        for length in LENGTHS:
            for mode in modes:
                for i, s in enumerate(eval_samples(task, tokenizer, length, samples_per_cell, split, mode)):
                    answers[tuple(s.prompt_token_ids)] = s.answer_text if i % 2 == 0 else " 0."
    seen = []

    def generate(prompts, max_tokens):
        seen.append((prompts, max_tokens))
        return [answers[tuple(p)] for p in prompts]

    return generate, seen


def test_evaluate_scores_every_cell(byte_tokenizer):
    generate, seen = oracle(byte_tokenizer, 4)
    results = evaluate(generate, byte_tokenizer, TASKS, LENGTHS, samples=4, batch_size=3,
                       progress=False)
    assert [(r.task, r.length) for r in results] == [(t, n) for t in TASKS for n in LENGTHS]
    assert all(r.accuracy == 0.5 and len(r.records) == 4 for r in results)
    # batches of at most 3, the task's answer budget
    assert [(len(prompts), max_tokens) for prompts, max_tokens in seen[:2]] == [(3, 16), (1, 16)]


def test_table_and_json(byte_tokenizer, tmp_path):
    generate, _ = oracle(byte_tokenizer, 2)
    results = evaluate(generate, byte_tokenizer, TASKS, LENGTHS, samples=2, progress=False)
    table = format_table(results)
    assert table.splitlines()[0].split() == ["task", "|", "1k", "|", "2k"]
    assert "passkey" in table and "mean" in table and "50.0%" in table
    write_json(tmp_path / "r.json", results, {"attention": "dense"})
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"] == {"passkey@1024": 0.5, "passkey@2048": 0.5,
                               "niah_multivalue@1024": 0.5, "niah_multivalue@2048": 0.5}
    record = data["results"][0]["records"][0]
    assert record["correct"] and record["given"] == record["answers"]


def test_both_answer_modes_on_the_heldout_split(byte_tokenizer, tmp_path):
    modes = ("prefixed", "free")
    generate, seen = oracle(byte_tokenizer, 2, ["passkey"], "heldout", modes)
    results = evaluate(generate, byte_tokenizer, ["passkey"], LENGTHS, samples=2, progress=False,
                       split="heldout", modes=modes)
    assert [(r.length, r.mode, r.split) for r in results] == [
        (n, m, "heldout") for n in LENGTHS for m in modes]
    assert all(r.accuracy == 0.5 for r in results)
    assert seen[0][1] == 24 and seen[1][1] > 24  # a free answer's budget holds its opening too
    # Prompts generated together share a budget that each of them was sized for.
    budgets = {tuple(s.prompt_token_ids): s.max_new_tokens for n in LENGTHS for m in modes
               for s in eval_samples("passkey", byte_tokenizer, n, 2, "heldout", m)}
    assert all(budgets[tuple(p)] == max_tokens for prompts, max_tokens in seen for p in prompts)
    table = format_table(results)
    assert "passkey (heldout)" in table and "passkey (heldout, free)" in table
    write_json(tmp_path / "r.json", results, {})
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data["summary"]) == {"passkey@1024/heldout", "passkey@1024/heldout/free",
                                    "passkey@2048/heldout", "passkey@2048/heldout/free"}
    assert data["results"][1]["mode"] == "free" and data["results"][1]["records"][0]["layout"]


def test_eval_split_and_answer_mode_flags():
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--split", "heldout", "--answer-mode", "both"])
    assert args.split == "heldout" and answer_modes(args.answer_mode) == ("prefixed", "free")
    assert parse_tasks(args.tasks, args.split) == ["passkey", "niah_single", "niah_multikey"]
    args = parser.parse_args(["eval"])
    assert args.split == "classic" and answer_modes(args.answer_mode) == ("prefixed",)
    assert "vt" in parse_tasks(args.tasks, args.split)
    with pytest.raises(ValueError, match="vt"):
        parse_tasks("passkey,vt", "heldout")
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--answer-mode", "open"])


def test_eval_subcommand_has_every_shadowkv_flag():
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--model", "m", "--attention", "dense", "--shadowkv-rank", "40",
                              "--shadowkv-sparse-budget", "256", "--lengths", "4k,8k"])
    assert args.func.__name__ == "run" and args.model_path == "m" and args.attention == "dense"
    assert args.shadowkv_rank == 40 and args.shadowkv_sparse_budget == 256
    for name in ShadowKVConfig.__dataclass_fields__:
        assert hasattr(args, f"shadowkv_{name}")


def test_parse_tasks_rejects_unknown_names():
    assert parse_tasks("passkey, vt") == ["passkey", "vt"]
    try:
        parse_tasks("passkey,qa_1")
    except ValueError as e:
        assert "qa_1" in str(e)
    else:
        raise AssertionError("qa_1 accepted")
