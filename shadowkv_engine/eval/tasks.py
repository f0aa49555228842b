"""Synthetic long-context tasks (RULER-style, no download) and the samples built from them.

A task draws everything random first (keys, values, depths) from `random.Random` seeded by
(split, task, length, seed); the haystack size is then searched so that the prompt plus the answer
budget fills the target length in tokens of the given tokenizer. Evaluation uses seeds from
EVAL_SEED_OFFSET up; the training script draws below it, so no eval sample is trained on.

Splits: `classic` is each task's one fixed layout (RULER's wording, below); `train`, `heldout`,
`blind`, `blind2`, `blind3`, `blind4`, `blind5`, `blind6` and `blind7` draw the layout of
passkey, niah_single and niah_multikey from the pools of layouts.py (layout_tasks.py), the
held-out ones (all but train) never seen in training.
Answer modes: `prefixed` ends the prompt with the start of the answer ("The pass key is"), so the
model only completes the value; `free` ends it at the assistant's turn, so the model writes the
whole answer, as it would for a user (scoring.py says how a free answer is read).
"""
import random
import re
from collections.abc import Callable

from . import templates as t
from . import words
from .haystack import Haystack, zipf_counts
from .layout_tasks import KEY, LAYOUT_TASKS, layout_task  # noqa: F401 (KEY re-exported)
from .layouts import SPLITS as LAYOUT_SPLITS
from .problem import Problem, Task, hide  # noqa: F401 (re-exported for the training scripts)
from .sample import Sample, TextTokenizer, largest_fitting, render_prompt

EVAL_SEED_OFFSET = 10**9

NUMBER = r"\d+"
VARIABLE = r"\b[A-Z]{5}\b"
LOWER_WORD = r"\b[a-z]+\b"
SPLITS = ("classic", *LAYOUT_SPLITS)
ANSWER_MODES = ("prefixed", "free")


def _in_haystack(kind: str, label: str, needles: list[str], depths: list[float],
                 exclude_keys: list[str] = ()) -> Callable[[int], list[str]]:
    haystack = Haystack(kind, label, exclude_keys)
    return lambda n: hide(haystack.units(n), needles, depths)


def _passkey(rng: random.Random, label: str) -> Problem:
    passkey = words.number(rng, 5)
    return Problem(_in_haystack("noise", label, [t.passkey_needle(passkey)], [rng.random()]),
                   t.PASSKEY_PREAMBLE, t.PASSKEY_QUESTION, t.PASSKEY_PREFIX, [passkey],
                   f" {passkey}.")


def _niah(haystack: str, distractors: int) -> Callable[[random.Random, str], Problem]:
    def make(rng: random.Random, label: str) -> Problem:
        keys = words.distinct_keys(rng, 1 + distractors)
        values = words.distinct_numbers(rng, 1 + distractors, 7)
        needles = [t.magic_needle(k, v) for k, v in zip(keys, values)]
        depths = [rng.random() for _ in needles]
        return Problem(_in_haystack(haystack, label, needles, depths, exclude_keys=keys),
                       t.MAGIC_PREAMBLE, t.magic_question(keys[0]), t.magic_prefix(keys[0]),
                       [values[0]], f" {values[0]}.")
    return make


def _niah_multivalue(rng: random.Random, label: str, count: int = 4) -> Problem:
    key = words.distinct_keys(rng, 1)[0]
    values = words.distinct_numbers(rng, count, 7)
    depths = sorted(rng.random() for _ in values)  # values listed in the order they appear
    needles = [t.magic_needle(key, v) for v in values]
    return Problem(_in_haystack("noise", label, needles, depths), t.MAGIC_PREAMBLE,
                   t.multivalue_question(key), t.multivalue_prefix(key), values,
                   t.list_answer(values))


def _niah_multiquery(rng: random.Random, label: str, count: int = 4) -> Problem:
    keys = words.distinct_keys(rng, count)
    values = words.distinct_numbers(rng, count, 7)
    needles = [t.magic_needle(k, v) for k, v in zip(keys, values)]
    prefix = t.magic_prefix(keys[0])
    return Problem(_in_haystack("noise", label, needles, [rng.random() for _ in needles]),
                   t.MAGIC_PREAMBLE, t.multiquery_question(keys), prefix, values,
                   t.multiquery_answer(keys, values)[len(prefix):])


def _vt(rng: random.Random, label: str, hops: int = 4) -> Problem:
    names = words.variable_names(rng, hops + 1)
    value = words.number(rng, 5)
    lines = [t.vt_first_line(names[0], value)]
    lines += [t.vt_hop_line(name, previous) for previous, name in zip(names, names[1:])]
    depths = sorted(rng.random() for _ in lines)  # a chain is read in order
    return Problem(_in_haystack("noise", label, lines, depths), t.VT_PREAMBLE, t.vt_question(value),
                   t.vt_prefix(len(names), value), names, t.list_answer(names, " "))


