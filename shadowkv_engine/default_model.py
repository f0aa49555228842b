"""The model `shadowkv serve` runs when none is named: the project's own small long-context model.

It was trained by `training/train_long_context.py` on synthetic retrieval tasks (docs/accuracy.md)
and ships inside the package, so the main command answers sensibly with nothing to download.
Where the asset is missing (a trimmed install), the random-weight demo model stands in.
"""
from pathlib import Path

DEFAULT_MODEL_NAME = "shadowkv-retrieval-10m"
DEFAULT_MODEL_DIR = Path(__file__).parent / "assets" / "default_model"


def default_model_path() -> Path | None:
    return DEFAULT_MODEL_DIR if (DEFAULT_MODEL_DIR / "model.safetensors").is_file() else None
