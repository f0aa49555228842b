"""Retrieval tasks over varied layouts: the classic tasks' names, drawn from a split's pools.

`--split train`, `heldout`, `blind`, `blind2`, `blind3`, `blind4`, `blind5`, `blind6` or `blind7`
turns three classic tasks into their varied form:
- passkey:       one fact that needs no name (a pass key, a secret number, a code);
- niah_single:   one named fact (a key's magic number, a person's attribute);
- niah_multikey: a named fact and three distractor facts of the same kind with other names.
Everything else is drawn per sample from the split's pools (layouts.py): instruction or none,
filler source, needle phrasing, question wording, value format and depth. The answer is the
question's subject followed by the value ("The passkey is 4821."), which is also how training
answers, so the prefixed mode supplies "The passkey is" and the free mode nothing.
"""
import random

from .fillers import FILLERS
from .haystack import Haystack
from .layouts import (NAMED_KINDS, NO_INSTRUCTION_RATE, UNNAMED_KINDS, Pools, answer_prefix,
                      draw_fact, needle_sentence, question_text)
from .problem import Problem, Task, hide

# A whole token of letters and digits with at least one digit: a number or a code such as K7QX2M.
KEY = r"(?<![A-Za-z0-9])(?=[A-Za-z]*\d)[A-Za-z0-9]+(?![A-Za-z0-9])"
MAX_NEW_TOKENS = 24  # the value (at most 8 characters), its full stop, the end of turn and slack

LAYOUT_TASKS = {  # name -> (description, named, distractors)
    "passkey": ("one unnamed fact (pass key, secret number, code)", False, 0),
    "niah_single": ("one named fact (a key's magic number, a person's attribute)", True, 0),
    "niah_multikey": ("one named fact asked, three of the same kind with other names", True, 3),
}


def layout_problem(rng: random.Random, label: str, pools: Pools, named: bool,
                   distractors: int) -> Problem:
    kind = rng.choice(NAMED_KINDS if named else tuple(UNNAMED_KINDS))
    taken: set[str] = set()
    facts = [draw_fact(rng, pools, kind, taken) for _ in range(1 + distractors)]
    templates = [rng.randrange(len(pools.needles)) for _ in facts]
    needles = [needle_sentence(pools.needles[i], rng.choice(f.subjects), f.value)
               for i, f in zip(templates, facts)]
    depths = [rng.random() for _ in facts]
    filler = rng.choice(pools.fillers)
    instruction = -1 if rng.random() < NO_INSTRUCTION_RATE else rng.randrange(len(pools.instructions))
    question = rng.randrange(len(pools.questions))
    target = facts[0]
    asked = rng.choice(target.subjects)  # may name it otherwise than the needle does
    haystack = Haystack(filler, label)
    layout = {"split": pools.name, "kind": kind, "format": target.value_format,
              "filler": filler, "instruction": instruction, "needle": templates[0],
              "question": question, "depth": round(depths[0], 3)}
    return Problem(lambda n: hide(haystack.units(n), needles, depths),
                   pools.instructions[instruction] if instruction >= 0 else "",
                   question_text(pools.questions[question], asked), answer_prefix(asked),
                   [target.value], f" {target.value}.", FILLERS[filler].separator, layout)


def layout_task(name: str, pools: Pools) -> Task:
    if name not in LAYOUT_TASKS:
        raise ValueError(f"task {name!r} has no varied layouts; with --split {pools.name} use "
                         f"{', '.join(LAYOUT_TASKS)}")
    description, named, distractors = LAYOUT_TASKS[name]
    return Task(name, f"{description}, {pools.name} layouts", MAX_NEW_TOKENS, KEY,
                lambda rng, label: layout_problem(rng, label, pools, named, distractors))
