"""Engine and ShadowKV configuration. Every ShadowKV hyperparameter lives here, none in code."""
import math
import os
import types
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .errors import InvalidRequestError


LANDMARKS = ("mean", "minmax")
# What a checkpoint may recommend for itself (config.json "shadowkv_defaults"): the options whose
# best value depends on the model (its key spectrum, how sharply its heads attend), and which a
# config leaves unset (None) until `for_model` resolves them.
MODEL_RECOMMENDABLE = ("rank", "landmark")


@dataclass
class ShadowKVConfig:
    # SVD rank of the pre-RoPE keys over all KV heads of a layer. None: the model's
    # recommendation, else the paper's ratio, 160 of a 1024-wide key (Llama-3-8B), scaled to the
    # model's key dimension.
    rank: int | None = None
    chunk_size: int = 8  # tokens per chunk (landmark granularity)
    sparse_budget: int = 2048  # tokens attended from selected chunks per KV head
    outlier_chunks: int = 48  # chunks kept exact per KV head (lowest key/mean-key cosine)
    local_chunks: int = 4  # most recent chunks kept exact (the local window)
    min_context_len: int = 1024  # shorter sequences stay dense
    # What a chunk's landmark is, and so how selection scores chunks (kv/landmarks.py): "mean"
    # (the paper: the mean of the chunk's post-RoPE keys) or "minmax" (Quest's per-channel
    # minimum and maximum, scored by the bound on the chunk's best key; twice the landmark rows).
    # None: the model's recommendation, else "mean".
    landmark: str | None = None

    def __post_init__(self):
        def check(ok: bool, message: str):
            if not ok:
                raise InvalidRequestError(f"invalid ShadowKV config: {message}", param="shadowkv")

        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "landmark":
                check(value is None or value in LANDMARKS,
                      f"landmark must be one of {', '.join(LANDMARKS)}, got {value!r}")
                continue
            check((isinstance(value, int) and not isinstance(value, bool))
                  or (f.name == "rank" and value is None),
                  f"{f.name} must be an integer, got {value!r}")
        check(self.rank is None or self.rank >= 1, f"rank must be at least 1, got {self.rank}")
        check(self.chunk_size >= 1, f"chunk_size must be at least 1, got {self.chunk_size}")
        check(self.sparse_budget >= self.chunk_size,
              f"sparse_budget ({self.sparse_budget}) must be at least one chunk ({self.chunk_size})")
        check(self.sparse_budget % self.chunk_size == 0,
              f"sparse_budget ({self.sparse_budget}) must be a multiple of chunk_size "
              f"({self.chunk_size})")
        check(self.outlier_chunks >= 0, f"outlier_chunks must be >= 0, got {self.outlier_chunks}")
        check(self.local_chunks >= 1, f"local_chunks must be at least 1, got {self.local_chunks}")
        check(self.min_context_len >= 0,
              f"min_context_len must be >= 0, got {self.min_context_len}")

    @property
    def budget_chunks(self) -> int:
        return self.sparse_budget // self.chunk_size

    @property
    def landmark_rows(self) -> int:
        """Head rows (of head_dim values) one chunk's landmark takes."""
        return 2 if self.landmark == "minmax" else 1

    @property
    def local_tokens(self) -> int:
        return self.local_chunks * self.chunk_size

    def unset_of(self, recommended: dict | None) -> dict:
        """The recommended options this config leaves unset: what `for_model` takes from them."""
        return {name: value for name, value in (recommended or {}).items()
                if getattr(self, name) is None}

    def for_model(self, num_kv_heads: int, head_dim: int,
                  recommended: dict | None = None) -> "ShadowKVConfig":
        """This config resolved for a model: each unset option takes the model's recommendation
        (`recommended`, from its config.json), else the library's default; rejects a rank above
        the key width."""
        key_dim = num_kv_heads * head_dim
        resolved = replace(self, **self.unset_of(recommended))
        if resolved.rank is None:
            resolved = replace(resolved, rank=max(1, round(key_dim * 160 / 1024)))
        if resolved.landmark is None:
            resolved = replace(resolved, landmark="mean")
        if resolved.rank > key_dim:
            raise InvalidRequestError(
                f"invalid ShadowKV config: rank ({resolved.rank}) exceeds the key dimension of "
                f"the model ({num_kv_heads} KV heads x head_dim {head_dim} = {key_dim})",
                param="shadowkv")
        return resolved

    @classmethod
    def from_dict(cls, values: dict | None) -> "ShadowKVConfig":
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidRequestError(
                f"invalid ShadowKV config: unknown option(s) {unknown}; known: {sorted(known)}",
                param="shadowkv")
        return cls(**values)


