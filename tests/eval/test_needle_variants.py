"""benchmarks/needle_variants.py: one line a variant, counted on the split's own seeds, the
split's pools restored afterwards, and a clear error for a variant without a value slot."""
import runpy
import sys
from pathlib import Path

import pytest

from shadowkv_engine.eval import layouts

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "needle_variants.py"


def run(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    runpy.run_path(str(SCRIPT), run_name="__main__")


def test_each_variant_is_measured_and_the_split_is_restored(monkeypatch, capsys):
    pools = layouts.SPLITS["heldout"]
    run(monkeypatch, "--split", "heldout", "--length", "2k", "--samples", "2", "--tasks",
        "passkey", "--variant", "plain={Subject} is {value}.",
        "--variant", "labelled={Subject} is ticket {value}.")
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["plain", "labelled"]
    assert all(" passkey " in line and "/2" in line for line in lines), lines
    assert layouts.SPLITS["heldout"] is pools


def test_a_variant_without_a_value_slot_is_refused(monkeypatch, capsys):
    with pytest.raises(SystemExit) as stop:
        run(monkeypatch, "--split", "heldout", "--variant", "broken={subject} is unknown.")
    assert stop.value.code == 2
    assert "{value}" in capsys.readouterr().err
