"""Training sequences: chats over one long context, many questions each, loss on the answers.

Three kinds of sequence, drawn at random (MIX):
- eval-shaped: one classic task of shadowkv_engine.eval.tasks exactly as the evaluation renders
  it (one question), with training seeds, so every classic eval prompt shape is seen in training;
- multi-fact: a classic haystack holding several facts (a pass key, magic-number needles, a
  multi-value key, a variable chain) followed by a question about each, one chat turn per
  question. Many questions per sequence give the dense answer signal that made retrieval
  learnable in minutes (../shared/reference/training_probe.md, run 4);
- layout: facts of mixed kinds in varied layouts from the train pools (layout_documents.py), so
  the model generalises over what a user varies; the held-out pools are never drawn.
Each sequence is rendered through the chat template, tokenized once, and cut into per-token masks:
`loss` marks the assistant's answers (and their end-of-turn token), `kind` marks the answer items
themselves by task, for accuracy logging and the curriculum.
"""
import random
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from shadowkv_engine.eval import templates as t
from shadowkv_engine.eval import words
from shadowkv_engine.eval.haystack import Haystack
from shadowkv_engine.eval.tasks import EVAL_SEED_OFFSET, NUMBER, TASKS, VARIABLE, hide

from .conversation import KINDS, RETRIEVAL_KINDS, Conversation, Turn  # noqa: F401 (re-exported)
from .layout_documents import layout_conversation
from .tokenizer import END_OF_TEXT_ID

# Shares of the training stream. The classic kinds keep the classic layouts (the README's example)
# exact; most sequences vary the layout.
MIX = {"eval_shaped": 0.1, "multi_fact": 0.15, "layout": 0.75}

EVAL_SHAPED_WEIGHTS = {"passkey": 3, "niah_single": 3, "niah_single_prose": 2, "niah_multikey": 2,
                       "niah_multikey_needle": 2, "niah_multivalue": 1, "niah_multiquery": 1,
                       "vt": 1, "fwe": 1}
TASK_KIND = {"passkey": "passkey", "niah_multivalue": "multivalue", "niah_multiquery": "multiquery",
             "vt": "vt", "fwe": "fwe"}  # other tasks: "niah"


def eval_shaped(rng: random.Random, label: str) -> Conversation:
    names, weights = zip(*EVAL_SHAPED_WEIGHTS.items())
    name = rng.choices(names, weights)[0]
    task = TASKS[name]
    problem = task.make(rng, label)
    turn = Turn(problem.question, problem.answer_prefix, problem.answer_text,
                TASK_KIND.get(name, "niah"), task.answer_pattern)
    return Conversation(problem.context, problem.preamble, [turn])


