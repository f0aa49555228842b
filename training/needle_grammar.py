"""Needle statements composed from parts: who states it, how subject and value are linked, in
which order, and what follows the value.

procedural_layouts.py states a fact in one of about 30 whole forms ("{subject} is set to
{value}"). A model trained on those finds a value stated close to one of them and misses one
stated otherwise: the blind split (shadowkv_engine/eval/layouts.py), written after the shipped
model, was answered 2 times in 39 for a value put before its subject with a verb it had not
seen, and half the time when words followed the value. Forms written one by one follow the
misses of whatever split was last read; a grammar covers the ordinary ways English links a name
to a value, so shape coverage does not depend on a test.

Caveat, for whoever measures the next model: this grammar was written by someone who had read
the blind split's per-template results, so a model trained on it must be measured on a newly
written blind split (`--split blind2`, written before that model), not on that one; and the
model after run 8, trained with the asides below, on `--split blind3`.

And a value is often set off by punctuation ("... was "{value}"", "({value})"): see
`wrapped`, added after blind4 was read (the next model must be measured on a split written
before it: blind5). A value may follow a label noun ("ticket {value}") or come many words after
its subject: see `labelled` and `distant`, added after blind5 was read (measure the next model
on blind6).

Templates keep the slots of layouts.needle_sentence(): {subject}, {Subject}, {value}; each of
{subject} and {value} exactly once.
"""
import random

from shadowkv_engine.eval.layouts import capitalised

# subject first: "{subject} <link> {value}"
SUBJECT_LINKS = (
    "is", "was", "equals", "is set to", "was set to", "is recorded as",
    "was recorded as", "is listed as", "was listed as", "is given as", "was given as",
    "came out as", "ended up as", "stands at", "reads", "now reads", "was changed to",
    "has been changed to", "was updated to", "is registered as", "was registered as",
    "is stored as", "is noted as", "goes by", "is known to be", "turned out to be",
    "will be", "should be", "must be", "is still", "remains", "became",
    "got assigned", "was assigned", "is entered as", "shows", "is configured as",
    "is fixed at", "sits at", "is kept as",
)
# value first: "{value} <link> {subject}"
VALUE_LINKS = (
    "is", "was", "will be", "has become", "became", "stands for", "serves as", "counts as",
    "is used as", "was used as", "was chosen as", "was picked as", "was assigned as",
    "was given as", "was registered as", "was recorded as", "was entered as", "goes with",
    "belongs to", "is the value of", "was the value of", "is what they gave as",
    "is what we use for", "has been issued as", "is on file as", "works as",
)
# someone states it: "<agent> <verb> {value} <as> {subject}" or "<agent> <verb> {subject} <to> {value}"
AGENTS = ("the clerk", "my manager", "someone", "the office", "the app", "the front desk",
          "our team", "the admin", "the bank", "she", "he", "they", "the landlord", "IT",
          "the organisers", "the teacher", "the script", "the form", "the doctor's office")
VALUE_FIRST_VERBS = (("assigned", "as"), ("recorded", "as"), ("chose", "as"), ("picked", "as"),
                     ("registered", "as"), ("listed", "as"), ("entered", "as"), ("gave", "as"),
                     ("issued", "as"), ("reserved", "for"), ("set aside", "for"),
                     ("wrote down", "as"), ("filed", "under"), ("put", "down as"))
SUBJECT_FIRST_VERBS = (("set", "to"), ("changed", "to"), ("updated", "to"), ("recorded", "as"),
                       ("listed", "as"), ("fixed", "at"), ("reset", "to"), ("moved", "to"),
                       ("registered", "as"), ("confirmed", "as"), ("gave", "as"))
# after the value (never another key-shaped token: no digits)
TRAILERS = ("as of today", "until further notice", "this week", "from now on",
            "(confirmed)", "in the records", "according to the log", "for the time being",
            "if I remember right", "last time I checked", "on paper", "officially", "again",
            "so keep that in mind", "as agreed", "at least for today",
            "or so they say")


def composed_statement(rng: random.Random) -> str:
    """A statement (no end mark), subject-first, value-first or told by an agent, maybe with
    words after its last slot."""
    form = rng.random()
    if form < 0.4:
        statement = f"{{subject}} {rng.choice(SUBJECT_LINKS)} {{value}}"
    elif form < 0.7:
        statement = f"{{value}} {rng.choice(VALUE_LINKS)} {{subject}}"
    elif form < 0.85:
        verb, prep = rng.choice(VALUE_FIRST_VERBS)
        statement = f"{rng.choice(AGENTS)} {verb} {{value}} {prep} {{subject}}"
    else:
        verb, prep = rng.choice(SUBJECT_FIRST_VERBS)
        statement = f"{rng.choice(AGENTS)} {verb} {{subject}} {prep} {{value}}"
    if rng.random() < 0.35:
        statement += rng.choice((" ", ", ", " - ")) + rng.choice(TRAILERS)
    return statement


# Words between the first slot and the rest ("{subject}, as far as I know, is {value}") and a
# circumstance before the statement ("Once the forms were signed, ..."): a fact in a user's text
# is rarely a bare "subject link value", and a model that finds a value only right next to its
# subject misses it when anything comes between (added for the model after run 8, before the
# blind3 split existed; see docs/accuracy.md).
ASIDES = ("as far as I know", "if I remember right", "for what it's worth", "believe it or not",
          "the one from last week", "after all that", "which nobody told me", "so I hear",
          "according to the sheet", "to be honest", "at long last", "and I checked twice",
          "the one everyone asks about", "in case it matters", "strangely enough",
          "as usual", "mind you", "I think", "if you ask the office", "and this is important")
