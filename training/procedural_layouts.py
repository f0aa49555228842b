"""Procedural layouts: surface forms made up per conversation, so training reads thousands of them.

The train pools of shadowkv_engine/eval/layouts.py hold a few dozen fixed templates and seven
filler sources. A model trained on those alone learns *them*: the first retrained model scored
60-85% on train layouts and 24-52% on held-out ones at 8K (docs/accuracy.md). What a user varies
is open-ended, so training here composes each piece from parts instead:
- needle sentences: an optional lead-in, one of many ways to state "subject is value", an
  optional tail;
- questions: an optional lead-in, a request for the subject, an optional tail;
- instructions: an opening sentence and a task sentence, each optional;
- fillers: a format drawn per conversation (a refrain of random sentences, grammar prose, a list
  with its own bullet, fields and separators, code- or config-like lines, a chat transcript, a
  table with its own columns and separator, log lines, records of named fields, number-dense
  measurement lines);
- names and magic-number keys: besides the train words, made-up words built from syllables, and
  names spelled letter by letter;
- people's attributes: a train noun or a letter-spelled word, and a suffix ("cabin number",
  "pechim tag");
- questions may say where to look ("... in the passage above?").

Nothing here may produce held-out material (of the heldout, blind or blind2 split): none of the
held-out templates' fixed text, filler markers (' | ', '[INFO]', '{"name": ', ...), words or
attributes (tests/eval/test_layouts.py checks the training stream). Made-up words and
attributes that happen to be held-out ones are skipped, which is the only use of the held-out
pools here. Numbers in fillers stay below 1000
and no filler token mixes letters and digits, so a needle's value stays the only key-shaped token
of a context.
"""
import random
import re
from collections.abc import Callable
from dataclasses import replace

from shadowkv_engine.eval import words
from shadowkv_engine.eval.fillers import prose_sentence
from shadowkv_engine.eval.layouts import BLIND, BLIND2, HELDOUT, TRAIN, Pools

from .needle_grammar import composed_statement

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
_HELDOUT_ATTRIBUTES = {attribute for attribute, _ in
                       HELDOUT.attributes + BLIND.attributes + BLIND2.attributes}


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
    elif draw < COMPOSED_RATE + (1 - COMPOSED_RATE) * 0.25:  # a quarter of the rest: a clause
        statement = f"{rng.choice(_CLAUSE_LEADS)} {rng.choice(_CLAUSES)}"
    elif rng.random() < 0.5:
        mark = rng.choice(_LEAD_MARKS)
        lead = rng.choice(_NEEDLE_LEADS)
        statement = lead + mark + (_sentence_case(statement) if mark in (": ", "! ") else statement)
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


# -- fillers ------------------------------------------------------------------------------------
_PREPOSITIONS = ("near", "under", "behind", "beside", "over", "inside", "past", "around")
_FILLER_NAMES = tuple(words.NAMES) + MADE_UP_NAMES[:50]  # who appears in filler sentences
_VERBS_PAST = ("saw", "found", "moved", "painted", "carried", "sold", "bought", "cleaned", "lost")


def _grammar_sentence(rng: random.Random) -> str:
    def phrase() -> str:
        if rng.random() < 0.25:
            return rng.choice(_FILLER_NAMES)
        article = rng.choice(("the", "a", "every", "one"))
        return f"{article} {rng.choice(words.ADJECTIVES)} {rng.choice(words.NOUNS)}" if rng.random() < 0.6 \
            else f"{article} {rng.choice(words.NOUNS)}"

    shape = rng.randrange(4)
    if shape == 0:
        text = f"{phrase()} {rng.choice(_VERBS_PAST)} {phrase()}"
    elif shape == 1:
        text = f"{phrase()} was {rng.choice(words.ADJECTIVES)}"
    elif shape == 2:
        text = f"{phrase()} {rng.choice(_VERBS_PAST)} {phrase()} {rng.choice(_PREPOSITIONS)} {phrase()}"
    else:
        text = f"{phrase()} and {phrase()} stayed {rng.choice(_PREPOSITIONS)} {phrase()}"
    if rng.random() < 0.2:
        text += f" {rng.randint(2, 999)} times"
    return text[:1].upper() + text[1:] + rng.choice(".....!?")


_TOWNS = tuple(w.capitalize() for w in MADE_UP[:80])  # a table's place column
_HEADER_WORDS = tuple(words.NOUNS) + MADE_UP[:100]  # a table's column names
_BULLETS = ("- ", "* ", "+ ", "> ", "", "# ", "{i}. ", "{i}) ", "({i}) ", "[x] ", "~ ")
_FIELD_SEPARATORS = (": ", ", ", " - ", "; ", " / ", "\t", " -> ", " :: ")