def multi_fact(rng: random.Random, label: str, length: int) -> Conversation:
    """Several facts hidden in one haystack, then one question per fact (plus joint ones)."""
    num_keys = rng.randint(1, max(1, min(16, length // 256)))
    keys = words.distinct_keys(rng, num_keys + 1)
    values = words.distinct_numbers(rng, num_keys + 4, 7)
    needles, turns = [], []
    for key, value in zip(keys[:num_keys], values):
        needles.append([t.magic_needle(key, value)])
        turns.append(Turn(t.magic_question(key), t.magic_prefix(key), f" {value}.", "niah", NUMBER))
    if num_keys >= 2 and rng.random() < 0.3:
        asked = rng.sample(range(num_keys), rng.randint(2, min(4, num_keys)))
        ks, vs = [keys[i] for i in asked], [values[i] for i in asked]
        prefix = t.magic_prefix(ks[0])
        turns.append(Turn(t.multiquery_question(ks), prefix, t.multiquery_answer(ks, vs)[len(prefix):],
                          "multiquery", NUMBER))
    if rng.random() < 0.4:
        passkey = words.number(rng, 5)
        needles.append([t.passkey_needle(passkey)])
        turns.append(Turn(t.PASSKEY_QUESTION, t.PASSKEY_PREFIX, f" {passkey}.", "passkey", NUMBER))
    if rng.random() < 0.25:  # one key, several values, listed in the order they appear
        key, many = keys[num_keys], values[num_keys:num_keys + rng.randint(2, 4)]
        needles.append([t.magic_needle(key, v) for v in many])
        turns.append(Turn(t.multivalue_question(key), t.multivalue_prefix(key), t.list_answer(many),
                          "multivalue", NUMBER))
    if rng.random() < 0.25:
        names = words.variable_names(rng, rng.randint(2, 5))
        value = words.number(rng, 5)
        needles.append([t.vt_first_line(names[0], value)]
                       + [t.vt_hop_line(b, a) for a, b in zip(names, names[1:])])
        turns.append(Turn(t.vt_question(value), t.vt_prefix(len(names), value),
                          t.list_answer(names, " "), "vt", VARIABLE))
    # Each group (a chain, a multi-value key) keeps its internal order at increasing depths.
    flat, depths = [], []
    for group in needles:
        group_depths = sorted(rng.random() for _ in group)
        flat += group
        depths += group_depths
    kind = rng.choices(["noise", "prose", "needle"], [0.35, 0.45, 0.2])[0]
    haystack = Haystack(kind, label, exclude_keys=keys)
    rng.shuffle(turns)
    preamble = {"passkey": t.PASSKEY_PREAMBLE, "vt": t.VT_PREAMBLE}.get(turns[0].kind, t.MAGIC_PREAMBLE)
    return Conversation(lambda n: " ".join(hide(haystack.units(n), flat, depths)), preamble, turns)


@dataclass
class Tokenized:
    ids: np.ndarray  # int32 [length], padded with END_OF_TEXT
    loss: np.ndarray  # bool [length]: token is part of an answer
    kind: np.ndarray  # uint8 [length]: answer item kind, 0 elsewhere


def tokenize(conversation: Conversation, tokenizer: Tokenizer, length: int) -> Tokenized | None:
    """Fill `length` tokens with the conversation, growing its haystack; None if it cannot fit."""
    def encode(n: int):
        text, spans = conversation.render(n)
        return tokenizer.encode(text, add_special_tokens=False), spans

    base, _ = encode(0)
    if len(base.ids) > length:
        return None
    probe = 32
    per_unit = max((len(encode(probe)[0].ids) - len(base.ids)) / probe, 0.5)
    n = int((length - len(base.ids)) / per_unit)
    for _ in range(8):
        encoding, spans = encode(n)
        over = len(encoding.ids) - length
        if over <= 0:
            return _masks(encoding, spans, length)
        n = max(0, n - int(over / per_unit) - 1)
    return None


def _masks(encoding, spans, length: int) -> Tokenized:
    ids = np.full(length, END_OF_TEXT_ID, dtype=np.int32)
    ids[:len(encoding.ids)] = encoding.ids
    starts = np.array([s for s, _ in encoding.offsets] + [-1] * (length - len(encoding.ids)))
    loss = np.zeros(length, dtype=bool)
    kind = np.zeros(length, dtype=np.uint8)
    for start, end, code in spans:
        inside = (starts >= start) & (starts < end)
        if code == 0:
            loss |= inside
        else:
            kind[inside] = code
    return Tokenized(ids, loss, kind)


def training_sequence(tokenizer: Tokenizer, length: int, seed: int, index: int) -> Tokenized:
    """Sequence `index` of the training stream `seed` (seeds below the eval seed space)."""
    if not 0 <= seed < EVAL_SEED_OFFSET:
        raise ValueError(f"training seeds must be in [0, {EVAL_SEED_OFFSET}): eval uses the rest")
    for attempt in range(100):
        label = f"train/{seed}/{length}/{index}/{attempt}"
        rng = random.Random(label)
        sequence = tokenize(conversation(rng, label, length), tokenizer, length)
        if sequence is not None:
            return sequence
    raise ValueError(f"no training sequence fits in {length} tokens")


def conversation(rng: random.Random, label: str, length: int) -> Conversation:
    """One conversation of the MIX, drawn by `rng`."""
    draw = rng.random()
    if draw < MIX["eval_shaped"]:
        return eval_shaped(rng, label)
    if draw < MIX["eval_shaped"] + MIX["multi_fact"]:
        return multi_fact(rng, label, length)
    return layout_conversation(rng, label, length)


def tokenizer_corpus(seed: int, count: int) -> list[str]:
    """Rendered conversations of modest size, to train the BPE on the text the model will see."""
    texts = []
    for i in range(count):
        label = f"corpus/{seed}/{i}"
        rng = random.Random(label)
        make = (eval_shaped, lambda rng, label: multi_fact(rng, label, 8192),
                lambda rng, label: layout_conversation(rng, label, 8192))[i % 3]
        texts.append(make(rng, label).render(rng.randint(8, 48))[0])
    return texts
