"""The decoder's shape, read from a Hugging Face `config.json`."""
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import MODEL_RECOMMENDABLE, ShadowKVConfig
from ..errors import InvalidRequestError

# Architectures that share the Llama decoder; Yi checkpoints use LlamaForCausalLM.
SUPPORTED_ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
}

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ModelConfig:
    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict | None
    max_position_embeddings: int
    attention_bias: bool
    mlp_bias: bool
    tie_word_embeddings: bool
    sliding_window: int | None
    torch_dtype: torch.dtype
    bos_token_id: int | None = None
    eos_token_ids: list[int] = field(default_factory=list)
    # ShadowKV options the checkpoint recommends for itself (config.json "shadowkv_defaults",
    # e.g. {"landmark": "minmax", "rank": 64}): what an engine uses where its config leaves them
    # unset (ShadowKVConfig.for_model).
    shadowkv_defaults: dict = field(default_factory=dict)

    @property
    def key_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "ModelConfig":
        config_file = Path(path) / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"no config.json in model directory {path}")
        try:
            raw = json.loads(config_file.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{config_file} is not valid JSON: {e}") from e
        return cls.from_dict(raw, source=str(config_file))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config") -> "ModelConfig":
        archs = raw.get("architectures") or []
        arch = next((a for a in archs if a in SUPPORTED_ARCHITECTURES), None)
        if arch is None:
            raise ValueError(
                f"unsupported model architecture {archs or raw.get('model_type')!r} in {source}; "
                f"supported: {sorted(SUPPORTED_ARCHITECTURES)}")
        family = SUPPORTED_ARCHITECTURES[arch]
        try:
            num_heads = raw["num_attention_heads"]
            hidden = raw["hidden_size"]
            head_dim = raw.get("head_dim") or hidden // num_heads
            eos = raw.get("eos_token_id")
            rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
            rope_theta = rope.get("rope_theta", raw.get("rope_theta", 10000.0))
            scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
            if scaling.get("type") and not scaling.get("rope_type"):
                scaling["rope_type"] = scaling["type"]
            if scaling.get("rope_type", "default") == "default":
                scaling = None
            sliding = raw.get("sliding_window")
            if family == "qwen2" and not raw.get("use_sliding_window", False):
                sliding = None
            dtype_name = raw.get("torch_dtype") or raw.get("dtype") or "float32"
            return cls(
                architecture=arch,
                vocab_size=raw["vocab_size"],
                hidden_size=hidden,
                intermediate_size=raw["intermediate_size"],
                num_layers=raw["num_hidden_layers"],
                num_heads=num_heads,
                num_kv_heads=raw.get("num_key_value_heads") or num_heads,
                head_dim=head_dim,
                rms_norm_eps=raw.get("rms_norm_eps", 1e-6),
                rope_theta=float(rope_theta),
                rope_scaling=scaling,
                max_position_embeddings=raw.get("max_position_embeddings", 4096),
                attention_bias=raw.get("attention_bias", family == "qwen2"),
                mlp_bias=raw.get("mlp_bias", False),
                tie_word_embeddings=raw.get("tie_word_embeddings", False),
                sliding_window=sliding,
                torch_dtype=TORCH_DTYPES.get(dtype_name, torch.float32),
                bos_token_id=raw.get("bos_token_id"),
                eos_token_ids=[] if eos is None else ([eos] if isinstance(eos, int) else list(eos)),
                shadowkv_defaults=_shadowkv_defaults(raw.get("shadowkv_defaults"), source),
            )
        except KeyError as e:
            raise ValueError(f"{source} lacks the required field {e.args[0]!r}") from e


def _shadowkv_defaults(values, source: str) -> dict:
    """The checkpoint's recommended ShadowKV options, checked as an engine config's would be."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"shadowkv_defaults in {source} must be a mapping, got {values!r}")
    others = sorted(set(values) - set(MODEL_RECOMMENDABLE))
    if others:
        raise ValueError(f"shadowkv_defaults in {source} may set only {list(MODEL_RECOMMENDABLE)}, "
                         f"not {others}")
    try:
        ShadowKVConfig(**values)
    except InvalidRequestError as e:
        raise ValueError(f"shadowkv_defaults in {source}: {e}") from None
    return dict(values)
