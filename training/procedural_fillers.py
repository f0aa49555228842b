"""Procedural fillers: a haystack's format and its words, both drawn per conversation.

The first procedural fillers (procedural_layouts.py, runs 3-8 of the shipped model) drew their
format per conversation but their words from the train lists (words.NOUNS, ...). The model
learned those words as "filler" and everything else as a candidate needle: on the blind2 split
(docs/accuracy.md), in fillers made of words it had never read, it mostly did not find the
needle at all. A user's document is made of words nobody chose for it, so here:
- every filler has its own Lexicon: nouns, adjectives, names and verbs drawn per conversation
  from the train words, the made-up words of procedural_layouts.py and words made up for this
  conversation alone, in a proportion that is itself drawn (all familiar ... all new);
- besides the formats of runs 3-8 (refrain, prose, list, code, chat, table, log, records,
  metrics), two formats make up their own shape: `phrasebook` (sentence templates of function
  words and slots, invented per conversation, like any genre's stock phrases) and `symbolic`
  (lines of fields joined and wrapped by punctuation, like any data format's lines).

Rules every format keeps (tests/eval/test_procedural_layouts.py): numbers below 1000, no token
mixing letters and digits, so a needle's value stays the only key-shaped token; no held-out
material (the held-out fillers' markers: ' | ', ' @ ', '; }', ' (#', '[INFO]', ...); `units(n)`
is a prefix of `units(n + 1)`.
"""
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from shadowkv_engine.eval import words
from shadowkv_engine.eval.fillers import prose_sentence

from .procedural_layouts import LETTER_WORDS, MADE_UP, MADE_UP_NAMES, made_up_names

Unit = Callable[[random.Random, int], str]  # (rng, index) -> one filler unit


# -- the lexicon --------------------------------------------------------------------------------
_VERBS_PAST = ("saw", "found", "moved", "painted", "carried", "sold", "bought", "cleaned", "lost")
_FAMILIAR_SHARES = (1.0, 0.7, 0.4, 0.0)  # how many of a lexicon's words are train words
_MADE_UP_VERBS = tuple(w + "ed" for w in MADE_UP[:200])


@dataclass(frozen=True)
class Lexicon:
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    names: tuple[str, ...]
    verbs: tuple[str, ...]  # past tense


def draw_lexicon(rng: random.Random) -> Lexicon:
    """A filler's open-class words: train words with a drawn share, the rest made up (half from
    procedural_layouts' pools, half spelled for this conversation alone)."""
    familiar = rng.choice(_FAMILIAR_SHARES)
    fresh = iter(w.lower() for w in made_up_names(60, f"lexicon/{rng.random()}"))

    def pick(count: int, known: tuple[str, ...], made: tuple[str, ...]) -> tuple[str, ...]:
        chosen = {}
        while len(chosen) < count:
            draw = rng.random()
            word = (rng.choice(known) if draw < familiar
                    else rng.choice(made) if draw < familiar + (1 - familiar) / 2 else next(fresh))
            chosen[word] = None
        return tuple(chosen)

    return Lexicon(
        nouns=pick(rng.randint(8, 40), tuple(words.NOUNS), MADE_UP + LETTER_WORDS),
        adjectives=pick(rng.randint(4, 20), tuple(words.ADJECTIVES), MADE_UP + LETTER_WORDS),
        names=tuple(n.capitalize() for n in pick(rng.randint(3, 20), tuple(words.NAMES),
                                                 tuple(n.lower() for n in MADE_UP_NAMES))),
        verbs=pick(rng.randint(3, 9), _VERBS_PAST + tuple(words.VERBS), _MADE_UP_VERBS))


# -- sentences ----------------------------------------------------------------------------------
_PREPOSITIONS = ("near", "under", "behind", "beside", "over", "inside", "past", "around")


