"""Procedural layouts: surface forms made up per conversation, so training reads thousands of them.

The train pools of shadowkv_engine/eval/layouts.py hold a few dozen fixed templates and seven
filler sources. A model trained on those alone learns *them*: the first retrained model scored
60-85% on train layouts and 24-52% on held-out ones at 8K (docs/accuracy.md). What a user varies
is open-ended, so training here composes each piece from parts instead:
- needle sentences: an optional lead-in, one of many ways to state "subject is value", an
  optional tail;
- questions: an optional lead-in, a request for the subject, an optional tail;
- instructions: an opening sentence and a task sentence, each optional;
- fillers: a format and its words drawn per conversation (training/procedural_fillers.py);
- names and magic-number keys: besides the train words, made-up words built from syllables, and
  names spelled letter by letter;
- people's attributes: a train noun or a letter-spelled word, and a suffix ("cabin number",
  "pechim tag");
- questions may say where to look ("... in the passage above?").

Nothing here may produce held-out material (of the heldout, blind and blind2 to blind7
splits): none of the held-out templates' fixed text, words or attributes
(tests/eval/test_layouts.py checks the training stream). Made-up words and attributes that
happen to be held-out ones are skipped, which is the only use of the held-out pools here. No
template holds a digit, so a needle's value stays the only key-shaped token of a context.
"""
import random
import re
from collections.abc import Callable
from dataclasses import replace

from shadowkv_engine.eval import words
from shadowkv_engine.eval.held_out_material import HELD_OUT_SPLITS
from shadowkv_engine.eval.layouts import TRAIN, Pools

from .needle_grammar import composed_statement, distant, interrupted, labelled, wrapped

# -- made-up words ------------------------------------------------------------------------------
_SYLLABLES = ("ka", "lo", "mi", "ren", "tas", "vel", "dor", "an", "is", "ur", "bel", "cor", "fen",
              "gal", "hil", "jor", "lin", "mar", "nor", "pel", "quin", "ros", "sel", "tor", "val",
              "wen", "yor", "zan", "bri", "dru", "ek", "om", "sta", "tri", "ul", "vo", "xi", "ze")
_HELDOUT_WORDS = {w.lower() for w in words.HELD_OUT_WORDS}  # no made-up word may be one


def _distinct(count: int, seed: str, draw: Callable[[random.Random], object]) -> tuple:
    """The first `count` distinct draws that are not None, from a generator seeded by `seed`."""
    rng, found = random.Random(seed), {}
    while len(found) < count:
        item = draw(rng)
        if item is not None:
            found[item] = None
    return tuple(found)


def made_up_words(count: int, seed: str) -> tuple[str, ...]:
    """`count` distinct lowercase words of 2-3 syllables, none of them a held-out word."""
    def draw(rng: random.Random) -> str | None:
        word = "".join(rng.choices(_SYLLABLES, k=rng.randint(2, 3)))
        return None if word in _HELDOUT_WORDS else word
    return _distinct(count, seed, draw)


# Names spelled letter by letter, like names of many languages (the syllable words above all
# share one small set of BPE pieces; a held-out name such as "Dmitri" or "Keiko" is spelled
# unlike any of them, and the model garbled such names when it copied them into an answer).
_ONSETS = ("B", "Br", "C", "Ch", "D", "Dr", "F", "G", "Gr", "H", "J", "K", "Kh", "L", "M", "N",
           "P", "Pr", "R", "S", "Sh", "St", "T", "Th", "V", "W", "Y", "Z", "A", "E", "I", "O", "U")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ei", "ia", "ou", "y", "ee", "oa")
_MIDDLES = ("b", "d", "g", "k", "l", "m", "n", "r", "s", "t", "v", "z", "ll", "nn", "rr", "nd",
            "rt", "sk", "st", "mb", "lv", "rg", "sh", "th", "nk", "ld", "ng", "tt", "zz", "ch")
_CODAS = ("", "", "", "n", "s", "r", "l", "m", "k", "th", "rd", "x", "sh", "h", "t", "d")


