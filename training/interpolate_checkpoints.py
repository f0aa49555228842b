"""A checkpoint part of the way from one exported checkpoint to another, weight by weight:

    python -m training.interpolate_checkpoints --start A --end B --fraction 0.3 --out DIR

writes (1 - fraction) * A + fraction * B. Both must be exports of one model shape with one
tokenizer, and B should continue A (train_long_context --init-from A): weights of one lineage
average into a working model, unrelated ones do not. The shipped model is such a point between two
runs: the later run learned to generalise to new layouts but lost some held-out accuracy, and the
point 30% of the way to it kept the first run's held-out accuracy and most of the gain
(docs/accuracy.md, "Run 13 and the shipped interpolation").

DIR gets B's config and tokenizer files; config.json's shadowkv_training keeps B's summary and
records the interpolation (the fraction and A's summary), so the recipe stays readable from the
checkpoint.
"""
import argparse
import datetime
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
SAME_IN_BOTH = ("tokenizer.json",)  # token ids must mean the same in A and B
COPIED_FROM_END = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def interpolated_weights(start: dict[str, torch.Tensor], end: dict[str, torch.Tensor],
                         fraction: float) -> dict[str, torch.Tensor]:
    """(1 - fraction) * start + fraction * end per tensor, computed in float32 and stored in the
    end checkpoint's dtype."""
    if start.keys() != end.keys():
        only = sorted(start.keys() ^ end.keys())
        raise ValueError(f"the checkpoints hold different tensors (in one only: {only[:5]}); "
                         f"interpolate between checkpoints of one model shape")
    for name in start:
        if start[name].shape != end[name].shape:
            raise ValueError(f"tensor {name} has shape {tuple(start[name].shape)} in the start "
                             f"checkpoint and {tuple(end[name].shape)} in the end one")
    return {name: ((1 - fraction) * start[name].float() + fraction * end[name].float()).to(end[name].dtype)
            for name in end}


def interpolation_summary(start_config: dict, end_config: dict, fraction: float) -> dict:
    """The end run's training summary, with the interpolation recorded beside it."""
    return end_config.get("shadowkv_training", {}) | {"interpolated_from_start": {
        "fraction_of_this_run": fraction,
        "start_run": start_config.get("shadowkv_training", {}),
        "date": datetime.date.today().isoformat()}}


def interpolate(start: Path, end: Path, fraction: float, out: Path) -> Path:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--fraction must lie strictly between 0 and 1 (got {fraction}); at 0 or "
                         f"1 the result is one of the checkpoints, so copy it instead")
    for folder in (start, end):
        missing = [name for name in (WEIGHTS, "config.json", *SAME_IN_BOTH) if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} is not an exported checkpoint: no {', '.join(missing)}")
    for name in SAME_IN_BOTH:
        if json.loads((start / name).read_text()) != json.loads((end / name).read_text()):
            raise ValueError(f"{start / name} and {end / name} differ: the checkpoints use "
                             f"different tokenizers, so their weights cannot be averaged")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder")
    weights = interpolated_weights(load_file(start / WEIGHTS), load_file(end / WEIGHTS), fraction)
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED_FROM_END:
        if (end / name).is_file():
            shutil.copyfile(end / name, out / name)
    end_config = json.loads((end / "config.json").read_text())
    end_config["shadowkv_training"] = interpolation_summary(
        json.loads((start / "config.json").read_text()), end_config, fraction)
    (out / "config.json").write_text(json.dumps(end_config, indent=2) + "\n")
    save_file(weights, out / WEIGHTS, metadata={"format": "pt"})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=Path, required=True, help="the earlier checkpoint (A)")
    parser.add_argument("--end", type=Path, required=True,
                        help="the later checkpoint (B), trained on from A; its config and tokenizer are kept")
    parser.add_argument("--fraction", type=float, required=True,
                        help="how far from A towards B, strictly between 0 and 1")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the result")
    args = parser.parse_args(argv)
    try:
        out = interpolate(args.start, args.end, args.fraction, args.out)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        parser.error(str(error))
    print(f"wrote {out}: {args.fraction:g} of the way from {args.start} to {args.end}")


if __name__ == "__main__":
    main()
