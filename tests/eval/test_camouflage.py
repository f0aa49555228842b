"""Camouflaged needles (training/camouflage.py): a filler line with one word made the subject and
a nearby one the value; the rest of the line, and every token it holds, stay as they were."""
import random
import re

import pytest

from shadowkv_engine.eval.layouts import needle_sentence
from training import layout_documents
from training.camouflage import camouflaged, filler_lines
from training.layout_documents import layout_conversation
from training.procedural_fillers import ProceduralFiller
from training.real_text import RealTextFiller

WORDS = re.compile(r"[A-Za-z0-9]+")


def sample_lines() -> list[str]:
    lines = []
    for seed in range(60):
        lines += filler_lines(ProceduralFiller(f"camouflage/{seed}").units(6))
    for seed in range(10):
        lines += filler_lines(RealTextFiller(f"camouflage/{seed}").units(3))
    return lines


def test_a_camouflaged_line_differs_from_its_filler_line_in_two_nearby_tokens():
    rng, made = random.Random(0), 0
    for line in sample_lines():
        template = camouflaged(line, rng)
        if template is None:
            continue
        made += 1
        assert template.count("{value}") == 1
        assert template.count("{subject}") + template.count("{Subject}") == 1
        # a one-word subject and a value of the token's own kind keep the token count
        needle = needle_sentence(template, "zyx", "4821")
        before, after = WORDS.findall(line), WORDS.findall(needle)
        assert len(before) == len(after), (line, needle)
        changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
        assert {after[i] for i in changed} <= {"zyx", "Zyx", "4821"}, (line, needle)
        assert "4821" in after and ("zyx" in after or "Zyx" in after)
    assert made > 300  # most filler lines have two replaceable tokens


@pytest.mark.parametrize("line", ["3.14 well-known don't snake_case a/b 12:04:33 1,000",
                                  "x2 v1.2 user@host", "", "   "])
def test_tokens_joined_to_others_are_never_replaced(line):
    assert all(camouflaged(line, random.Random(seed)) is None for seed in range(50))


def test_fields_of_a_row_and_braces_survive():
    templates = {camouflaged('{"lamp": "red", "tool": 12}', random.Random(s)) for s in range(40)}
    for template in templates:
        needle = needle_sentence(template, "the code", "7G4K")
        assert needle.startswith("{") and needle.endswith("}")
    csv = {camouflaged("Anna,lamp,12", random.Random(s)) for s in range(40)}
    assert "{Subject},{value},12" in csv  # CSV fields are separate tokens


def test_a_line_too_long_to_be_one_statement_is_refused():
    assert camouflaged(" ".join(["word"] * 41), random.Random(0)) is None


def test_conversations_state_facts_in_their_fillers_lines(monkeypatch):
    """At rate 1 every needle in a made-up filler is offered for camouflage: each needle made
    from a filler line is in the context beside that line, and its value is asked for."""
    offered, rendered = [], {}

    def recorded(line, rng):
        template = camouflaged(line, rng)
        offered.append((line, template))
        return template

    def rendering(template, subject, value):
        rendered[template] = needle_sentence(template, subject, value)
        return rendered[template]

    monkeypatch.setattr(layout_documents, "camouflaged", recorded)
    monkeypatch.setattr(layout_documents, "needle_sentence", rendering)
    monkeypatch.setattr(layout_documents, "CAMOUFLAGED_RATE", 1.0)
    monkeypatch.setattr(layout_documents, "PROCEDURAL_RATE", 1.0)
    camouflaged_conversations = 0
    for i in range(12):
        label = f"test/camouflage/{i}"
        offered.clear()
        rendered.clear()
        conversation = layout_conversation(random.Random(label), label, 8192)
        context = conversation.context(400)
        assert len(offered) == len(conversation.turns)  # one needle a fact, each offered
        made = [(line, template) for line, template in offered if template]
        camouflaged_conversations += bool(made)
        for line, template in made:
            assert line in context  # the twin the needle was made from
            assert rendered[template] in context
        for turn in conversation.turns:
            assert context.count(turn.answer.strip(" .")) == 1
    assert camouflaged_conversations >= 9  # a line without two free tokens keeps its template
