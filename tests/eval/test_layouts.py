"""The layout split: train and held-out pools are disjoint, samples of both splits are well formed,
and the training stream never contains held-out material."""
import dataclasses
import random
import re
import string

import pytest

from shadowkv_engine.eval import words
from shadowkv_engine.eval.fillers import CATEGORIES, FILLERS
from shadowkv_engine.eval.haystack import Haystack
from shadowkv_engine.eval.layouts import SPLITS, TRAIN, check_pools
from shadowkv_engine.eval.scoring import is_correct
from shadowkv_engine.eval.tasks import EVAL_SEED_OFFSET, KEY, LAYOUT_TASKS, make_sample
from training.documents import conversation


def test_nothing_that_varies_is_in_two_splits():
    check_pools()
    train_words = set(words.ADJECTIVES + words.NOUNS + words.NAMES)
    heldout_words = set(words.HELDOUT_ADJECTIVES + words.HELDOUT_NOUNS + words.HELDOUT_NAMES)
    blind_words = set(words.BLIND_ADJECTIVES + words.BLIND_NOUNS + words.BLIND_NAMES)
    blind2_words = set(words.BLIND2_ADJECTIVES + words.BLIND2_NOUNS + words.BLIND2_NAMES)
    blind3_words = set(words.BLIND3_ADJECTIVES + words.BLIND3_NOUNS + words.BLIND3_NAMES)
    blind4_words = set(words.BLIND4_ADJECTIVES + words.BLIND4_NOUNS + words.BLIND4_NAMES)
    blind5_words = set(words.BLIND5_ADJECTIVES + words.BLIND5_NOUNS + words.BLIND5_NAMES)
    blind6_words = set(words.BLIND6_ADJECTIVES + words.BLIND6_NOUNS + words.BLIND6_NAMES)
    blind7_words = set(words.BLIND7_ADJECTIVES + words.BLIND7_NOUNS + words.BLIND7_NAMES)
    assert not train_words & heldout_words and not (train_words | heldout_words) & blind_words
    assert not (train_words | heldout_words | blind_words) & blind2_words
    assert not (train_words | heldout_words | blind_words | blind2_words) & blind3_words
    assert not (train_words | heldout_words | blind_words | blind2_words
                | blind3_words) & blind4_words
    assert not (train_words | heldout_words | blind_words | blind2_words | blind3_words
                | blind4_words) & blind5_words
    assert not (train_words | heldout_words | blind_words | blind2_words | blind3_words
                | blind4_words | blind5_words) & blind6_words
    assert not (train_words | heldout_words | blind_words | blind2_words | blind3_words
                | blind4_words | blind5_words | blind6_words) & blind7_words
    assert (blind2_words | blind3_words | blind4_words | blind5_words | blind6_words
            | blind7_words) <= words.HELD_OUT_WORDS


@pytest.mark.parametrize("split", ["blind", "blind2", "blind3", "blind4", "blind5", "blind6",
                                   "blind7"])
def test_a_shared_template_is_reported_with_both_splits(split, monkeypatch):
    import shadowkv_engine.eval.layouts as layouts
    pools = layouts.SPLITS[split]
    leaky = dataclasses.replace(pools, questions=pools.questions + (TRAIN.questions[0],))
    monkeypatch.setitem(layouts.SPLITS, split, leaky)
    with pytest.raises(AssertionError, match=f"questions in both train and {split}:"):
        check_pools()


@pytest.mark.parametrize("split", list(SPLITS))
def test_every_filler_category_is_in_every_split(split):
    assert {FILLERS[name].category for name in SPLITS[split].fillers} == set(CATEGORIES)


@pytest.mark.parametrize("name", list(FILLERS))
def test_fillers_hold_no_key_shaped_token(name):
    """A needle's value (4+ characters with a digit) is the only key-shaped token of a context."""
    text = FILLERS[name].separator.join(Haystack(name, "test").units(400))
    assert all(len(token) < 4 for token in re.findall(KEY, text)), name


@pytest.mark.parametrize("split", ["train", "heldout", "blind", "blind2", "blind3", "blind4",
                                   "blind5", "blind6", "blind7"])
