"""Bytes per decode step against numbers worked out by hand for Llama-3.1-8B (bf16)."""
import pytest
from shadowkv_engine.bench.roofline import ModelShape, SparseSettings, dense_step, projected_ratio, shadowkv_step

LLAMA_8B = ModelShape.from_config(dict(
    num_hidden_layers=32, hidden_size=4096, intermediate_size=14336, num_attention_heads=32,
    num_key_value_heads=8, head_dim=128, vocab_size=128256))
PAPER = SparseSettings(rank=160)  # chunk 8, budget 2048, 48 outlier chunks, 4 local chunks
GB = 1e9


def test_model_sizes():
    # 218,103,808 parameters per layer; the checkpoint's 8.03 B parameters are 16.06 GB, of which
    # a decode step reads all but the embedding table (128256 x 4096): 15.01 GB.
    assert LLAMA_8B.layer_params == 218_103_808
    assert LLAMA_8B.params * 2 / GB == pytest.approx(16.06, abs=0.005)
    assert LLAMA_8B.weight_bytes(2) == 15_009_316_864
    assert LLAMA_8B.kv_bytes_per_token(2) == 128 * 1024


def test_dense_step_32k_batch_8():
    step = dense_step(LLAMA_8B, batch=8, context=32768, itemsize=2)
    assert step.parts["kv"] == 8 * 32768 * 131072  # 34.36 GB
    assert step.hbm == 15_009_316_864 + 34_359_738_368
    assert step.pcie == 0
    # at 4.8 TB/s: 10.29 ms a step, 778 tokens/s
    assert step.tokens_per_s(8, 4.8e12, 50e9) == pytest.approx(777.8, abs=0.1)


def test_shadowkv_layout_at_32k():
    # (32768 - 32) // 8 chunks; 48 outliers; 256 chunks selected; 32 tail tokens
    assert PAPER.layout(32768) == (4092, 48, 2048, 32)
    # a short context selects what is left after the outliers
    assert PAPER.layout(1024) == (124, 48, 608, 32)


def test_shadowkv_step_32k_batch_8_all_miss():
    step = shadowkv_step(LLAMA_8B, PAPER, batch=8, context=32768, miss=1.0, itemsize=2)
    per_layer = {"landmarks": 4092 * 2048, "coefficients": 2048 * 8 * 160 * 2,
                 "basis": 8 * 160 * 128 * 2, "rebuilt_keys": 2048 * 2048,
                 "fetched_values": 2048 * 2048, "attention": 2 * (384 + 2048 + 32) * 2048}
    assert sum(per_layer.values()) == 32_432_128
    for name, value in per_layer.items():
        assert step.parts[name] == value * 8 * 32
    assert step.hbm == 15_009_316_864 + 32_432_128 * 256
    assert step.pcie == 2**30  # 1 GiB of values: PCIe binds at 21.5 ms a step
    assert step.seconds(4.8e12, 50e9) == pytest.approx(2**30 / 50e9)


def test_shadowkv_misses_scale_the_fetch_only():
    hit = shadowkv_step(LLAMA_8B, PAPER, 8, 32768, miss=0.4, itemsize=2)
    cold = shadowkv_step(LLAMA_8B, PAPER, 8, 32768, miss=1.0, itemsize=2)
    assert hit.pcie == pytest.approx(0.4 * cold.pcie)
    assert hit.parts["landmarks"] == cold.parts["landmarks"]
    assert hit.parts["attention"] == cold.parts["attention"]
    assert hit.parts["coefficients"] == pytest.approx(0.4 * cold.parts["coefficients"])


def test_minmax_landmarks_double_the_landmark_read_only():
    mean = shadowkv_step(LLAMA_8B, PAPER, 8, 32768, miss=0.4, itemsize=2)
    minmax = shadowkv_step(LLAMA_8B, SparseSettings(rank=160, landmark_rows=2), 8, 32768,
                           miss=0.4, itemsize=2)
    assert minmax.parts["landmarks"] == 2 * mean.parts["landmarks"] == 2 * 4092 * 2048 * 8 * 32
    assert minmax.hbm - mean.hbm == mean.parts["landmarks"]  # 2.1 GB more a step
    assert minmax.pcie == mean.pcie


def test_projected_ratio_at_122k():
    # dense at batch 3 reads 15.01 GB + 3 x 16.1 GB; ShadowKV at batch 14, 60% hits, is PCIe
    # bound: 14 x 32 x 0.4 x 4 MiB = 751.6 MB at 50 GB/s
    bw = (4.8e12, 50e9)
    dense = dense_step(LLAMA_8B, 3, 122880, 2)
    sparse = shadowkv_step(LLAMA_8B, PAPER, 14, 122880, 0.4, 2)
    expected = sparse.tokens_per_s(14, *bw) / dense.tokens_per_s(3, *bw)
    assert projected_ratio(LLAMA_8B, PAPER, 122880, 3, 14, 0.6, 2, *bw) == pytest.approx(expected)
    assert sparse.pcie == pytest.approx(14 * 32 * 0.4 * 4 * 2**20)
    assert expected == pytest.approx((14 / (sparse.pcie / 50e9)) / (3 / (dense.hbm / 4.8e12)))
