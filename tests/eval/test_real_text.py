"""The real-text filler: the standard library's paragraphs, none holding held-out material, read
in order from a seeded start, and drawn by the training stream."""
import random

import pytest

from training import layout_documents, real_text
from training.layout_documents import layout_conversation


def test_passages_are_many_paragraphs_of_prose_and_code():
    passages = real_text.passages()
    assert len(passages) > 10_000
    assert all(p.strip() and p.isascii() and len(p) <= real_text.MAX_UNIT_CHARS for p in passages)
    text = "\n".join(passages)
    assert "def " in text and "return" in text  # code
    assert "The " in text and " is " in text  # prose: comments, docstrings, the manual
    assert f"Python {__import__('sys').version_info.major}." in real_text.source()


def test_no_passage_holds_heldout_material(heldout_material):
    bad = [p for p in real_text.passages() if heldout_material(p)]
    assert not bad, (len(bad), heldout_material(bad[0]))


@pytest.mark.parametrize("seed", range(5))
def test_a_filler_reads_on_from_its_start_and_grows_by_prefix(seed):
    filler = real_text.RealTextFiller(f"test/{seed}")
    units = filler.units(300)
    assert filler.units(40) == units[:40]
    passages = real_text.passages()
    start = passages.index(units[0])
    assert units == [passages[(start + i) % len(passages)] for i in range(300)]


def test_fillers_start_at_different_places():
    starts = {real_text.RealTextFiller(f"test/start/{i}").units(1)[0] for i in range(20)}
    assert len(starts) >= 18


def test_the_training_stream_hides_needles_in_real_text(monkeypatch):
    """A share of layout chats read real text, and their needles are in it."""
    made = []
    original = real_text.RealTextFiller

    def recording(seed):
        made.append(original(seed))
        return made[-1]

    monkeypatch.setattr(layout_documents, "RealTextFiller", recording)
    texts = []
    for i in range(200):
        label = f"test/real/{i}"
        texts.append(layout_conversation(random.Random(label), label, 2048).render(40)[0])
    expected = 200 * layout_documents.PROCEDURAL_RATE * layout_documents.REAL_TEXT_RATE
    assert 0.6 * expected < len(made) < 1.4 * expected
    read = {unit for filler in made for unit in filler.units(3)}
    assert sum(any(unit in text for unit in read) for text in texts) >= len(made) * 0.9
