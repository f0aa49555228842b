"""Procedural training layouts: well-formed templates, fillers with no key-shaped token, units that
do not depend on how many are taken, and no held-out material (test_layouts.py checks the whole
training stream; this checks the made-up parts alone, many more of them)."""
import random
import re
from string import Formatter

import pytest

from shadowkv_engine.eval.layouts import HELDOUT, needle_sentence, question_text
from shadowkv_engine.eval.tasks import KEY
from training import procedural_layouts as procedural
from training.procedural_fillers import FILLER_FORMATS, ProceduralFiller


def slots(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name}


def test_templates_use_only_the_needle_and_question_slots():
    rng = random.Random(0)
    for _ in range(500):
        needle, question = procedural.needle_template(rng), procedural.question_template(rng)
        assert {"value"} <= slots(needle) <= {"subject", "Subject", "value"}
        assert slots(question) and slots(question) <= {"subject", "Subject"}
        sentence = needle_sentence(needle, "the pass key", "4821")
        assert "4821" in sentence and "pass key" in sentence and not sentence[0].islower()
        assert question_text(question, "the pass key")[0].isupper()


def test_many_surface_forms_are_made():
    rng = random.Random(1)
    assert len({procedural.needle_template(rng) for _ in range(2000)}) > 500
    assert len({procedural.question_template(rng) for _ in range(2000)}) > 150
    formats = {ProceduralFiller(str(i)).format for i in range(200)}
    assert formats == set(FILLER_FORMATS)


@pytest.mark.parametrize("seed", range(40))
def test_fillers_hold_no_key_shaped_token_and_grow_by_prefix(seed):
    filler = ProceduralFiller(f"test/{seed}")
    short = list(filler.units(50))
    text = filler.separator.join(filler.units(400))
    assert filler.units(50) == short
    assert all(len(token) < 4 for token in re.findall(KEY, text)), (filler.format, text[:300])


def test_made_up_parts_hold_no_heldout_material(heldout_material):
    rng = random.Random(2)
    texts = [procedural.needle_template(rng) + " " + procedural.question_template(rng) + " "
             + procedural.instruction(rng) for _ in range(3000)]
    texts += [ProceduralFiller(f"heldout-check/{i}").separator.join(
        ProceduralFiller(f"heldout-check/{i}").units(200)) for i in range(200)]
    texts.append(" ".join(procedural.MADE_UP + procedural.MADE_UP_NAMES))
    for text in texts:
        assert not heldout_material(text), heldout_material(text)


def test_training_pools_extend_the_train_pools_and_stay_out_of_the_heldout_ones():
    pools = procedural.TRAINING_POOLS
    for field in ("key_adjectives", "key_nouns", "names", "attributes"):
        assert not set(getattr(pools, field)) & set(getattr(HELDOUT, field)), field
    assert len(pools.names) > 700 and len(pools.attributes) > 150
    assert not {attribute for attribute, _ in pools.attributes} & {a for a, _ in HELDOUT.attributes}


def test_letter_names_are_distinct_readable_and_not_held_out():
    names = procedural.made_up_names(2000, "test")
    assert len(set(names)) == 2000 and all(n[0].isupper() and n[1:].islower() for n in names)
    assert not any(re.search("[aeiouy]{3}", n.lower()) for n in names)
    assert not {n.lower() for n in names} & {n.lower() for n in HELDOUT.names}


def test_composed_needles_state_subject_and_value_once_in_either_order():
    from training.needle_grammar import composed_statement

    rng = random.Random(2)
    statements = [composed_statement(rng) for _ in range(3000)]
    for statement in statements:
        assert statement.count("{subject}") == 1 and statement.count("{value}") == 1, statement
        assert not re.search(KEY, statement.replace("{subject}", "").replace("{value}", ""))
    value_first = [s for s in statements if s.index("{value}") < s.index("{subject}")]
    assert 0.3 < len(value_first) / len(statements) < 0.6
    assert any(not s.endswith(("{value}", "{subject}")) for s in statements)  # words after it
    assert len(set(statements)) > 1000