def _field(rng: random.Random, kind: str) -> str:
    if kind == "number":
        return str(rng.randint(0, 999))
    if kind == "name":
        return rng.choice(_FILLER_NAMES)
    if kind == "adjective":
        return rng.choice(words.ADJECTIVES)
    if kind == "made-up":
        return rng.choice(MADE_UP)
    if kind == "place":
        return rng.choice(_TOWNS)
    return rng.choice(words.NOUNS)


def _list_filler(rng: random.Random) -> tuple[Callable[[random.Random, int], str], str]:
    bullet = rng.choice(_BULLETS)
    separator = rng.choice(_FIELD_SEPARATORS)
    fields = [rng.choice(("noun", "number", "name", "adjective", "made-up"))
              for _ in range(rng.randint(1, 4))]
    def unit(r: random.Random, i: int) -> str:
        return bullet.format(i=i % 1000) + separator.join(_field(r, kind) for kind in fields)
    return unit, "\n"


def _identifier(rng: random.Random) -> str:
    parts = rng.sample(words.NOUNS, rng.randint(1, 2))
    return "_".join(parts) if rng.random() < 0.7 else parts[0] + "".join(p.capitalize() for p in parts[1:])


_CODE_STYLES = (
    lambda r: f"{_identifier(r)} = {r.randint(0, 999)}",
    lambda r: f"    {_identifier(r)}: {r.choice(words.NOUNS)}",
    lambda r: f"{r.choice(words.NAMES)},{r.choice(words.NOUNS)},{r.randint(0, 999)}",
    lambda r: f"<{(tag := r.choice(words.NOUNS))}>{r.choice(words.ADJECTIVES)}</{tag}>",
    lambda r: f"INSERT INTO {r.choice(words.NOUNS)} VALUES ({r.randint(0, 999)}, '{r.choice(words.NOUNS)}');",
    lambda r: f"{_identifier(r)}.{r.choice(('get', 'set', 'add', 'pop', 'run'))}({r.randint(0, 999)})",
    lambda r: f"$ {r.choice(('cp', 'mv', 'ls', 'cat', 'grep'))} {r.choice(words.NOUNS)} -{r.choice('abcdefg')}",
    lambda r: f"int {_identifier(r)} = {r.randint(0, 999)};",
    lambda r: f"{r.choice(words.NOUNS).upper()} {r.choice(('ok', 'failed', 'skipped', 'done'))} after {r.randint(1, 999)} ms",
    lambda r: f'{{"{r.choice(words.NOUNS)}": "{r.choice(words.ADJECTIVES)}", "{r.choice(words.NOUNS)}": {r.randint(0, 999)}}}',
)


def _code_filler(rng: random.Random) -> tuple[Callable[[random.Random, int], str], str]:
    styles = rng.sample(_CODE_STYLES, rng.randint(1, 3))
    return (lambda r, i: r.choice(styles)(r)), "\n"


def _refrain_filler(rng: random.Random) -> tuple[Callable[[random.Random, int], str], str]:
    refrain = [_grammar_sentence(rng) for _ in range(rng.randint(2, 7))]
    return (lambda r, i: refrain[i % len(refrain)]), " "


def _prose_filler(rng: random.Random) -> tuple[Callable[[random.Random, int], str], str]:
    if rng.random() < 0.3:
        return (lambda r, i: prose_sentence(r)), " "
    separator = rng.choice((" ", " ", "\n"))
    return (lambda r, i: _grammar_sentence(r)), separator


def _chat_filler(rng: random.Random) -> tuple[Callable[[random.Random, int], str], str]:
    speakers = rng.sample(_FILLER_NAMES, rng.randint(2, 4))
    mark = rng.choice((": ", " said: ", " > ", " - "))
    return (lambda r, i: f"{speakers[i % len(speakers)]}{mark}{_grammar_sentence(r)}"), "\n"


_COLUMN_SEPARATORS = ("\t", ", ", "; ", "|", " || ", " / ", " : ", ",", " ; ", " # ")


def _table_filler(rng: random.Random) -> tuple[Callable[[random.Random, int], str], str]:
    """Rows of 2-5 columns, maybe under a header and a rule, maybe padded into aligned columns.
    (The held-out table's ' | ' is the one separator never used.)"""
    kinds = [rng.choice(("name", "place", "number", "noun", "adjective", "made-up"))
             for _ in range(rng.randint(2, 5))]
    aligned = rng.random() < 0.3
    separator = rng.choice(("  ", "\t", " ")) if aligned else rng.choice(_COLUMN_SEPARATORS)
    width = rng.randint(8, 14)
    header = [rng.choice(_HEADER_WORDS) for _ in kinds]
    if rng.random() < 0.5:
        header = [h.upper() if rng.random() < 0.5 else h.capitalize() for h in header]
    lead = 0 if rng.random() < 0.3 else 1 + (rng.random() < 0.5)  # no header, header, header + rule

    def row(fields: list[str]) -> str:
        return separator.join(f.ljust(width) if aligned else f for f in fields).rstrip()

    def unit(r: random.Random, i: int) -> str:
        if i == 0 and lead:
            return row(header)
        if i == 1 and lead == 2:
            return row(["-" * (width if aligned else len(h)) for h in header])
        return row([_field(r, kind) for kind in kinds])
    return unit, "\n"


