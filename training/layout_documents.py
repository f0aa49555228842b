"""Training chats over varied layouts: the TRAIN pools of shadowkv_engine/eval/layouts.py, and
procedural layouts (procedural_layouts.py) made up per conversation.

One filler (a train-pool source, a procedural one, or real text: real_text.py), an instruction
or none, several facts of mixed kinds (at most one pass key, secret number and code; any number
of magic numbers and people's attributes) at any depth, then a question about each fact, one
chat turn each, naming the fact by any of its subjects. Each piece (filler, instruction, every
needle and question) comes from the train pool or is made up (PROCEDURAL_RATE): the pools keep
the train split's layouts exact, the made-up forms teach the model to retrieve whatever the
wording. In a made-up filler a needle may also take the filler's own shape (CAMOUFLAGED_RATE,
camouflage.py), so that a needle need not look unlike its filler. Each answer is the question's
subject and the value ("The passkey is 4821."), the loss on all of it: the model learns to write
the whole answer, which the free answer mode measures, and the prefixed mode only supplies its
first words.

Only TRAIN is imported here, so the held-out pools never reach training (a test checks the text;
real_text.py drops the passages that hold held-out material).
"""
import random

from shadowkv_engine.eval.fillers import FILLERS
from shadowkv_engine.eval.haystack import Haystack
from shadowkv_engine.eval.layout_tasks import KEY
from shadowkv_engine.eval.layouts import (NAMED_KINDS, NO_INSTRUCTION_RATE, TRAIN, UNNAMED_KINDS,
                                          answer_prefix, draw_fact, needle_sentence, question_text)
from shadowkv_engine.eval.problem import hide

from . import procedural_layouts as procedural
from .camouflage import camouflaged, filler_lines
from .procedural_fillers import ProceduralFiller
from .real_text import RealTextFiller
from .conversation import Conversation, Turn

MAX_FACTS = 12
TOKENS_PER_FACT = 384  # at most one fact per this many tokens: short contexts hold few
UNNAMED_RATE = 0.4  # chance that a fact is one of the unnamed kinds, while one is left
PROCEDURAL_RATE = 0.75  # chance that a piece of the layout is made up rather than drawn from TRAIN
REAL_TEXT_RATE = 0.5  # chance that a made-up filler is real text rather than a procedural one
# Chance that a needle in a made-up filler is one of the filler's lines with the subject and the
# value put in it (camouflage.py); runs 1-12 had none. The line comes from the filler's first
# CAMOUFLAGE_UNITS units, so its twin, with the words the needle replaced, is in the context too.
CAMOUFLAGED_RATE = 0.2
CAMOUFLAGE_UNITS = 8


def layout_conversation(rng: random.Random, label: str, length: int) -> Conversation:
    def made_up() -> bool:
        return rng.random() < PROCEDURAL_RATE

    count = rng.randint(1, max(1, min(MAX_FACTS, length // TOKENS_PER_FACT)))
    unnamed = list(UNNAMED_KINDS)
    rng.shuffle(unnamed)
    kinds = [unnamed.pop() if unnamed and rng.random() < UNNAMED_RATE else rng.choice(NAMED_KINDS)
             for _ in range(count)]
    taken: set[str] = set()
    pools = procedural.TRAINING_POOLS if made_up() else TRAIN
    facts = [draw_fact(rng, pools, kind, taken) for kind in kinds]
    lines = []  # a made-up filler's first lines, for camouflaged needles
    if made_up():
        haystack = RealTextFiller(label) if rng.random() < REAL_TEXT_RATE else ProceduralFiller(label)
        separator = haystack.separator
        lines = filler_lines(haystack.units(CAMOUFLAGE_UNITS))
    else:
        filler = rng.choice(TRAIN.fillers)
        haystack, separator = Haystack(filler, label), FILLERS[filler].separator
    needles = []
    for fact in facts:
        template = procedural.needle_template(rng) if made_up() else rng.choice(TRAIN.needles)
        if lines and rng.random() < CAMOUFLAGED_RATE:
            template = camouflaged(rng.choice(lines), rng) or template
        needles.append(needle_sentence(template, rng.choice(fact.subjects), fact.value))
    depths = [rng.random() for _ in facts]
    instruction = ("" if rng.random() < NO_INSTRUCTION_RATE
                   else procedural.instruction(rng) if made_up() else rng.choice(TRAIN.instructions))
    turns = []
    for fact in facts:
        asked = rng.choice(fact.subjects)
        template = procedural.question_template(rng) if made_up() else rng.choice(TRAIN.questions)
        turns.append(Turn(question_text(template, asked), answer_prefix(asked),
                          f" {fact.value}.", "varied", KEY))
    rng.shuffle(turns)
    return Conversation(lambda n: separator.join(hide(haystack.units(n), needles, depths)),
                        instruction, turns)
