import pytest

from shadowkv_engine.eval.scoring import is_correct
from shadowkv_engine.eval.tasks import EVAL_SEED_OFFSET, TASKS, eval_samples, make_sample, parse_length

LENGTHS = (1024, 3000)


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("length", LENGTHS)
def test_sample_fills_its_token_length(task, length, chat_tokenizer):
    sample = make_sample(task, chat_tokenizer, length, EVAL_SEED_OFFSET)
    budget = length - sample.max_new_tokens
    assert sample.num_prompt_tokens <= budget
    # One more haystack sentence (or coded word) would not have fit: the prompt is nearly full.
    assert sample.num_prompt_tokens > budget - 40
    assert sample.prompt_token_ids == chat_tokenizer.encode(sample.prompt, add_special_tokens=False)


@pytest.mark.parametrize("task", list(TASKS))
def test_perfect_answer_scores_and_answers_are_in_the_context(task, chat_tokenizer):
    sample = make_sample(task, chat_tokenizer, 2048, EVAL_SEED_OFFSET + 7)
    assert is_correct(sample.answer_text, sample)
    context = sample.prompt.split("<|eot_id|>")[0]
    assert all(answer in context for answer in sample.answers)


def test_chat_prompt_has_one_bos_and_ends_with_the_needle_prefix(chat_tokenizer):
    sample = make_sample("niah_single", chat_tokenizer, 1024, EVAL_SEED_OFFSET)
    bos = chat_tokenizer.bos_token_id
    assert sample.prompt_token_ids[0] == bos and sample.prompt_token_ids.count(bos) == 1
    assert sample.prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n"
                                  + _needle_prefix(sample.prompt))
    # The answer is an induction copy: the prompt's last words occur right before the value.
    assert f"{_needle_prefix(sample.prompt)} {sample.answers[0]}." in sample.prompt


def _needle_prefix(prompt: str) -> str:
    return prompt.rsplit("\n\n", 1)[1]


def test_passkey_prompt_matches_the_classic_test(byte_tokenizer):
    sample = make_sample("passkey", byte_tokenizer, 2000, EVAL_SEED_OFFSET)
    key = sample.answers[0]
    assert f"The pass key is {key}. Remember it. {key} is the pass key." in sample.prompt
    assert sample.prompt.endswith("What is the pass key?\n\nThe pass key is")
    assert "The grass is green." in sample.prompt
    assert len(key) == 5


def test_without_template_prompt_is_plain_text_with_bos(byte_tokenizer):
    sample = make_sample("vt", byte_tokenizer, 1500, EVAL_SEED_OFFSET)
    assert sample.prompt_token_ids[0] == 256
    assert sample.prompt_token_ids[1:] == list(sample.prompt.encode())


def test_samples_are_deterministic_and_seeds_differ(byte_tokenizer):
    a = make_sample("niah_multikey_needle", byte_tokenizer, 2048, EVAL_SEED_OFFSET + 3)
    b = make_sample("niah_multikey_needle", byte_tokenizer, 2048, EVAL_SEED_OFFSET + 3)
    c = make_sample("niah_multikey_needle", byte_tokenizer, 2048, EVAL_SEED_OFFSET + 4)
    assert a == b
    assert a.answers != c.answers


def test_eval_samples_use_the_eval_seed_space(byte_tokenizer):
    samples = eval_samples("passkey", byte_tokenizer, 1024, 3)
    assert [s.seed for s in samples] == [EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + 1, EVAL_SEED_OFFSET + 2]


def test_needle_haystack_never_repeats_the_asked_key(byte_tokenizer):
    sample = make_sample("niah_multikey_needle", byte_tokenizer, 8192, EVAL_SEED_OFFSET)
    key = sample.prompt.rsplit("for ", 1)[1].split(" ")[0]
    assert sample.prompt.count(f"numbers for {key} is:") == 2  # the needle and the answer prefix
    assert sample.prompt.count("One of the special magic numbers for") > 100


def test_multivalue_answers_are_in_context_order(byte_tokenizer):
    sample = make_sample("niah_multivalue", byte_tokenizer, 4096, EVAL_SEED_OFFSET)
    positions = [sample.prompt.index(v) for v in sample.answers]
    assert positions == sorted(positions) and len(set(sample.answers)) == 4


def test_variable_chain_is_in_order_and_complete(byte_tokenizer):
    sample = make_sample("vt", byte_tokenizer, 4096, EVAL_SEED_OFFSET)
    names = sample.answers
    assert len(names) == 5
    for previous, name in zip(names, names[1:]):
        assert sample.prompt.index(f"VAR {name} = VAR {previous}.") > sample.prompt.index(f"VAR {previous} =")


def test_frequent_words_are_the_most_frequent(byte_tokenizer):
    sample = make_sample("fwe", byte_tokenizer, 4096, EVAL_SEED_OFFSET)
    context = sample.prompt.split("\n\n")[1].split()
    counts = sorted(((context.count(w), w) for w in set(context)), reverse=True)
    assert [w for _, w in counts[:3]] == sample.answers
    assert counts[2][0] > counts[3][0]


def test_too_short_length_is_a_clear_error(byte_tokenizer):
    with pytest.raises(ValueError, match="over the budget"):
        make_sample("niah_multiquery", byte_tokenizer, 200, EVAL_SEED_OFFSET)


def test_unknown_task_is_a_clear_error(byte_tokenizer):
    with pytest.raises(ValueError, match="unknown task"):
        make_sample("qa_1", byte_tokenizer, 1024, 0)


@pytest.mark.parametrize("text, tokens", [("4k", 4096), ("16K", 16384), ("1500", 1500)])
def test_parse_length(text, tokens):
    assert parse_length(text) == tokens


def test_parse_length_rejects_nonsense():
    with pytest.raises(ValueError):
        parse_length("4m")
