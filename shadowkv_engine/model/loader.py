"""Loads safetensors weights (single file or sharded with an index) into the decoder."""
import json
from pathlib import Path

import torch
from safetensors import safe_open

# Buffers some checkpoints carry that the decoder recomputes itself.
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def weight_files(path: str | Path) -> list[Path]:
    path = Path(path)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise ValueError(f"{index} is not a valid safetensors index: {e}") from e
        files = sorted({path / name for name in weight_map.values()})
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{index} lists shard(s) missing from {path}: {missing}")
        return files
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    raise FileNotFoundError(
        f"no model.safetensors or model.safetensors.index.json in model directory {path}")


def load_weights(model: torch.nn.Module, path: str | Path, tie_word_embeddings: bool) -> None:
    """Copies every checkpoint tensor into `model.checkpoint_tensors()[name]` (a parameter or a
    fused projection's slice), checking names and shapes both ways."""
    params = model.checkpoint_tensors()
    loaded: set[str] = set()
    unexpected: list[str] = []
    for file in weight_files(path):
        try:
            handle = safe_open(str(file), framework="pt")
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise ValueError(f"cannot read weights file {file}: {e}") from e
        with handle:
            for name in handle.keys():
                if name.endswith(IGNORED_SUFFIXES):
                    continue
                param = params.get(name)
                if param is None:
                    unexpected.append(name)
                    continue
                tensor = handle.get_tensor(name)
                if tuple(tensor.shape) != tuple(param.shape):
                    raise ValueError(
                        f"shape mismatch for {name} in {file.name}: checkpoint has "
                        f"{tuple(tensor.shape)}, the model config implies {tuple(param.shape)}")
                with torch.no_grad():
                    param.copy_(tensor.to(param.dtype))
                loaded.add(name)
    if unexpected:
        raise ValueError(f"checkpoint {path} has weights the model does not expect: "
                         f"{sorted(unexpected)[:10]}")
    if tie_word_embeddings and "lm_head.weight" not in loaded:
        loaded.add("lm_head.weight")  # shares the embedding's storage
    missing = sorted(set(params) - loaded)
    if missing:
        raise ValueError(f"checkpoint {path} lacks weights: {missing[:10]}"
                         + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
