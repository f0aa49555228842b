"""Fidelity of ShadowKV decode attention on synthetic inputs with planted structure.

Pre-RoPE keys are low-rank plus noise (the property ShadowKV relies on); a few "needle" chunks
hold keys aligned with the query, so exact attention concentrates on them. One sequence is
prefilled and compressed through the real cache code, then one decode step runs; we compare its
output with exact attention over every key and its selected chunks with the exact top-k chunks.
"""
from dataclasses import dataclass

import torch

from ..config import EngineConfig, ShadowKVConfig
from ..kv import compression
from ..kv.attention import attend
from ..kv.attention_torch import TorchAttention
from ..kv.page_pool import PagePool
from ..kv.sequence_kv import SequenceKV
from ..kv.sparse_state import SparseDecodeState
from ..kv.step_attention import StepAttention
from ..kv.step_metadata import DecodeRow, StepMetadataBuilder
from ..kv.storage import KVStorage, PageLayout
from ..kv.value_pool import TieredValuePool
from ..model.rope import (RotaryEmbedding, apply_rope, inverse_frequencies, signed_sin,
                          undo_rope)


@dataclass
class FidelityReport:
    context: int
    relative_error: float  # |out - exact| / |exact|, decode attention output, all heads
    topk_recall: float  # selected chunks among the exact top-k (non-outlier) chunks, mean
    needles_selected: int  # needle chunks attended exactly (selected or outlier), all heads
    needles_total: int
    hit_rate_second_step: float  # chunks reused from the first decode step in the second


