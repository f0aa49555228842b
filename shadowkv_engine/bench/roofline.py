"""Bytes one decode step must move, dense vs ShadowKV, and the step time they allow.

Pure arithmetic (no torch). HBM bytes are read or written in device memory; PCIe bytes are the
values fetched from pinned host memory (`host_share` of the fetched chunks: the rest come from the
value store's device tier, kv/value_pool.py, and count as HBM reads). A step is no faster than the
larger of HBM bytes over the HBM bandwidth and PCIe bytes over the PCIe bandwidth (at best the
fetch overlaps the HBM work).

Weights count once per step (every layer's q, k, v, o, gate, up, down and the LM head; the
embedding table is not read, only one row per sequence; norms are negligible). ShadowKV per
sequence and layer, with `miss` the share of selected chunks not already on the GPU:
landmarks (every chunk's mean key), coefficient rows of the missed chunks (each KV head rebuilds
its own chunks from the layer's shared rank-r rows), the basis, the rebuilt keys and fetched values
written into the slots, and attention's reads of outlier + selected + tail rows (K and V).
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def from_config(cls, config: dict) -> "ModelShape":
        """From a Hugging Face config.json dict (Llama family)."""
        heads = config["num_attention_heads"]
        return cls(layers=config["num_hidden_layers"], hidden=config["hidden_size"],
                   intermediate=config["intermediate_size"], heads=heads,
                   kv_heads=config.get("num_key_value_heads") or heads,
                   head_dim=config.get("head_dim") or config["hidden_size"] // heads,
                   vocab=config["vocab_size"])

    @property
    def layer_params(self) -> int:
        q_o = 2 * self.hidden * self.heads * self.head_dim
        k_v = 2 * self.hidden * self.kv_heads * self.head_dim
        return q_o + k_v + 3 * self.hidden * self.intermediate

    @property
    def params(self) -> int:
        """Matrix parameters of the checkpoint, embedding table included."""
        return self.layers * self.layer_params + 2 * self.vocab * self.hidden

    def weight_bytes(self, itemsize: int) -> int:
        """Weights one decode step reads: all layers and the LM head, not the embedding table."""
        return (self.layers * self.layer_params + self.vocab * self.hidden) * itemsize

    def kv_bytes_per_token(self, itemsize: int) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * itemsize


@dataclass(frozen=True)
class SparseSettings:
    """The ShadowKV values the byte count needs (engine defaults; rank resolved for the model)."""
    rank: int
    chunk_size: int = 8
    sparse_budget: int = 2048
    outlier_chunks: int = 48
    local_chunks: int = 4
    landmark_rows: int = 1  # head rows a chunk's landmark takes: 2 for minmax landmarks

    @classmethod
    def of(cls, config) -> "SparseSettings":
        """From a ShadowKVConfig (or anything with the same attributes)."""
        return cls(config.rank, config.chunk_size, config.sparse_budget, config.outlier_chunks,
                   config.local_chunks, config.landmark_rows)

    def layout(self, context: int) -> tuple[int, int, int, int]:
        """(chunks, outlier chunks, selected tokens, tail tokens) of a sequence of `context`."""
        c = self.chunk_size
        chunks = max(0, (context - self.local_chunks * c) // c)
        outliers = min(self.outlier_chunks, chunks)
        selected = min(self.sparse_budget // c, chunks - outliers) * c
        return chunks, outliers, selected, context - chunks * c


@dataclass
class StepBytes:
    hbm: float
    pcie: float
    parts: dict = field(default_factory=dict)  # HBM bytes by component

    def seconds(self, hbm_bytes_per_s: float, pcie_bytes_per_s: float) -> float:
        return max(self.hbm / hbm_bytes_per_s, self.pcie / pcie_bytes_per_s)

    def tokens_per_s(self, batch: int, hbm_bytes_per_s: float, pcie_bytes_per_s: float) -> float:
        return batch / self.seconds(hbm_bytes_per_s, pcie_bytes_per_s)


def dense_step(shape: ModelShape, batch: int, context: int, itemsize: int) -> StepBytes:
    weights = shape.weight_bytes(itemsize)
    kv = batch * context * shape.kv_bytes_per_token(itemsize)
    return StepBytes(weights + kv, 0.0, {"weights": weights, "kv": kv})


def shadowkv_step(shape: ModelShape, sparse: SparseSettings, batch: int, context: int,
                  miss: float, itemsize: int, host_share: float = 1.0) -> StepBytes:
    chunks, outliers, selected, tail = sparse.layout(context)
    row = shape.kv_heads * shape.head_dim * itemsize  # one token's K (or V) of all KV heads
    per_layer = {
        "landmarks": chunks * row * sparse.landmark_rows,
        "coefficients": miss * selected * shape.kv_heads * sparse.rank * itemsize,
        "basis": shape.kv_heads * sparse.rank * shape.head_dim * itemsize,
        "rebuilt_keys": miss * selected * row,
        "fetched_values": miss * selected * row,
        "device_tier_values": miss * (1.0 - host_share) * selected * row,
        "attention": 2 * (outliers * sparse.chunk_size + selected + tail) * row,
    }
    scale = batch * shape.layers
    parts = {"weights": shape.weight_bytes(itemsize)}
    parts.update({name: value * scale for name, value in per_layer.items()})
    pcie = miss * host_share * selected * row * scale
    return StepBytes(sum(parts.values()), pcie, parts)


def step_bytes(mode: str, shape: ModelShape, sparse: SparseSettings | None, batch: int,
               context: int, miss: float, itemsize: int, host_share: float = 1.0) -> StepBytes:
    """The mode's bytes; a sequence too short to compress decodes dense."""
    if mode == "dense" or sparse is None:
        return dense_step(shape, batch, context, itemsize)
    return shadowkv_step(shape, sparse, batch, context, miss, itemsize, host_share)


def roofline_tokens_per_s(shape: ModelShape, sparse: SparseSettings, context: int,
                          dense_batch: int, sparse_batch: int, hit_rate: float, itemsize: int,
                          hbm_bytes_per_s: float, pcie_bytes_per_s: float,
                          host_share: float = 1.0) -> tuple[float, float]:
    """(dense, ShadowKV) tokens/s, each at its roofline and its own batch."""
    bw = (hbm_bytes_per_s, pcie_bytes_per_s)
    sparse_tps = shadowkv_step(shape, sparse, sparse_batch, context, 1.0 - hit_rate,
                               itemsize, host_share).tokens_per_s(sparse_batch, *bw)
    dense_tps = dense_step(shape, dense_batch, context, itemsize).tokens_per_s(dense_batch, *bw)
    return dense_tps, sparse_tps


def projected_ratio(shape: ModelShape, sparse: SparseSettings, context: int, dense_batch: int,
                    sparse_batch: int, hit_rate: float, itemsize: int, hbm_bytes_per_s: float,
                    pcie_bytes_per_s: float) -> float:
    """ShadowKV tokens/s over dense tokens/s, both at their rooflines."""
    dense_tps, sparse_tps = roofline_tokens_per_s(shape, sparse, context, dense_batch,
                                                  sparse_batch, hit_rate, itemsize,
                                                  hbm_bytes_per_s, pcie_bytes_per_s)
    return sparse_tps / dense_tps