def _fwe(rng: random.Random, label: str, vocabulary_size: int = 100) -> Problem:
    vocabulary = words.coded_words(rng, vocabulary_size)

    def pieces(n: int) -> list[str]:
        text = [w for w, c in zip(vocabulary, zipf_counts(vocabulary_size, n)) for _ in range(c)]
        random.Random(f"{label}/{n}").shuffle(text)
        return text

    return Problem(pieces, t.FWE_PREAMBLE, t.FWE_QUESTION, t.FWE_PREFIX, vocabulary[:3],
                   t.list_answer(vocabulary[:3], " "))


TASKS = {task.name: task for task in (
    Task("passkey", "one pass key in the repeated-sentence noise haystack", 16, NUMBER, _passkey),
    Task("niah_single", "one magic-number needle in the noise haystack", 32, NUMBER,
         _niah("noise", 0)),
    Task("niah_single_prose", "one needle in varied synthetic prose", 32, NUMBER,
         _niah("prose", 0)),
    Task("niah_multikey", "one needle asked, three distractor needles, noise haystack", 32, NUMBER,
         _niah("noise", 3)),
    Task("niah_multikey_needle", "one needle asked; the haystack is all distractor needles", 32,
         NUMBER, _niah("needle", 0)),
    Task("niah_multivalue", "four values under one key; all must be returned", 64, NUMBER,
         _niah_multivalue),
    Task("niah_multiquery", "four keys asked at once; all values must be returned", 128, NUMBER,
         _niah_multiquery),
    Task("vt", "variable tracking: a chain of 4 hops; all 5 names must be returned", 48, VARIABLE,
         _vt),
    Task("fwe", "frequent-word extraction: the 3 most frequent coded words", 32, LOWER_WORD, _fwe),
)}


def task_spec(task: str, split: str = "classic") -> Task:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if split != "classic":
        return layout_task(task, LAYOUT_SPLITS[split])
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return TASKS[task]


def make_sample(task: str, tokenizer: TextTokenizer, length: int, seed: int, split: str = "classic",
                mode: str = "prefixed") -> Sample:
    """The sample of `task` for `seed`, as long as fits in `length` tokens with its answer budget.

    Both answer modes of a seed are the same problem (same draws); only the prompt's end and the
    answer budget differ.
    """
    if mode not in ANSWER_MODES:
        raise ValueError(f"unknown answer mode {mode!r}; known: {', '.join(ANSWER_MODES)}")
    spec = task_spec(task, split)
    # The classic label is unchanged, so classic samples stay those measured in docs/accuracy.md.
    label = f"{task}/{length}/{seed}" if split == "classic" else f"{split}/{task}/{length}/{seed}"
    problem = spec.make(random.Random(label), label)
    prefixed = mode == "prefixed"
    prefix = problem.answer_prefix if prefixed else ""
    max_new_tokens = spec.max_new_tokens if prefixed else spec.max_new_tokens + len(
        tokenizer.encode(problem.answer_prefix, add_special_tokens=False))
    rendered: dict[int, tuple[str, list[int]]] = {}

    def render(n: int) -> tuple[str, list[int]]:
        if n not in rendered:
            user = t.user_message(problem.preamble, problem.context(n), problem.question)
            rendered[n] = render_prompt(tokenizer, user, prefix)
        return rendered[n]

    # Pieces are joined by a space or a newline, which tokenizers do not merge across, so the
    # prompt's length is close to the fixed text's plus each piece's own count: a guess that is
    # usually exact.
    piece_tokens: dict[str, int] = {}

    def pieces_tokens(n: int) -> int:
        for piece in (pieces := problem.pieces(n)):
            if piece not in piece_tokens:
                piece_tokens[piece] = len(tokenizer.encode(problem.separator + piece,
                                                           add_special_tokens=False))
        return sum(piece_tokens[p] for p in pieces)

    fixed = len(render(0)[1]) - pieces_tokens(0)  # needles are pieces even at n = 0

    def estimate(n: int) -> int:
        return fixed + pieces_tokens(n)

    budget = length - max_new_tokens
    n = largest_fitting(lambda n: len(render(n)[1]), budget, largest_fitting(estimate, budget))
    prompt, ids = render(n)
    return Sample(task, length, seed, prompt, ids, problem.answers, spec.answer_pattern,
                  max_new_tokens, problem.answer_text if prefixed else problem.answer_prefix
                  + problem.answer_text, split, mode, problem.answer_prefix, problem.layout)


def eval_samples(task: str, tokenizer: TextTokenizer, length: int, count: int,
                 split: str = "classic", mode: str = "prefixed") -> list[Sample]:
    return [make_sample(task, tokenizer, length, EVAL_SEED_OFFSET + i, split, mode)
            for i in range(count)]


def parse_length(text: str) -> int:
    """'4k' -> 4096, '16K' -> 16384, '1500' -> 1500."""
    match = re.fullmatch(r"\s*(\d+)\s*([kK]?)\s*", text)
    if not match:
        raise ValueError(f"bad length {text!r}: use a token count such as 4096 or 4k")
    return int(match[1]) * (1024 if match[2] else 1)