def made_up_names(count: int, seed: str) -> tuple[str, ...]:
    """`count` distinct capitalised names of 2-3 syllables spelled from letters, none held out."""
    def draw(rng: random.Random) -> str | None:
        name = rng.choice(_ONSETS) + rng.choice(_VOWELS)
        for _ in range(rng.randint(1, 2)):
            name += rng.choice(_MIDDLES) + rng.choice(_VOWELS)
        name += rng.choice(_CODAS)
        lower = name.lower()
        readable = not re.search(r"[aeiouy]{3}", lower) and lower[1] not in ("y", lower[0])
        return name if readable and len(name) <= 10 and lower not in _HELDOUT_WORDS else None
    return _distinct(count, seed, draw)


MADE_UP = made_up_words(600, "procedural/words")
MADE_UP_NAMES = (tuple(w.capitalize() for w in made_up_words(300, "procedural/names"))
                 + made_up_names(500, "procedural/letter-names"))
# Lowercase letter-spelled words for magic-number keys and attributes: an answer restates the
# question's subject before the value, and a held-out key ("jaguar-spike") or attribute
# ("parking spot") came back garbled into train words ("pocket re spot"); keys spelled unlike
# any train word make the model copy what it reads rather than recall what it knows.
LETTER_WORDS = tuple(n.lower() for n in made_up_names(800, "procedural/letter-words"))
EXTRA_ATTRIBUTES = (("seat number", "digits"), ("account number", "digits"),
                    ("order number", "digits"), ("gate code", "alnum"), ("voucher code", "alnum"),
                    ("phone extension", "digits"), ("house number", "digits"),
                    ("serial number", "alnum"), ("student number", "digits"),
                    ("tracking code", "alnum"), ("bus number", "digits"), ("door code", "digits"))
# What a made-up attribute is called after its noun ("cabin number", "bicycle tag") and the
# format of its value.
_ATTRIBUTE_SUFFIXES = (("number", "digits"), ("code", "alnum"), ("ID", "alnum"), ("PIN", "digits"),
                       ("slot", "digits"), ("tag", "alnum"), ("key", "alnum"), ("spot", "digits"),
                       ("reference", "alnum"), ("extension", "digits"), ("count", "digits"))
_HELDOUT_ATTRIBUTES = {attribute for pools in HELD_OUT_SPLITS
                       for attribute, _ in pools.attributes}


def made_up_attributes(count: int, seed: str) -> tuple[tuple[str, str], ...]:
    """`count` distinct (attribute, value format) pairs: a train noun or a letter-spelled word,
    and a suffix."""
    def draw(rng: random.Random) -> tuple[str, str] | None:
        suffix, value_format = rng.choice(_ATTRIBUTE_SUFFIXES)
        noun = rng.choice(words.NOUNS) if rng.random() < 0.5 else rng.choice(LETTER_WORDS)
        attribute = f"{noun} {suffix}"  # the suffix fixes the format: one pair per attribute
        return None if attribute in _HELDOUT_ATTRIBUTES else (attribute, value_format)
    return _distinct(count, seed, draw)

# The train pools with more names, keys and attributes: draw_fact() takes them as they are.
TRAINING_POOLS: Pools = replace(
    TRAIN, name="train+procedural",
    key_adjectives=TRAIN.key_adjectives + MADE_UP[:300] + LETTER_WORDS[:400],
    key_nouns=TRAIN.key_nouns + MADE_UP[300:] + LETTER_WORDS[400:],
    names=TRAIN.names + MADE_UP_NAMES,
    attributes=TRAIN.attributes + EXTRA_ATTRIBUTES + made_up_attributes(300, "procedural/attributes"))

# -- needles ------------------------------------------------------------------------------------
_NEEDLE_LEADS = ("Note", "Please note", "Remember", "Reminder", "Attention", "Heads up", "FYI",
                 "Listen", "One more thing", "Also", "Update", "Fact", "Hint", "Secret", "Memo",
                 "Do not forget", "Write this down", "PS", "Tip", "Info", "Careful", "Good to know")