ATTENTION_MODES = ("dense", "shadowkv")
ATTENTION_BACKENDS = ("auto", "flashinfer", "torch")
DTYPES = ("auto", "float32", "bfloat16", "float16")
TWO_BATCH_OVERLAP = ("auto", "on", "off")


@dataclass
class EngineConfig:
    model: str
    device: str = "auto"  # "cpu", "cuda", "cuda:N" or "auto"
    dtype: str = "auto"  # auto: the checkpoint's torch_dtype on CUDA, float32 on CPU
    attention: str = "shadowkv"
    shadowkv: ShadowKVConfig = field(default_factory=ShadowKVConfig)
    max_model_len: int | None = None  # None: the checkpoint's max_position_embeddings
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048  # per-step token budget (chunked prefill)
    # A prefill chunk takes at most this many tokens of a step while others (a new arrival, a
    # second prefill) want some; alone it takes the whole budget. None: a quarter of the budget.
    long_prefill_token_threshold: int | None = None
    max_queued_requests: int | None = 1024  # waiting requests beyond the free slots; None: no cap
    block_size: int = 16  # tokens per KV page; a multiple of shadowkv.chunk_size
    # GPU KV pool: an explicit page count wins; else a fraction of the free device memory
    # (CUDA) or `cpu_kv_pool_gb` of RAM when the model runs on the CPU.
    num_gpu_blocks: int | None = None
    gpu_memory_utilization: float = 0.9
    cpu_kv_pool_gb: float = 2.0  # device pool size when device is "cpu"
    # Pinned host pool for offloaded values: an explicit page count wins; else this many GB.
    num_cpu_blocks: int | None = None
    cpu_offload_gb: float = 4.0
    # ShadowKV values kept in GPU memory, taken from the KV budget (kv/value_pool.py): GB, 0 for
    # none (every value in host memory, as in the paper), None for the automatic split on CUDA
    # (the one that fits the most sequences of max_model_len; engine/value_tier_plan.py).
    gpu_value_store_gb: float | None = None
    seed: int = 0
    served_model_name: str | None = None
    # "safetensors", or "dummy": random weights of the checkpoint's shapes (config.json only;
    # for throughput benchmarks, as in vLLM).
    load_format: str = "safetensors"
    # Attention kernels: "flashinfer" (paged kernels on the GPU), "torch" (plain-torch paged
    # attention: the CPU path and the fallback), "auto" (flashinfer where it is importable and
    # the model runs on CUDA).
    attention_backend: str = "auto"
    # True: never capture CUDA graphs for the decode step (debugging, A/B comparisons).
    enforce_eager: bool = False
    # True: launch step t+1 before reading step t's tokens (vLLM's async scheduling), so the
    # host's work overlaps the GPU's; a sequence that stops on a token generates one more,
    # dropped. False: every step waits for its own tokens before the next is scheduled.
    async_scheduling: bool = True
    # Decode steps split into two halves on two CUDA streams, so that one half's value fetch over
    # PCIe runs while the other half computes (engine/two_batch.py). "auto": ShadowKV steps of at
    # least two rows of which one reads values from host memory (on a GPU); "on": every decode
    # step of at least two rows (also on the CPU, in turn); "off": never.
    two_batch_overlap: str = "auto"

    def __post_init__(self):
        if isinstance(self.shadowkv, dict):
            self.shadowkv = ShadowKVConfig.from_dict(self.shadowkv)
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        if self.attention not in ATTENTION_MODES:
            raise InvalidRequestError(
                f"attention must be one of {ATTENTION_MODES}, got {self.attention!r}",
                param="attention")
        if self.load_format not in ("safetensors", "dummy"):
            raise InvalidRequestError(
                f"load_format must be 'safetensors' or 'dummy', got {self.load_format!r}",
                param="load_format")
        if self.attention_backend not in ATTENTION_BACKENDS:
            raise InvalidRequestError(
                f"attention_backend must be one of {ATTENTION_BACKENDS}, got "
                f"{self.attention_backend!r}", param="attention_backend")
        if self.two_batch_overlap not in TWO_BATCH_OVERLAP:
            raise InvalidRequestError(
                f"two_batch_overlap must be one of {TWO_BATCH_OVERLAP}, got "
                f"{self.two_batch_overlap!r}", param="two_batch_overlap")
        if self.dtype not in DTYPES:
            raise InvalidRequestError(f"dtype must be one of {DTYPES}, got {self.dtype!r}",
                                      param="dtype")
        for name in ("max_num_seqs", "max_num_batched_tokens", "block_size"):
            if getattr(self, name) < 1:
                raise InvalidRequestError(f"{name} must be at least 1", param=name)
        if self.block_size % self.shadowkv.chunk_size:
            raise InvalidRequestError(
                f"block_size ({self.block_size}) must be a multiple of shadowkv.chunk_size "
                f"({self.shadowkv.chunk_size})", param="block_size")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise InvalidRequestError("gpu_memory_utilization must be in (0, 1]",
                                      param="gpu_memory_utilization")
        if self.long_prefill_token_threshold is not None and self.long_prefill_token_threshold < 1:
            raise InvalidRequestError("long_prefill_token_threshold must be at least 1",
                                      param="long_prefill_token_threshold")
        if self.gpu_value_store_gb is not None and not 0 <= self.gpu_value_store_gb < math.inf:
            raise InvalidRequestError("gpu_value_store_gb must be a finite number >= 0 (or null: "
                                      "automatic)", param="gpu_value_store_gb")
        if self.max_queued_requests is not None and self.max_queued_requests < 0:
            raise InvalidRequestError("max_queued_requests must be >= 0",
                                      param="max_queued_requests")

    @property
    def model_name(self) -> str:
        """What clients send and /v1/models shows: the served name, else the checkpoint folder's
        name (never its path)."""
        return self.served_model_name or Path(self.model).name

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "EngineConfig":
        import yaml

        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as e:
            raise InvalidRequestError(f"config file {path} is not valid YAML: {e}") from None
        if not isinstance(values, dict):
            raise InvalidRequestError(f"config file {path} must hold a mapping of options")
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidRequestError(f"config file {path}: unknown option(s) {unknown}; known: "
                                      f"{sorted(known)}")
        try:
            return cls(**values)
        except InvalidRequestError as e:
            raise InvalidRequestError(f"config file {path}: {e}", param=e.param) from None


def _check_type(name: str, value, annotation) -> None:
    """Rejects a value of the wrong type (a YAML string where a number belongs, a list for the
    shadowkv mapping) with a message naming the option, before any comparison trips on it."""
    allowed = annotation.__args__ if isinstance(annotation, types.UnionType) else (annotation,)
    accepted = tuple(t for a in allowed for t in _ACCEPTED.get(a, (a,)))
    if isinstance(value, accepted) and (bool in allowed or not isinstance(value, bool)):
        return
    wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in allowed)
    raise InvalidRequestError(f"{name} must be {wanted}, got {value!r}", param=name)


_ACCEPTED = {float: (int, float), str: (str, os.PathLike)}  # a model folder may be a Path
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               type(None): "null", ShadowKVConfig: "a mapping of ShadowKV options"}