def test_filler_words_range_from_all_train_words_to_none():
    """A filler's words are drawn per conversation: some fillers speak only train words, some
    none, so an unfamiliar word is no sign of a needle."""
    from shadowkv_engine.eval import words

    shares = []
    for i in range(300):
        lexicon = ProceduralFiller(f"lexicon/{i}").lexicon
        shares.append(sum(n in words.NOUNS for n in lexicon.nouns) / len(lexicon.nouns))
        assert len(set(lexicon.nouns)) == len(lexicon.nouns) >= 8
    assert max(shares) == 1.0 and min(shares) == 0.0
    assert 0.2 < sum(s == 0.0 for s in shares) / len(shares) < 0.35


def test_invented_formats_differ_from_conversation_to_conversation():
    lines = {}
    for i in range(300):
        filler = ProceduralFiller(f"invented/{i}")
        if filler.format in ("phrasebook", "symbolic"):
            lines.setdefault(filler.format, set()).add(filler.units(1)[0])
    assert len(lines["phrasebook"]) > 50 and len(lines["symbolic"]) > 50


def rendered(statement: str) -> str:
    """A composed statement with each slot once, as a needle sentence about "the code" 4821."""
    assert statement.count("{subject}") == 1 and statement.count("{value}") == 1, statement
    return needle_sentence(statement[:1].upper() + statement[1:] + ".", "the code", "4821")


def test_interrupted_needles_put_words_between_subject_and_value():
    from training.needle_grammar import composed_statement, interrupted

    rng = random.Random(4)
    for _ in range(500):
        sentence = rendered(interrupted(composed_statement(rng), rng))
        last = max(sentence.index("the code"), sentence.index("4821"))
        assert "," in sentence[:last], sentence  # an aside or a circumstance comes first


def test_some_needles_set_their_value_off_by_punctuation():
    """A wrapped value ("the code is (4821)") is still a needle: about WRAPPED_RATE of made-up
    needles wrap it, each form renders, and the value inside is exact."""
    rng = random.Random(5)
    templates = [procedural.needle_template(rng) for _ in range(2000)]
    sentences = [needle_sentence(t, "the code", "4821") for t in templates]
    wrapped = [s for s in sentences
               if re.search(r"""["'(\[<`*]\s?4821|4821\s?["')\]>`*]""", s.split(".")[0])]
    assert 0.2 < len(wrapped) / len(sentences) < 0.45, len(wrapped)
    assert all(re.search(r"(?<!\d)4821(?!\d)", s) for s in sentences)
    assert len({re.search(r"(\S*)4821(\S*)", s).groups() for s in wrapped}) >= 8


def test_distant_needles_put_a_dozen_words_between_subject_and_value():
    from training.needle_grammar import composed_statement, distant

    rng = random.Random(6)
    for _ in range(500):
        sentence = rendered(distant(composed_statement(rng), rng))
        first, last = sorted((sentence.index("the code"), sentence.index("4821")))
        assert len(sentence[first:last].split()) >= 10, sentence
        assert not re.search(KEY, sentence.replace("4821", "")), sentence
    assert distant("Remember {value}", rng) == "Remember {value}"  # nothing to be far from


def test_some_needles_label_their_value_or_set_it_far_from_its_subject():
    """About LABELLED_RATE of made-up needles name a label right before the value ("ticket
    4821"), about DISTANT_RATE put a dozen words or more between subject and value, and the
    value stays exact in every one."""
    from training.needle_grammar import VALUE_LABELS

    rng = random.Random(8)
    sentences = [needle_sentence(procedural.needle_template(rng), "the code", "4821").lower()
                 for _ in range(3000)]
    labels = "|".join(VALUE_LABELS)
    labelled = [s for s in sentences if re.search(rf"\b(?:{labels.lower()})\W{{0,3}}4821", s)]
    distant = [s for s in sentences
               if len(s[s.index("the code"):s.index("4821")].split()) >= 12
               or len(s[s.index("4821"):s.index("the code")].split()) >= 12]
    # "the code: 4821" counts as labelled too: about 2% of needles without any label added
    assert procedural.LABELLED_RATE < len(labelled) / len(sentences) < procedural.LABELLED_RATE + 0.05
    assert 0.6 * procedural.DISTANT_RATE < len(distant) / len(sentences) < 1.4 * procedural.DISTANT_RATE
    assert all(re.search(r"(?<!\d)4821(?!\d)", s) for s in sentences)