def _grammar_sentence(rng: random.Random, lex: Lexicon) -> str:
    def phrase() -> str:
        if rng.random() < 0.25:
            return rng.choice(lex.names)
        article = rng.choice(("the", "a", "every", "one"))
        return f"{article} {rng.choice(lex.adjectives)} {rng.choice(lex.nouns)}" if rng.random() < 0.6 \
            else f"{article} {rng.choice(lex.nouns)}"

    shape = rng.randrange(4)
    if shape == 0:
        text = f"{phrase()} {rng.choice(lex.verbs)} {phrase()}"
    elif shape == 1:
        text = f"{phrase()} was {rng.choice(lex.adjectives)}"
    elif shape == 2:
        text = f"{phrase()} {rng.choice(lex.verbs)} {phrase()} {rng.choice(_PREPOSITIONS)} {phrase()}"
    else:
        text = f"{phrase()} and {phrase()} stayed {rng.choice(_PREPOSITIONS)} {phrase()}"
    if rng.random() < 0.2:
        text += f" {rng.randint(2, 999)} times"
    return text[:1].upper() + text[1:] + rng.choice(".....!?")


# -- formats of runs 3-8, over the lexicon ------------------------------------------------------
_BULLETS = ("- ", "* ", "+ ", "> ", "", "# ", "{i}. ", "{i}) ", "({i}) ", "[x] ", "~ ")
_FIELD_SEPARATORS = (": ", ", ", " - ", "; ", " / ", "\t", " -> ", " :: ")


def _field(rng: random.Random, lex: Lexicon, kind: str) -> str:
    if kind == "number":
        return str(rng.randint(0, 999))
    if kind == "name":
        return rng.choice(lex.names)
    if kind == "adjective":
        return rng.choice(lex.adjectives)
    if kind == "place":
        return rng.choice(lex.nouns).capitalize()
    return rng.choice(lex.nouns)


def _list_filler(rng: random.Random, lex: Lexicon) -> tuple[Unit, str]:
    bullet = rng.choice(_BULLETS)
    separator = rng.choice(_FIELD_SEPARATORS)
    fields = [rng.choice(("noun", "number", "name", "adjective", "place"))
              for _ in range(rng.randint(1, 4))]

    def unit(r: random.Random, i: int) -> str:
        return bullet.format(i=i % 1000) + separator.join(_field(r, lex, kind) for kind in fields)
    return unit, "\n"


def _identifier(rng: random.Random, lex: Lexicon) -> str:
    parts = rng.sample(lex.nouns, min(len(lex.nouns), rng.randint(1, 2)))
    return "_".join(parts) if rng.random() < 0.7 else parts[0] + "".join(p.capitalize() for p in parts[1:])


_CODE_STYLES = (
    lambda r, x: f"{_identifier(r, x)} = {r.randint(0, 999)}",
    lambda r, x: f"    {_identifier(r, x)}: {r.choice(x.nouns)}",
    lambda r, x: f"{r.choice(x.names)},{r.choice(x.nouns)},{r.randint(0, 999)}",
    lambda r, x: f"<{(tag := r.choice(x.nouns))}>{r.choice(x.adjectives)}</{tag}>",
    lambda r, x: f"INSERT INTO {r.choice(x.nouns)} VALUES ({r.randint(0, 999)}, '{r.choice(x.nouns)}');",
    lambda r, x: f"{_identifier(r, x)}.{r.choice(('get', 'set', 'add', 'pop', 'run'))}({r.randint(0, 999)})",
    lambda r, x: f"$ {r.choice(('cp', 'mv', 'ls', 'cat', 'grep'))} {r.choice(x.nouns)} -{r.choice('abcdefg')}",
    lambda r, x: f"int {_identifier(r, x)} = {r.randint(0, 999)};",
    lambda r, x: f"{r.choice(x.nouns).upper()} {r.choice(('ok', 'failed', 'skipped', 'done'))} after {r.randint(1, 999)} ms",
    lambda r, x: f'{{"{r.choice(x.nouns)}": "{r.choice(x.adjectives)}", "{r.choice(x.nouns)}": {r.randint(0, 999)}}}',
)


def _code_filler(rng: random.Random, lex: Lexicon) -> tuple[Unit, str]:
    styles = rng.sample(_CODE_STYLES, rng.randint(1, 3))
    return (lambda r, i: r.choice(styles)(r, lex)), "\n"


def _refrain_filler(rng: random.Random, lex: Lexicon) -> tuple[Unit, str]:
    refrain = [_grammar_sentence(rng, lex) for _ in range(rng.randint(2, 7))]
    return (lambda r, i: refrain[i % len(refrain)]), " "


