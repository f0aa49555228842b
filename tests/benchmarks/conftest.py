"""The benchmark scripts live in benchmarks/ (not a package) and import each other by name."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