@pytest.mark.parametrize("task", list(LAYOUT_TASKS))
@pytest.mark.parametrize("mode", ["prefixed", "free"])
def test_layout_sample_fills_its_length_and_holds_its_answer(split, task, mode, chat_tokenizer):
    sample = make_sample(task, chat_tokenizer, 1024, EVAL_SEED_OFFSET + 1, split, mode)
    budget = 1024 - sample.max_new_tokens
    assert budget - 60 < sample.num_prompt_tokens <= budget  # a unit is at most a long line
    assert sample.prompt_token_ids == chat_tokenizer.encode(sample.prompt, add_special_tokens=False)
    user_turn = sample.prompt.split("<|eot_id|>")[0]
    assert len(sample.answers) == 1 and sample.answers[0] in user_turn
    assert is_correct(sample.answer_text, sample)
    assistant = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    if mode == "prefixed":
        assert sample.prompt.endswith(assistant + sample.answer_prefix)
    else:
        assert sample.prompt.endswith(assistant)
        assert sample.answer_text.startswith(sample.answer_prefix) and sample.max_new_tokens > 24


def test_both_modes_of_a_seed_are_the_same_problem(byte_tokenizer):
    prefixed = make_sample("niah_multikey", byte_tokenizer, 2048, EVAL_SEED_OFFSET, "heldout")
    free = make_sample("niah_multikey", byte_tokenizer, 2048, EVAL_SEED_OFFSET, "heldout", "free")
    assert prefixed.answers == free.answers and prefixed.layout == free.layout
    assert free.answer_text == prefixed.answer_prefix + prefixed.answer_text


@pytest.mark.parametrize("split", list(SPLITS))
def test_samples_draw_only_from_their_split(split, byte_tokenizer):
    pools, seen = SPLITS[split], {"format": set(), "kind": set(), "instruction": set()}
    for i in range(40):
        sample = make_sample("passkey" if i % 2 else "niah_single", byte_tokenizer, 600,
                             EVAL_SEED_OFFSET + i, split)
        layout = sample.layout
        assert layout["split"] == split and layout["filler"] in pools.fillers
        if layout["instruction"] >= 0:
            assert sample.prompt.startswith(pools.instructions[layout["instruction"]])
        assert 4 <= len(sample.answers[0]) <= 8
        for name in seen:
            seen[name].add(layout[name] if name != "format" else layout[name].rstrip(string.digits))
    assert seen["format"] == {"digits", "alnum"} and -1 in seen["instruction"]
    assert seen["kind"] == {"pass key", "secret number", "code", "magic number", "attribute"}


def test_classic_only_tasks_have_no_split(byte_tokenizer):
    with pytest.raises(ValueError, match="no varied layouts"):
        make_sample("vt", byte_tokenizer, 2048, EVAL_SEED_OFFSET, "heldout")
    with pytest.raises(ValueError, match="unknown split"):
        make_sample("passkey", byte_tokenizer, 2048, EVAL_SEED_OFFSET, "test")


@pytest.mark.parametrize("split", ["heldout", "blind", "blind2", "blind3", "blind4", "blind5",
                                   "blind6", "blind7"])
def test_heldout_samples_are_recognised_as_such(split, byte_tokenizer, heldout_material):
    for i in range(10):
        sample = make_sample("niah_single", byte_tokenizer, 1024, EVAL_SEED_OFFSET + i, split)
        assert heldout_material(sample.prompt)


def test_training_text_never_contains_heldout_material(heldout_material):
    for i in range(300):
        label = f"test/heldout/{i}"
        rng = random.Random(label)
        text = conversation(rng, label, 4096).render(rng.randint(20, 60))[0]
        assert not heldout_material(text), (i, heldout_material(text))


def test_training_draws_every_train_pool(fixed_text):
    """The train pools are all used: a template nothing draws would be held out by accident."""
    texts = []
    for i in range(300):
        label = f"test/train/{i}"
        rng = random.Random(label)
        texts.append(conversation(rng, label, 4096).render(rng.randint(20, 60))[0])
    text = "\n".join(texts)
    for template in TRAIN.instructions + TRAIN.needles + TRAIN.questions:
        assert fixed_text(template) in text, template