def _prose_filler(rng: random.Random, lex: Lexicon) -> tuple[Unit, str]:
    if rng.random() < 0.2:
        return (lambda r, i: prose_sentence(r)), " "
    separator = rng.choice((" ", " ", "\n"))
    return (lambda r, i: _grammar_sentence(r, lex)), separator


def _chat_filler(rng: random.Random, lex: Lexicon) -> tuple[Unit, str]:
    speakers = rng.sample(lex.names, min(len(lex.names), rng.randint(2, 4)))
    mark = rng.choice((": ", " said: ", " > ", " - "))
    return (lambda r, i: f"{speakers[i % len(speakers)]}{mark}{_grammar_sentence(r, lex)}"), "\n"


_COLUMN_SEPARATORS = ("\t", ", ", "; ", "|", " || ", " / ", " : ", ",", " ; ", " # ")


def _table_filler(rng: random.Random, lex: Lexicon) -> tuple[Unit, str]:
    """Rows of 2-5 columns, maybe under a header and a rule, maybe padded into aligned columns.
    (The held-out table's ' | ' is the one separator never used.)"""
    kinds = [rng.choice(("name", "place", "number", "noun", "adjective"))
             for _ in range(rng.randint(2, 5))]
    aligned = rng.random() < 0.3
    separator = rng.choice(("  ", "\t", " ")) if aligned else rng.choice(_COLUMN_SEPARATORS)
    width = rng.randint(8, 14)
    header = [rng.choice(lex.nouns) for _ in kinds]
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
        return row([_field(r, lex, kind) for kind in kinds])
    return unit, "\n"


_LEVELS = ("info", "INFO:", "warn", "WARNING", "E", "W", "I", "<notice>", "(ok)", "level=info",
           "error:", "debug", "TRACE", "NOTE")
_EVENTS = ("started", "stopped", "retrying", "connected", "queued", "finished", "timed out",
           "skipped", "saved", "opened", "closed", "synced")


def _log_filler(rng: random.Random, lex: Lexicon) -> tuple[Unit, str]:
    """Log lines: a clock time or a counter, a level word, a subject and an event."""
    levels = rng.sample(_LEVELS, rng.randint(1, 3))
    clock = rng.choice(("{h:02d}:{m:02d}:{s:02d} ", "{h}:{m:02d} ", "t={n} ", "#{n} ", ""))

    def unit(r: random.Random, i: int) -> str:
        stamp = clock.format(h=r.randrange(24), m=r.randrange(60), s=r.randrange(60), n=i % 1000)
        subject = r.choice(lex.nouns) if r.random() < 0.7 else _identifier(r, lex)
        tail = f" in {r.randint(1, 999)} ms" if r.random() < 0.3 else ""
        return f"{stamp}{r.choice(levels)} {subject} {r.choice(_EVENTS)}{tail}"
    return unit, "\n"


_METRIC_SHAPES = ("{k}={v}", "{k}: {v}", "{k} {v}%", "{k}={v}%", "{v} {k}", "{k} {v} ms",
                  "{k} {v}/{w}", "{k} {v}.{d}", "{k}={v}.{d} s", "{k} +{v}", "{k} -{v}")
_METRIC_JOINS = (" ", ", ", "  ", "; ", "\t", " :: ", " / ")


def _metrics_filler(rng: random.Random, lex: Lexicon) -> tuple[Unit, str]:
    """Number-dense lines: a few named measurements, each with small numbers (times, percentages,
    counts, ratios), maybe after a clock time, so a long context is full of numbers that are not
    the key (the held-out log lines, with times, percentages and worker numbers, were the filler
    the model passed over worst)."""
    names = [rng.choice(lex.nouns) if rng.random() < 0.6 else _identifier(rng, lex)
             for _ in range(rng.randint(2, 5))]
    shapes = [rng.choice(_METRIC_SHAPES) for _ in names]
    join = rng.choice(_METRIC_JOINS)
    clock = rng.choice(("{h:02d}:{m:02d}:{s:02d} ", "{h}:{m:02d} ", "{n}. ", "", ""))

    def unit(r: random.Random, i: int) -> str:
        stamp = clock.format(h=r.randrange(24), m=r.randrange(60), s=r.randrange(60), n=i % 1000)
        return stamp + join.join(shape.format(k=k, v=r.randint(0, 999), w=r.randint(1, 999),
                                              d=r.randint(0, 99)) for k, shape in zip(names, shapes))
    return unit, "\n"