def run_fidelity(context: int = 8192, cfg: ShadowKVConfig | None = None, kv_heads: int = 8,
                 group: int = 4, head_dim: int = 128, key_rank: int = 48, num_needles: int = 4,
                 seed: int = 0, device: str = "cpu") -> FidelityReport:
    cfg = (cfg or ShadowKVConfig(min_context_len=0)).for_model(kv_heads, head_dim)
    g = torch.Generator().manual_seed(seed)
    dev = torch.device(device)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(dev)

    key_dim = kv_heads * head_dim
    k_pre = (randn(context, key_rank) @ randn(key_rank, key_dim) / key_rank ** 0.5
             + 0.05 * randn(context, key_dim)).view(context, kv_heads, head_dim)
    values = randn(context, kv_heads, head_dim)
    query_dir = randn(kv_heads, head_dim)
    query_dir /= query_dir.norm(dim=-1, keepdim=True)
    num_chunks = context // cfg.chunk_size
    needles = torch.randperm(num_chunks - 2 * cfg.local_chunks, generator=g)[:num_needles]

    rotary = RotaryEmbedding(inverse_frequencies(head_dim, 500000.0, None, context + 2,
                                                 context + 2)).to(dev)
    positions = torch.arange(context + 2, device=dev)
    cos, sin = rotary.cos_sin(positions, torch.float32)
    # Needle keys point (after RoPE at their own position) where the query will look.
    k_post = apply_rope(k_pre, cos[:context], signed_sin(sin[:context]))
    for chunk in needles.tolist():
        rows = slice(chunk * cfg.chunk_size, (chunk + 1) * cfg.chunk_size)
        k_post[rows] = 45.0 * query_dir + 0.5 * randn(cfg.chunk_size, kv_heads, head_dim)
    k_pre = undo_rope(k_post, cos[:context], sin[:context])

    layout = PageLayout(1, kv_heads, head_dim, block_size=max(16, cfg.chunk_size))
    gpu_pages = 4 * (context // layout.block_size) + 64
    storage = KVStorage(layout, gpu_pages, context // layout.block_size + 8, torch.float32, dev,
                        cfg.rank)
    state = SparseDecodeState(1, 1, kv_heads, cfg, dev)
    kv = SequenceKV(storage, PagePool("gpu", gpu_pages, first_id=1),
                    TieredValuePool(storage.values.shape[0], 0), cfg, compress_at=context,
                    slot=0)
    kv.grow(kv.plan_growth(context))
    pages, rows = (torch.from_numpy(a).to(dev) for a in kv.tokens.slots(0, context))
    storage.kv[pages.long(), 0, 0, :, rows] = k_post
    storage.kv[pages.long(), 0, 1, :, rows] = values
    kv.advance(context)
    compression.compress([kv], rotary, state)
    engine_config = EngineConfig(model="synthetic", device=device, attention="shadowkv",
                                 shadowkv=cfg, max_num_seqs=1, max_num_batched_tokens=16)
    builder = StepMetadataBuilder(engine_config, storage, context + 8, 1)
    backend = TorchAttention(storage, None)

    first = None
    for step in range(2):
        position = context + step
        q = (query_dir[:, None, :] + 0.3 * randn(kv_heads, group, head_dim)).reshape(
            1, kv_heads * group, head_dim) * 2.0
        new_pre = randn(1, kv_heads, head_dim)
        new_k = apply_rope(new_pre, cos[position:position + 1],
                           signed_sin(sin[position:position + 1]))
        new_v = randn(1, kv_heads, head_dim)
        kv.grow(kv.plan_growth(1))
        meta = builder.build([DecodeRow(kv, 0, position)], [], 1, state.dummy_slot)
        backend.begin_step(meta)
        out = StepAttention(meta, storage, backend, state, cfg, rotary.inv_freq).attend(
            0, q, new_pre, new_k, new_v)
        kv.shadow.chunks_selected += kv.shadow.num_selected * kv_heads
        kv.advance(1)
        if kv.shadow.folds_after(0):
            compression.fold([kv])
        k_post = torch.cat([k_post, new_k])
        values = torch.cat([values, new_v])
        exact = attend(q, k_post.transpose(0, 1), values.transpose(0, 1))
        if first is None:
            first = (out, exact, q, state.resident[0, 0].clone(), kv.shadow.n_chunks)

    shadow = kv.shadow
    out, exact, q, resident, compressed_chunks = first
    error = float((out - exact).norm() / exact.norm())
    selected = [set(resident[h][resident[h] >= 0].tolist()) for h in range(kv_heads)]
    outliers = [set(state.outliers[0, 0, h, :shadow.n_out].tolist()) for h in range(kv_heads)]
    recall = _topk_recall(q, k_post[:context], cfg, selected, outliers, compressed_chunks)
    found = sum(int(c in selected[h] or c in outliers[h]) for h in range(kv_heads)
                for c in needles.tolist())
    selected_total, hits = shadow.chunks_selected, state.read_counters(0)[0]
    second = selected_total / 2
    hit_rate = hits / second if second else 0.0
    kv.free()
    return FidelityReport(context, error, recall, found, kv_heads * num_needles, hit_rate)


def _topk_recall(q, keys, cfg, selected, outliers, num_chunks) -> float:
    """Exact attention mass per compressed chunk (max over the GQA group), top-k among the
    non-outliers: the chunks selection chooses from."""
    heads, dim = keys.shape[1], keys.shape[2]
    group = q.shape[1] // heads
    qh = q[0].view(heads, group, dim)
    probs = torch.softmax(torch.einsum("hgd,shd->hgs", qh, keys) / dim ** 0.5, dim=-1)
    # (the softmax runs over every key; the mass kept is that of the compressed chunks)
    mass = probs[..., : num_chunks * cfg.chunk_size].view(heads, group, num_chunks, -1).sum(-1)
    mass = mass.amax(dim=1)
    recalls = []
    for h in range(heads):
        for c in outliers[h]:
            mass[h, c] = -1.0
        k = min(cfg.budget_chunks, len(selected[h]))
        top = set(mass[h].topk(k).indices.tolist())
        recalls.append(len(top & selected[h]) / max(1, len(top)))
    return sum(recalls) / len(recalls)
