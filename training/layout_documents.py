"""Training chats over varied layouts, drawn from the TRAIN pools of shadowkv_engine/eval/layouts.py.

One filler source, an instruction or none, several facts of mixed kinds (at most one pass key,
secret number and code; any number of magic numbers and people's attributes) at any depth, then a
question about each fact, one chat turn each, worded from the pool and naming the fact by any of
its subjects. Each answer is the question's subject and the value ("The passkey is 4821."), the
loss on all of it: the model learns to write the whole answer, which the free answer mode
measures, and the prefixed mode only supplies its first words.

Only TRAIN is imported here, so the held-out pools never reach training (a test checks the text).
"""
import random

from shadowkv_engine.eval.fillers import FILLERS
from shadowkv_engine.eval.haystack import Haystack
from shadowkv_engine.eval.layout_tasks import KEY
from shadowkv_engine.eval.layouts import (NAMED_KINDS, NO_INSTRUCTION_RATE, TRAIN, UNNAMED_KINDS,
                                          answer_prefix, draw_fact, needle_sentence, question_text)
from shadowkv_engine.eval.problem import hide

from .conversation import Conversation, Turn

MAX_FACTS = 12
TOKENS_PER_FACT = 384  # at most one fact per this many tokens: short contexts hold few
UNNAMED_RATE = 0.4  # chance that a fact is one of the unnamed kinds, while one is left


def layout_conversation(rng: random.Random, label: str, length: int) -> Conversation:
    count = rng.randint(1, max(1, min(MAX_FACTS, length // TOKENS_PER_FACT)))
    unnamed = list(UNNAMED_KINDS)
    rng.shuffle(unnamed)
    kinds = [unnamed.pop() if unnamed and rng.random() < UNNAMED_RATE else rng.choice(NAMED_KINDS)
             for _ in range(count)]
    taken: set[str] = set()
    facts = [draw_fact(rng, TRAIN, kind, taken) for kind in kinds]
    needles = [needle_sentence(rng.choice(TRAIN.needles), rng.choice(f.subjects), f.value)
               for f in facts]
    depths = [rng.random() for _ in facts]
    filler = rng.choice(TRAIN.fillers)
    instruction = "" if rng.random() < NO_INSTRUCTION_RATE else rng.choice(TRAIN.instructions)
    turns = []
    for fact in facts:
        asked = rng.choice(fact.subjects)
        turns.append(Turn(question_text(rng.choice(TRAIN.questions), asked), answer_prefix(asked),
                          f" {fact.value}.", "varied", KEY))
    rng.shuffle(turns)
    haystack = Haystack(filler, label)
    separator = FILLERS[filler].separator
    return Conversation(lambda n: separator.join(hide(haystack.units(n), needles, depths)),
                        instruction, turns)