def _records_filler(rng: random.Random, lex: Lexicon) -> tuple[Unit, str]:
    """Records of named fields, one a line: key=value pairs, 'key: value;' or a dict."""
    keys = rng.sample(lex.nouns, min(len(lex.nouns), rng.randint(2, 4)))
    kinds = [rng.choice(("name", "number", "noun", "adjective")) for _ in keys]
    shape = rng.choice(("{k}={v}", "{k}: {v};", "{k}='{v}'", "'{k}': '{v}',", "({k} {v})"))

    def unit(r: random.Random, i: int) -> str:
        return " ".join(shape.format(k=k, v=_field(r, lex, kind)) for k, kind in zip(keys, kinds))
    return unit, "\n"


# -- formats that invent their own shape --------------------------------------------------------
_FUNCTION_WORDS = ("the", "a", "of", "to", "in", "and", "was", "will", "after", "before", "with",
                   "for", "on", "at", "by", "from", "his", "her", "their", "this", "that", "is",
                   "are", "has", "had", "been", "not", "all", "some", "every", "our", "your",
                   "we", "they", "it", "you", "so", "but", "if", "when", "then", "there", "no",
                   "more", "than", "about", "into", "until", "again", "please", "do", "can")
_SLOT_WEIGHTS = (("{f}", 45), ("{noun}", 30), ("{adj}", 10), ("{name}", 6), ("{verb}", 6),
                 ("{n}", 3))


_SLOT = re.compile(r"\{(\w+)\}")


def _phrase_template(rng: random.Random) -> str:
    """A stock phrase of one invented genre: 4-14 words and slots, maybe a comma, an end mark."""
    slots, weights = zip(*_SLOT_WEIGHTS)
    parts = rng.choices(slots, weights, k=rng.randint(4, 14))
    functions = iter(rng.choice(_FUNCTION_WORDS) for _ in parts)
    text = " ".join(next(functions) if p == "{f}" else p for p in parts)
    if rng.random() < 0.4:
        cut = text.split(" ")
        at = rng.randrange(1, len(cut))
        text = " ".join(cut[:at]) + ", " + " ".join(cut[at:])
    return text + rng.choice((".", ".", "!", "?", "", ";", " ..."))


def _phrasebook_filler(rng: random.Random, lex: Lexicon) -> tuple[Unit, str]:
    """A genre nobody wrote: 2-8 invented stock phrases, cycled (announcements, chants) or drawn
    (reports, minutes), their slots filled from the lexicon."""
    phrases = [_phrase_template(rng) for _ in range(rng.randint(2, 8))]
    fill = {"noun": lambda r: r.choice(lex.nouns), "adj": lambda r: r.choice(lex.adjectives),
            "name": lambda r: r.choice(lex.names), "verb": lambda r: r.choice(lex.verbs),
            "n": lambda r: str(r.randint(0, 999))}
    cycled = rng.random() < 0.4
    separator = rng.choice((" ", " ", "\n", "\n\n"))

    def unit(r: random.Random, i: int) -> str:
        phrase = phrases[i % len(phrases)] if cycled else r.choice(phrases)
        text = _SLOT.sub(lambda slot: fill[slot.group(1)](r), phrase)  # each slot its own draw
        return text[:1].upper() + text[1:]
    return unit, separator


# Joins and wraps of a data line. Held-out fillers' marks are left out: ' | ', ' @ ', '; }'
# and ' (#' (test_procedural_layouts checks the text).
_SYMBOL_JOINS = (" = ", " : ", " -> ", " => ", " :: ", " ~ ", " * ", " + ", " x ", " / ", " // ",
                 " >> ", " & ", ", ", " . ", " ... ", " -- ", " ; ", "::", "=", ":", "/", "_",
                 " .... ", "  ", "\t", " ^ ", " % ")