_LEVELS = ("info", "INFO:", "warn", "WARNING", "E", "W", "I", "<notice>", "(ok)", "level=info",
           "error:", "debug", "TRACE", "NOTE")
_EVENTS = ("started", "stopped", "retrying", "connected", "queued", "finished", "timed out",
           "skipped", "saved", "opened", "closed", "synced")


def _log_filler(rng: random.Random) -> tuple[Callable[[random.Random, int], str], str]:
    """Log lines: a clock time or a counter, a level word, a subject and an event."""
    levels = rng.sample(_LEVELS, rng.randint(1, 3))
    clock = rng.choice(("{h:02d}:{m:02d}:{s:02d} ", "{h}:{m:02d} ", "t={n} ", "#{n} ", ""))

    def unit(r: random.Random, i: int) -> str:
        stamp = clock.format(h=r.randrange(24), m=r.randrange(60), s=r.randrange(60), n=i % 1000)
        subject = r.choice(words.NOUNS) if r.random() < 0.7 else _identifier(r)
        tail = f" in {r.randint(1, 999)} ms" if r.random() < 0.3 else ""
        return f"{stamp}{r.choice(levels)} {subject} {r.choice(_EVENTS)}{tail}"
    return unit, "\n"


_METRIC_SHAPES = ("{k}={v}", "{k}: {v}", "{k} {v}%", "{k}={v}%", "{v} {k}", "{k} {v} ms",
                  "{k} {v}/{w}", "{k} {v}.{d}", "{k}={v}.{d} s", "{k} +{v}", "{k} -{v}")
_METRIC_JOINS = (" ", ", ", "  ", "; ", "\t", " :: ", " / ")


def _metrics_filler(rng: random.Random) -> tuple[Callable[[random.Random, int], str], str]:
    """Number-dense lines: a few named measurements, each with small numbers (times, percentages,
    counts, ratios), maybe after a clock time, so a long context is full of numbers that are not
    the key (the held-out log lines, with times, percentages and worker numbers, were the filler
    the model passed over worst)."""
    names = [rng.choice(words.NOUNS) if rng.random() < 0.6 else _identifier(rng)
             for _ in range(rng.randint(2, 5))]
    shapes = [rng.choice(_METRIC_SHAPES) for _ in names]
    join = rng.choice(_METRIC_JOINS)
    clock = rng.choice(("{h:02d}:{m:02d}:{s:02d} ", "{h}:{m:02d} ", "{n}. ", "", ""))

    def unit(r: random.Random, i: int) -> str:
        stamp = clock.format(h=r.randrange(24), m=r.randrange(60), s=r.randrange(60), n=i % 1000)
        return stamp + join.join(shape.format(k=k, v=r.randint(0, 999), w=r.randint(1, 999),
                                              d=r.randint(0, 99)) for k, shape in zip(names, shapes))
    return unit, "\n"


def _records_filler(rng: random.Random) -> tuple[Callable[[random.Random, int], str], str]:
    """Records of named fields, one a line: key=value pairs, 'key: value;' or a dict."""
    keys = rng.sample(words.NOUNS, rng.randint(2, 4))
    kinds = [rng.choice(("name", "number", "noun", "adjective", "made-up")) for _ in keys]
    shape = rng.choice(("{k}={v}", "{k}: {v};", "{k}='{v}'", "'{k}': '{v}',", "({k} {v})"))

    def unit(r: random.Random, i: int) -> str:
        return " ".join(shape.format(k=k, v=_field(r, kind)) for k, kind in zip(keys, kinds))
    return unit, "\n"


FILLER_FORMATS = {"refrain": _refrain_filler, "prose": _prose_filler, "list": _list_filler,
                  "code": _code_filler, "chat": _chat_filler, "table": _table_filler,
                  "log": _log_filler, "records": _records_filler, "metrics": _metrics_filler}


class ProceduralFiller:
    """A filler of a format drawn from `seed`; `units(n)` is always a prefix of `units(n + 1)`
    (the length search of training/documents.py relies on it), like eval.haystack.Haystack."""

    def __init__(self, seed: str):
        rng = random.Random(f"procedural-filler/{seed}")
        self.format = rng.choice(list(FILLER_FORMATS))
        self._unit, self.separator = FILLER_FORMATS[self.format](rng)
        self._rng = rng
        self._units: list[str] = []

    def units(self, n: int) -> list[str]:
        while len(self._units) < n:
            self._units.append(self._unit(self._rng, len(self._units)))
        return self._units[:n]
