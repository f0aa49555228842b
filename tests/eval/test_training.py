"""The training script's data, schedule and a full CPU smoke run (training/ at the repo root)."""
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shadowkv_engine.eval.tasks import EVAL_SEED_OFFSET
from training.curriculum import Curriculum
from training.documents import KINDS, eval_shaped, multi_fact, tokenize, training_sequence
from training.layout_documents import layout_conversation
from training.tokenizer import BOS_ID, EOT


def conversation_messages(conversation, n):
    from shadowkv_engine.eval import templates as t

    messages = []
    for i, turn in enumerate(conversation.turns):
        user = t.user_message(conversation.preamble, conversation.context(n), turn.question) if i == 0 \
            else turn.question
        messages += [{"role": "user", "content": user},
                     {"role": "assistant", "content": turn.prefix + turn.answer}]
    return messages


@pytest.mark.parametrize("make", [multi_fact, layout_conversation])
@pytest.mark.parametrize("seed", range(4))
def test_training_text_is_the_chat_template_rendering(seed, make, chat_tokenizer):
    label = f"test/{seed}"
    conversation = make(random.Random(label), label, 4096)
    text, _ = conversation.render(30)
    messages = conversation_messages(conversation, 30)
    assert text == chat_tokenizer.apply_chat_template(messages, add_generation_prompt=False)
    # The eval prompt of the first question is this text cut after the first answer prefix.
    first = chat_tokenizer.apply_chat_template(messages[:1]) + conversation.turns[0].prefix
    assert text.startswith(first)


def test_a_context_that_opens_with_indented_lines_renders_as_the_template_trims_it(chat_tokenizer):
    from training.conversation import Conversation, Turn

    turn = Turn("What is x?", "x is ", "7.", "varied", r"\d+")
    conversation = Conversation(lambda n: "    x: 7\n    y: 8", "", [turn])
    text, _ = conversation.render(1)
    messages = conversation_messages(conversation, 1)
    assert text == chat_tokenizer.apply_chat_template(messages, add_generation_prompt=False)
    assert "|>\n\nx: 7" in text


@pytest.mark.parametrize("make", [multi_fact, layout_conversation])
def test_loss_covers_exactly_the_answers_and_kinds_mark_the_items(make, bpe_backend):
    label = "test/masks"
    conversation = make(random.Random(label), label, 2048)
    sequence = tokenize(conversation, bpe_backend, 2048)
    ids = sequence.ids.tolist()
    answers = bpe_backend.decode([i for i, m in zip(ids, sequence.loss) if m], skip_special_tokens=False)
    expected = "".join(turn.prefix + turn.answer + EOT for turn in conversation.turns)
    assert answers == expected
    items = bpe_backend.decode([i for i, k in zip(ids, sequence.kind) if k]).replace(" ", "")
    assert items.isalnum() and not (sequence.kind.astype(bool) & ~sequence.loss).any()


def test_sequences_fill_the_length_and_start_with_bos(bpe_backend):
    kinds_seen = set()
    for index in range(12):
        sequence = training_sequence(bpe_backend, 1024, seed=5, index=index)
        assert sequence.ids.shape == (1024,) and sequence.ids[0] == BOS_ID
        assert sequence.loss.sum() > 0
        kinds_seen |= set(np.unique(sequence.kind).tolist())
    assert {KINDS["niah"], KINDS["varied"]} <= kinds_seen


def test_training_sequences_are_deterministic(bpe_backend):
    a = training_sequence(bpe_backend, 512, seed=1, index=3)
    b = training_sequence(bpe_backend, 512, seed=1, index=3)
    assert (a.ids == b.ids).all()


def test_training_seeds_stay_out_of_the_eval_seed_space(bpe_backend):
    with pytest.raises(ValueError, match="eval"):
        training_sequence(bpe_backend, 512, seed=EVAL_SEED_OFFSET, index=0)


def test_eval_shaped_sequences_cover_the_eval_tasks():
    names = {eval_shaped(random.Random(i), f"x/{i}").turns[0].kind for i in range(200)}
    assert names == {"passkey", "niah", "multivalue", "multiquery", "vt", "fwe"}


def test_curriculum_advances_on_accuracy_or_deadline():
    c = Curriculum([256, 512, 1024], threshold=0.9, min_steps=10, final_by=0.5)
    assert not c.update(5, 0.0, 1.0)  # too few steps in the stage
    assert c.update(10, 0.01, 1.0) and c.length == 512
    assert not c.update(11, 0.1, 0.2)
    assert c.update(12, 0.5, 0.2) and c.length == 1024  # the last stage starts by half the run
    assert not c.update(100, 0.9, 1.0)