_FIELD_WRAPS = ("{}", "{}", "{}", "[{}]", "({})", "<{}>", "'{}'", '"{}"', "`{}`", "*{}*",
                "{}:", "{},", "${}", ".{}", "{}!")
_LINE_WRAPS = ("{}", "{}", "{}", "{{ {} }}", "/* {} */", "# {}", "// {}", "-- {}", "** {} **",
               "> {}", "  {}", "\t{}", "[{}]", "<{}>", "{};", "{} ;;", "(({}))", "%% {}")
# A data line's field kinds, each drawn from the lexicon or as a small number (the rest of the
# kinds are _field's).
_SYMBOL_FIELD_MAKERS: dict[str, Callable[[random.Random, Lexicon], str]] = {
    "adjective noun": lambda r, x: f"{r.choice(x.adjectives)} {r.choice(x.nouns)}",
    "decimal": lambda r, x: f"{r.randint(0, 99)}.{r.randint(0, 99):02d}",
    "percent": lambda r, x: f"{r.randint(0, 100)}%",
    "money": lambda r, x: f"{r.choice('$€£¥')}{r.randint(0, 999)}",
    "count": lambda r, x: f"{r.randint(1, 9)} {r.choice(x.nouns)}",
    "word pair": lambda r, x: f"{r.choice(x.nouns)}-{r.choice(x.nouns)}",
    "upper": lambda r, x: r.choice(x.nouns).upper(),
}
_SYMBOL_FIELDS = ("noun", "noun", "adjective noun", "name", "number", "decimal", "percent",
                  "money", "count", "word pair", "upper")  # drawn with repeats: the order counts


def _symbol_field(rng: random.Random, lex: Lexicon, kind: str) -> str:
    make = _SYMBOL_FIELD_MAKERS.get(kind)
    return make(rng, lex) if make else _field(rng, lex, kind)


def _symbolic_filler(rng: random.Random, lex: Lexicon) -> tuple[Unit, str]:
    """A data format nobody wrote: 1-5 fields a line, each its own kind and wrap, joined by
    punctuation, the line wrapped in a comment, braces or a prompt mark."""
    kinds = [rng.choice(_SYMBOL_FIELDS) for _ in range(rng.randint(1, 5))]
    wraps = [rng.choice(_FIELD_WRAPS) for _ in kinds]
    joins = [rng.choice(_SYMBOL_JOINS) for _ in kinds[1:]] + [""]
    line = rng.choice(_LINE_WRAPS)

    def unit(r: random.Random, i: int) -> str:
        fields = (wrap.format(_symbol_field(r, lex, kind)) for kind, wrap in zip(kinds, wraps))
        return line.format("".join(f + j for f, j in zip(fields, joins)))
    return unit, "\n"


FILLER_FORMATS = {"refrain": _refrain_filler, "prose": _prose_filler, "list": _list_filler,
                  "code": _code_filler, "chat": _chat_filler, "table": _table_filler,
                  "log": _log_filler, "records": _records_filler, "metrics": _metrics_filler,
                  "phrasebook": _phrasebook_filler, "symbolic": _symbolic_filler}
# The formats that invent their own shape are drawn as often as the nine of runs 3-8 together:
# they are what makes an unseen format a seen kind of thing.
_FORMAT_WEIGHTS = {name: 1 for name in FILLER_FORMATS} | {"phrasebook": 4.5, "symbolic": 4.5}


class ProceduralFiller:
    """A filler of a format and lexicon drawn from `seed`; `units(n)` is always a prefix of
    `units(n + 1)` (the length search of training/documents.py relies on it), like
    eval.haystack.Haystack."""

    def __init__(self, seed: str):
        rng = random.Random(f"procedural-filler/{seed}")
        self.format = rng.choices(list(_FORMAT_WEIGHTS), list(_FORMAT_WEIGHTS.values()))[0]
        self.lexicon = draw_lexicon(rng)
        self._unit, self.separator = FILLER_FORMATS[self.format](rng, self.lexicon)
        self._rng = rng
        self._units: list[str] = []

    def units(self, n: int) -> list[str]:
        while len(self._units) < n:
            self._units.append(self._unit(self._rng, len(self._units)))
        return self._units[:n]