_LEAD_MARKS = (": ", " - ", ", ", "! ", " -- ")
_STATEMENTS = (
    "{subject} is {value}", "{subject} is set to {value}", "{subject} equals {value}",
    "{subject}: {value}", "{subject} was {value}", "{value} is {subject}", "{subject} reads {value}",
    "the value of {subject} is {value}", "{subject} has been changed to {value}",
    "I set {subject} to {value}", "use {value} as {subject}", "{subject} -> {value}",
    "{subject} will be {value}", "{subject} happens to be {value}", "{subject} turned out to be {value}",
    "the answer for {subject} is {value}", "{subject} is exactly {value}", "{subject} is now {value}",
    "we agreed that {subject} is {value}", "they told me {subject} is {value}",
    "{value} - that is {subject}", "{subject}, written down here, is {value}",
    "the one to remember: {subject} is {value}", "{subject} is {value} (do not lose it)",
    # symbols between subject and value, as in code and configs
    "{subject} = {value}", "{subject} := {value}", "{subject} => {value}", "{subject} == {value}",
    "{subject} <- {value}", "{subject} is: {value}",
)
# Clauses a needle can state after "that" ("Note that 4821 was the pass key."). The value comes
# first in half of them: the first models found a value stated before its subject inside a
# sentence on 4 of 33 held-out needles of that shape, against 9 of 10 for the others.
_CLAUSES = (
    "{value} is {subject}", "{value} was {subject}", "{value} stands for {subject}",
    "{value} will be {subject}", "{value} serves as {subject}", "{value} counts as {subject}",
    "{value} has become {subject}", "{value} is what {subject} is",
    "{subject} is {value}", "{subject} was {value}", "{subject} has changed to {value}",
    "{subject} stays {value}", "{subject} is still {value}", "{subject} became {value}",
)
_CLAUSE_LEADS = ("Note that", "Remember that", "Don't forget that", "Be aware that",
                 "Just so you know,", "It turns out that", "I should mention that", "Notice that",
                 "Recall that", "Someone said that", "It is true that", "Please remember that",
                 "You should know that", "Write down that", "We learned that", "Mark that",
                 "I was told that", "It seems that", "Trust me that", "Never forget that")
# How many made-up needles are composed by needle_grammar.py rather than drawn whole. Runs 1-7
# of the shipped model had none (0.0); the grammar came after them (see its caveat).
COMPOSED_RATE = 0.4
# How many of the composed needles (not led by a clause) get an aside or a circumstance
# (needle_grammar.interrupted); runs 1-8 had none.
INTERRUPTED_RATE = 0.4
# How many made-up needles set their value off by punctuation (needle_grammar.wrapped); runs
# 1-10 had none.
WRAPPED_RATE = 0.3
# How many made-up needles put a long aside between subject and value (needle_grammar.distant),
# and how many put a label noun right before the value (needle_grammar.labelled); runs 1-11 had
# none, run 12 0.15 each. Run 12 was no better on blind6 and picked wrong values more often on
# the held-out split (docs/accuracy.md, "Run 12"), so the shapes stay, at a third of the rate.
DISTANT_RATE = 0.05
LABELLED_RATE = 0.05
_NEEDLE_TAILS = ("Remember it.", "Don't lose it.", "It will be asked about.", "Repeat: {value}.",
                 "Once more, {value}.", "That is all.", "Do not share it.", "Keep it safe.",
                 "Again: {subject} is {value}.")


def _sentence_case(template: str) -> str:
    """Capitalise a template's first letter, or its first slot ({subject} -> {Subject})."""
    if template.startswith("{subject}"):
        return "{Subject}" + template[len("{subject}"):]
    return template[:1].upper() + template[1:]


