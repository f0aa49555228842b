"""Camouflaged needles: a fact stated in the shape of the filler around it.

Every needle the models trained on until run 12 was a sentence about its fact ("{subject} is
{value}", however it was composed: needle_grammar.py), set into a filler that never speaks of
facts. A model trained on that can find a needle because it does not look like filler, and then
pick its value. That cue fails wherever a user's document states facts in its own shape, such as
a spreadsheet row, a log entry or a line of code. It also fails where the filler itself holds
sentences and numbers. On every blind split so far, the templates that a trained form could not
reach held most of the misses. With those templates swapped for a trained form, run 11 still
missed 19 of 32 blind5 samples ("The blind5 split" in docs/accuracy.md): the needle's
wording does not explain those misses, but its setting may. Added in the sixteenth session,
before any model read it. The next model must be measured on blind7, written before this and not
read by whoever wrote it.

A camouflaged needle is one line of the conversation's own filler with two of its words
replaced: one by the subject and a nearby one by the value, in either order. Only the subject
tells it apart from the filler, so retrieval has to match the question's subject and take the
key-shaped token next to it.
"""
import random
import re

# A word or a number that can be replaced whole: not part of a longer token. A letter or digit
# next to it, or one of these marks between it and another letter or digit, would make it one
# ("well-known", "don't", "3.14", "snake_case", "a/b"); "," and ":" only between digits ("1,000",
# "12:04:33"), since a CSV row or "key:value" separates fields with them.
_TOKEN = re.compile(r"[A-Za-z]+|\d+")
_JOINERS = set("-_'.@/\\")
_DIGIT_JOINERS = set(",:")
_MAX_GAP = 6  # at most this many replaceable tokens from subject to value
_MAX_WORDS = 40  # a longer line is no one statement (filler_lines() cuts prose into sentences)
_SUBJECT, _VALUE = "\x00subject\x00", "\x00value\x00"


def _tied(token: str, mark: str, beyond: str) -> bool:
    """Whether `mark`, between `token` and the character `beyond` it, joins the two."""
    if not beyond.isalnum():
        return False
    return mark in _JOINERS or (mark in _DIGIT_JOINERS and token[0].isdigit() and beyond.isdigit())


def _replaceable(line: str, match: re.Match) -> bool:
    start, end, token = match.start(), match.end(), match.group()
    before, after = line[start - 1:start], line[end:end + 1]
    if before.isalnum() or after.isalnum():
        return False
    return not (_tied(token, before, line[start - 2:start - 1] if start >= 2 else "")
                or _tied(token, after, line[end + 1:end + 2]))


def camouflaged(line: str, rng: random.Random) -> str | None:
    """A needle template made from one filler line (the slots of layouts.needle_sentence()), or
    None if the line has no two replaceable tokens close together, or is too long."""
    if len(line.split()) > _MAX_WORDS or "\x00" in line:
        return None
    tokens = [m for m in _TOKEN.finditer(line) if _replaceable(line, m)]
    if len(tokens) < 2:
        return None
    words = [i for i, m in enumerate(tokens) if m.group().isalpha()]
    if not words:
        return None
    subject = rng.choice(words)
    near = [i for i in range(max(0, subject - _MAX_GAP), min(len(tokens), subject + _MAX_GAP + 1))
            if i != subject]
    value = rng.choice(near)
    at_start = tokens[subject].start() == len(line) - len(line.lstrip())
    parts, end = [], len(line)
    for i in sorted((subject, value), reverse=True):
        parts[:0] = [_SUBJECT if i == subject else _VALUE, line[tokens[i].end():end]]
        end = tokens[i].start()
    text = line[:end] + "".join(parts)
    text = text.replace("{", "{{").replace("}", "}}")  # the template is str.format()ed
    return text.replace(_SUBJECT, "{Subject}" if at_start else "{subject}").replace(_VALUE, "{value}")


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def filler_lines(units: list[str]) -> list[str]:
    """Candidates for camouflaged(): the lines of some filler units, a line of prose too long to
    be one statement cut into its sentences."""
    lines = [line for unit in units for line in unit.split("\n") if line.strip()]
    return [part for line in lines
            for part in (_SENTENCE_END.split(line) if len(line.split()) > _MAX_WORDS else [line])
            if part.strip()]