CIRCUMSTANCES = ("After the meeting ran long", "Before anyone left", "While the kettle boiled",
                 "Once the forms were signed", "When we got back", "In the end",
                 "After two weeks of waiting", "Late on the second day", "Since nothing changed",
                 "As it happens", "Between you and me", "For the new season",
                 "Following the last review", "Until we hear otherwise", "Just before lunch",
                 "On the way out", "At the bottom of the page", "Somewhere in the middle")


def interrupted(statement: str, rng: random.Random) -> str:
    """The statement with an aside after its first slot, or a circumstance before it."""
    if rng.random() < 0.5:
        first = min(("{subject}", "{value}"), key=statement.index)
        at = statement.index(first) + len(first)
        return f"{statement[:at]}, {rng.choice(ASIDES)},{statement[at:]}"
    return f"{rng.choice(CIRCUMSTANCES)}, {statement}"


# Punctuation around the value: quotes, brackets, parentheses, code marks. Added after the
# blind splits were read (fourteenth session, docs/accuracy.md): a value in parentheses or
# quotes was found 0-4 times in 31-37 on blind3 and blind4 by every model, because no trained
# needle wrapped its value while the symbolic filler wraps its own fields, so the models learned
# that a wrapped value is filler. Never "#", which a held-out filler writes after "(", nor
# braces, which the template's own formatting would eat.
VALUE_WRAPS = ('"{}"', "'{}'", "({})", "[{}]", "<{}>", "`{}`", "*{}*", '("{}")', "[ {} ]",
               "({} exactly)", "(it's {})", '"{}" (sic)')


def wrapped(template: str, rng: random.Random) -> str:
    """The template with its value slot set off by punctuation."""
    return template.replace("{value}", rng.choice(VALUE_WRAPS).format("{value}"), 1)


# A noun that labels the value ("Reference 4821 has been allocated as ...", "... is ticket
# 4821"), and many words between subject and value ("{subject} -- <a dozen words>: 4821").
# Added after blind5 was read (fifteenth session, docs/accuracy.md), so the next model must be
# measured on a split written before it (blind6): run 11 found a value labelled "Reference" 0
# times in 36 there, and on the CPU 13 times in 32 once that one word was dropped; it found a
# value thirteen words after its subject 0-1 times in 34, and 25 in 32 with those words
# dropped. A number after a noun reads like a filler's own numbering, and a value far from its
# subject like any other token: neither was in any trained needle.
VALUE_LABELS = ("reference", "number", "ticket", "case", "item", "entry", "file", "record",
                "account", "order", "slot", "batch", "form", "code", "ID", "line", "unit",
                "version", "voucher", "permit", "claim", "receipt", "pass", "tag")
LONG_ASIDES = (
    "and I only found this after going through every drawer in the office twice",
    "which the man on the phone read out to me slowly while I looked for a pen",
    "copied from the sheet on the board in the hallway before anyone took it down",
    "sorry this took so long, the old system kept logging me out every few minutes",
    "nobody could agree on it at first but in the end everyone signed off on it",
    "this is the one from the second page of the letter, not the first page",
    "I am putting it here because my notebook is full and I keep losing scraps of paper",
    "the last person who had this job left it on a note taped under the keyboard",
    "please do not mix this up with the older one that is still printed on the forms",
    "after a long afternoon of emails back and forth with three different people",
    "as read out at the end of the meeting, when half the room had already gone home",
    "checked against the original and then checked again by someone else to be sure",
    "which replaces whatever was written on the old printout last month",
    "and yes, I know it looks strange, but that is really what they sent us",
    "taken from the bottom of the screen where it is easy to miss if you scroll fast",
    "for anyone who missed the call this morning and has been asking me all day",
)
# Joins around the aside: inside a statement (its own link follows), or, for a statement that
# opens with its subject, instead of the link (the value follows).
_INNER_JOINS = (" -- {aside} -- ", ", {aside}, ", " ({aside}) ")
_LINK_JOINS = (" -- {aside}: ", ": {aside}: ", ". {Aside}: ", " - {aside}, anyway, it is ",
               " ({aside}) is ", ", {aside}, comes to ")


def labelled(template: str, rng: random.Random) -> str:
    """The template with a label noun right before its value slot."""
    return template.replace("{value}", f"{rng.choice(VALUE_LABELS)} {{value}}", 1)


def distant(statement: str, rng: random.Random) -> str:
    """The statement with a long aside between its two slots: after its first slot and before
    its own link, or, half the time for a statement that opens with its subject, instead of the
    link ("{subject} -- <aside>: {value}")."""
    slots = [slot for slot in ("{subject}", "{Subject}", "{value}") if slot in statement]
    if len(slots) < 2:
        return statement  # a value alone has nothing to be far from
    aside = rng.choice(LONG_ASIDES)
    first = min(slots, key=statement.index)
    at = statement.index(first) + len(first)
    if statement.startswith(("{subject}", "{Subject}")) and rng.random() < 0.5:
        join = rng.choice(_LINK_JOINS).format(aside=aside, Aside=capitalised(aside))
        end = statement.index("{value}") + len("{value}")
        return statement[:at] + join + "{value}" + statement[end:]
    join = rng.choice(_INNER_JOINS).format(aside=aside)
    return statement[:at] + join + statement[at:].lstrip(" ,")