def test_layout_conversations_ask_about_every_fact_in_the_context():
    for i in range(20):
        label = f"test/layout/{i}"
        conversation = layout_conversation(random.Random(label), label, 8192)
        context = conversation.context(10)
        for turn in conversation.turns:
            value = turn.answer.strip(" .")
            assert value in context and turn.prefix.endswith(" is") and turn.kind == "varied"


def test_data_parallel_ranks_read_the_single_process_batches_between_them(bpe_backend):
    """Rank r of 2 takes batches r, r + 2, ...: after k steps each, the two ranks have read the
    first 2k batches of one process, each exactly once (resumed runs too)."""
    from training.batches import BatchFeeder

    def batches(feeder, n):
        out = [feeder.next(128)[0].tobytes() for _ in range(n)]
        feeder.close()
        return out

    single = batches(BatchFeeder(bpe_backend, 3, 256, workers=0), 8)
    ranks = [batches(BatchFeeder(bpe_backend, 3, 256, workers=0, rank=r, world=2), 4)
             for r in (0, 1)]
    assert ranks[0] == single[0::2] and ranks[1] == single[1::2]
    resumed = batches(BatchFeeder(bpe_backend, 3, 256, workers=0, start=2, rank=1, world=2), 2)
    assert resumed == single[5::2]


@pytest.mark.slow
def test_smoke_run_trains_resumes_exports_and_evaluates(tmp_path):
    from shadowkv_engine.model.config import ModelConfig
    from shadowkv_engine.model.tokenizer import Tokenizer
    from training.train_long_context import main

    out = tmp_path / "model"
    command = ["--smoke", "--out", str(out), "--log-file", str(tmp_path / "log"), "--state",
               str(tmp_path / "state.pt"), "--eval-output", str(tmp_path / "eval.json"),
               "--spectra-output", str(tmp_path / "spectra.json")]
    main(command + ["--stop-after", "1e-9"])  # one step, then the state is saved and it stops
    assert not out.exists() and (tmp_path / "state.pt").is_file()
    assert "at step 1: run the same command again" in (tmp_path / "log").read_text()
    main(command)  # the same command resumes at step 1 and finishes the run
    assert "resumed from" in (tmp_path / "log").read_text()
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "tokenizer.json",
                                               "tokenizer_config.json", "generation_config.json"}
    config = ModelConfig.from_pretrained(out)  # the engine reads the checkpoint
    assert config.head_dim == 32 and config.num_kv_heads == 1 and config.torch_dtype.is_floating_point
    tokenizer = Tokenizer.from_pretrained(out)
    assert tokenizer.chat_template and tokenizer.eos_token_ids == [1, 4]
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert [(r["task"], r["length"], r["split"], r["mode"]) for r in results][:2] == [
        ("passkey", 512, "heldout", "free"), ("niah_single", 512, "heldout", "free")]
    assert json.loads((out / "config.json").read_text())["shadowkv_training"]["steps"] == 12
    spectra = json.loads((tmp_path / "spectra.json").read_text())
    assert spectra["niah_single_prose"]["layers"][0]["pre_rope"]["dim"] == 32
    assert "trained:" in (tmp_path / "log").read_text()

    # Continuing from the export: its weights and tokenizer, a new run on top, both summaries kept.
    from training.train_long_context import initial_weights

    again = tmp_path / "continued"
    main(["--smoke", "--out", str(again), "--init-from", str(out), "--max-steps", "3",
          "--log-file", str(tmp_path / "log2")])
    assert "continuing from" in (tmp_path / "log2").read_text()
    assert (again / "tokenizer.json").read_text() == (out / "tokenizer.json").read_text()
    summary = json.loads((again / "config.json").read_text())["shadowkv_training"]
    assert summary["steps"] == 3 and [run["steps"] for run in summary["continued_from"]] == [12]
    first, second = initial_weights(str(out)), initial_weights(str(again))
    assert first.keys() == second.keys() and any(not first[k].equal(second[k]) for k in first)


@pytest.mark.slow
def test_two_data_parallel_ranks_train_resume_and_export_once(tmp_path):
    """torchrun with 2 processes (gloo on the CPU): the ranks share the batches, end with the same
    weights (the script checks), and rank 0 alone saves, logs and exports."""
    out = tmp_path / "model"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
               "2", "-m", "training.train_long_context", "--smoke", "--out", str(out),
               "--state", str(tmp_path / "state.pt"), "--log-file", str(tmp_path / "log")]
    root = Path(__file__).resolve().parents[2]
    first = subprocess.run(command + ["--stop-after", "1e-9"], cwd=root, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count("state saved") == 1 and not out.exists()
    second = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count("resumed from") == 1 and second.stdout.count("trained:") == 1
    training = json.loads((out / "config.json").read_text())["shadowkv_training"]
    assert training["gpus"] == 2 and training["steps"] == 12
    assert (tmp_path / "log").read_text().count("trained:") == 1  # rank 0 alone writes the log