def needle_template(rng: random.Random) -> str:
    """A needle sentence template with the slots of layouts.needle_sentence()."""
    statement = rng.choice(_STATEMENTS)
    draw = rng.random()
    if draw < COMPOSED_RATE:
        statement = composed_statement(rng)
        if rng.random() < 0.3:
            statement = f"{rng.choice(_CLAUSE_LEADS)} {statement}"
        elif rng.random() < INTERRUPTED_RATE:
            statement = interrupted(statement, rng)
    elif draw < COMPOSED_RATE + (1 - COMPOSED_RATE) * 0.25:  # a quarter of the rest: a clause
        statement = f"{rng.choice(_CLAUSE_LEADS)} {rng.choice(_CLAUSES)}"
    elif rng.random() < 0.5:
        mark = rng.choice(_LEAD_MARKS)
        lead = rng.choice(_NEEDLE_LEADS)
        statement = lead + mark + (_sentence_case(statement) if mark in (": ", "! ") else statement)
    if rng.random() < DISTANT_RATE:
        statement = distant(statement, rng)
    if rng.random() < LABELLED_RATE:
        statement = labelled(statement, rng)
    if rng.random() < WRAPPED_RATE:
        statement = wrapped(statement, rng)
    text = _sentence_case(statement) + rng.choice((".", ".", "!", ";"))
    if rng.random() < 0.3:
        text += " " + rng.choice(_NEEDLE_TAILS)
    return text


# -- questions ----------------------------------------------------------------------------------
_QUESTION_LEADS = ("Quick question: ", "Now, ", "OK, ", "Based on the document, ", "Hey, ", "So, ",
                   "Question: ", "Last thing: ", "Please answer: ", "From the context: ",
                   "One question. ", "Alright. ")
_REQUESTS = (
    "what is {subject}?", "what's {subject}?", "tell me {subject}.", "give me {subject}.",
    "{subject}?", "please provide {subject}.", "report {subject}.", "what value does {subject} have?",
    "find {subject}.", "look up {subject}.", "what does the text say {subject} is?",
    "write down {subject}.", "recall {subject}.", "what is {subject}, according to the document?",
    "do you know {subject}?", "could you tell me {subject}?", "remind me of {subject}.",
    "what is the value of {subject}?", "state {subject}.", "search the document for {subject}.",
    "I am looking for {subject}.", "say {subject}.", "what did the document give as {subject}?",
    "which one is {subject}?",
)
_QUESTION_TAILS = ("Thanks.", "Thank you!", "Be precise.", "Answer in one sentence.",
                   "Quickly, please.", "It is somewhere in there.")


# Where to look, put before a request's final mark ("what is {subject} in the file above?"):
# asked "in the text above", the model answered as the classic variable-tracking and
# word-frequency tasks do ("According to the coded text above, ..."), the only train questions
# that point "above".
_PLACES_ASKED = ("in the document", "in the passage above", "mentioned above", "in the text",
                 "from the file above", "in the context above", "given above", "in the notes",
                 "written above", "in the record above", "in what you just read", "above")


def question_template(rng: random.Random) -> str:
    """A question template with the slots of layouts.question_text()."""
    request = rng.choice(_REQUESTS)
    if rng.random() < 0.3 and request.endswith(("?", ".")):
        request = f"{request[:-1]} {rng.choice(_PLACES_ASKED)}{request[-1]}"
    if rng.random() < 0.4:
        lead = rng.choice(_QUESTION_LEADS)
        request = lead + (_sentence_case(request) if lead.endswith((": ", ". ")) else request)
    text = _sentence_case(request)
    if rng.random() < 0.2:
        text += " " + rng.choice(_QUESTION_TAILS)
    return text


# -- instructions -------------------------------------------------------------------------------
_OPENINGS = ("Here is a document.", "Below is a long text.", "The following is a file.",
             "Read this.", "You will see a long passage.", "Take a look at the text below.",
             "This is a long record.", "Some text follows.", "I pasted a file below.",
             "Go through this document.")
_TASKS = ("A question about it comes at the end.", "It hides a few facts.",
          "Somewhere inside there is a value you will need.", "Answer from it alone.",
          "Most of it is filler.", "Remember the facts you find.", "Look for numbers and codes.",
          "Then answer me.")


def instruction(rng: random.Random) -> str:
    parts = [rng.choice(_OPENINGS)] if rng.random() < 0.8 else []
    if not parts or rng.random() < 0.7:
        parts.append(rng.choice(_TASKS))
    return " ".join(parts)
