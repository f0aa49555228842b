"""The decoder layer's fused ops (ops/model_fusions.py): the twins equal the unfused formulas and
the model's code before the fusion (CPU), and the CUDA ops equal the twins (GPU): bit for bit,
except rms_norm on inputs whose float sum of squares depends on the summation order."""
import pytest
import torch
import torch.nn.functional as F

from shadowkv_engine.model.config import ModelConfig
from shadowkv_engine.model.llama import LlamaForCausalLM
from shadowkv_engine.model.rope import RotaryEmbedding, apply_rope, inverse_frequencies, signed_sin
from shadowkv_engine.ops import model_fusions
from shadowkv_engine.ops.model_fusions import (fused_add_rms_norm, fused_add_rms_norm_torch,
                                               rms_norm, rms_norm_torch, rope_qk, rope_qk_torch,
                                               silu_and_mul, silu_and_mul_torch, store_kv,
                                               store_kv_torch)
from paged_case import needs_cuda_ops

HALF_DTYPES = [torch.bfloat16, torch.float16]
DTYPES = [torch.bfloat16, torch.float16, torch.float32]
TOKENS = [1, 3, 8, 300]
# How far an output of the CUDA rms_norm may be from torch's, relative: one ulp in 16-bit dtypes
# (an rstd a float bit apart flips a rounding), a few float ulps of the sum in float32.
NORM_RTOL = {torch.bfloat16: 2.0 ** -7, torch.float16: 2.0 ** -10, torch.float32: 4e-6}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rope_inputs(tokens, q_heads, kv_heads, head_dim, dtype, seed, device="cpu"):
    """The qkv projection's output viewed [T, Hq + 2Hk, D] and the q/k part of it (strided, as
    Attention.forward passes it), with cos/sin of random positions up to 128K."""
    g = gen(seed)
    qkv = torch.randn(tokens, q_heads + 2 * kv_heads, head_dim, generator=g).to(dtype)
    positions = torch.randint(0, 131072, (tokens,), generator=g)
    rotary = RotaryEmbedding(inverse_frequencies(head_dim, 500000.0, None, 131072, 131072))
    cos, sin = rotary.cos_sin(positions, dtype)
    qkv, cos, sin = qkv.to(device), cos.to(device), signed_sin(sin).to(device)
    return qkv[:, :q_heads + kv_heads], cos, sin


def exact_sum_rows(tokens, dim, dtype, g):
    """Multiples of 1/4 in [-2, 2]: every square and partial sum of squares (of these or of the
    sum of two of them) is exact in float, so any summation order gives the same rstd."""
    return (torch.randint(-8, 9, (tokens, dim), generator=g) / 4).to(dtype)


def norm_weight(dim, dtype, g):
    return (1 + 0.3 * torch.randn(dim, generator=g)).to(dtype)


def assert_norms_close(got, want, dtype):
    """Within NORM_RTOL; in 16-bit dtypes almost every output bit-equal besides (an rstd a
    float bit apart moves an output only where it lies next to a rounding boundary)."""
    torch.testing.assert_close(got, want, rtol=NORM_RTOL[dtype], atol=0)
    if dtype != torch.float32:
        assert int((got != want).sum()) <= max(1, got.numel() // 1000)


def kv_case(tokens, heads, head_dim, dtype, seed, index_dtype=torch.long, padding=0,
            device="cpu"):
    """A NaN-poisoned cache [pages, L, 2, H, bs, D], k and v strided views of a qkv output, and
    shuffled distinct slots off the null page; the last `padding` tokens write the null page's
    row 0 as a captured batch's padding rows do."""
    g = gen(seed)
    layers, block_size, q_heads = 3, 16, 2 * heads
    pages = 1 + (tokens + block_size - 1) // block_size + 3
    kv = torch.full((pages, layers, 2, heads, block_size, head_dim), float("nan"), dtype=dtype)
    qkv = torch.randn(tokens, q_heads + 2 * heads, head_dim, generator=g).to(dtype)
    k, v = qkv[:, q_heads:q_heads + heads], qkv[:, q_heads + heads:]
    slots = torch.randperm((pages - 1) * block_size, generator=g)[:tokens] + block_size
    page_ids, rows = slots // block_size, slots % block_size
    if padding:
        page_ids[-padding:], rows[-padding:] = 0, 0
    to = dict(device=device)
    return (kv.to(**to), k.to(**to), v.to(**to), page_ids.to(index_dtype).to(**to),
            rows.to(index_dtype).to(**to))


# ---- CPU: the twins are the unfused formulas ---------------------------------------------------

@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("head_dim", [64, 128])
def test_rope_twin_rounds_like_the_formula(dtype, head_dim):
    """x * cos rounded to the dtype, then + roll(x) * sin in float, rounded once: the rounding
    the CUDA kernel transcribes."""
    qk, cos, sin = rope_inputs(300, 8, 2, head_dim, dtype, seed=0)
    q, k = rope_qk_torch(qk, cos, sin, 8)
    x = qk.float()
    t = (x * cos.float()[:, None]).to(dtype).float()
    want = (t + x.roll(head_dim // 2, dims=-1) * sin.float()[:, None]).to(dtype)
    assert q.is_contiguous() and q.shape == (300, 8, head_dim) and k.shape == (300, 2, head_dim)
    assert torch.equal(q, want[:, :8]) and torch.equal(k, want[:, 8:])


def test_rope_twin_is_the_rotation():
    qk, cos, sin = rope_inputs(8, 4, 2, 64, torch.float32, seed=1)
    half = 32
    rotated = torch.cat((-qk[..., half:], qk[..., :half]), dim=-1)
    plain_sin = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)  # signed_sin undone
    want = qk * cos[:, None] + rotated * plain_sin[:, None]
    q, k = rope_qk_torch(qk, cos, sin, 4)
    torch.testing.assert_close(torch.cat((q, k), dim=1), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_silu_and_mul_twin_rounds_silu_first(dtype):
    """silu in float rounded to the dtype, then the product in float rounded once. (The CUDA
    kernel's silu is torch's CUDA formula, x / (1 + expf(-x)); torch's CPU silu differs from it
    in float32's last bit, so the float formula here is torch's own.)"""
    gate_up = (3 * torch.randn(300, 2 * 128, generator=gen(2))).to(dtype)
    gate, up = gate_up.float().chunk(2, dim=-1)
    want = (F.silu(gate).to(dtype).float() * up).to(dtype)
    torch.testing.assert_close(silu_and_mul_torch(gate_up), want, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_rms_norm_twin_rounds_once(dtype):
    """weight * (x * rstd) in float, rounded once (not HF's two roundings); the float sums may
    differ from torch's in order, hence one ulp."""
    g = gen(3)
    x = torch.randn(300, 4096, generator=g).to(dtype)
    w = norm_weight(4096, dtype, g)
    xf = x.float()
    rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5)
    want = (w.float() * (rstd * xf)).to(dtype)
    torch.testing.assert_close(rms_norm_torch(x, w, 1e-5), want, rtol=NORM_RTOL[dtype], atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_add_rms_norm_twin_is_add_then_norm_in_place(dtype):
    g = gen(4)
    x, residual = torch.randn(8, 256, generator=g).to(dtype), torch.randn(8, 256, generator=g)
    residual = residual.to(dtype)
    w = norm_weight(256, dtype, g)
    total = x + residual
    want = F.rms_norm(total, (256,), w, 1e-6)
    out, res = fused_add_rms_norm_torch(x, residual, w, 1e-6)
    assert out is x and res is residual
    assert torch.equal(residual, total) and torch.equal(x, want)


def test_store_kv_twin_writes_each_token_row():
    kv, k, v, pages, rows = kv_case(40, 2, 64, torch.bfloat16, seed=5)
    want = kv.clone()
    for t in range(40):
        want[pages[t], 1, 0, :, rows[t]] = k[t]
        want[pages[t], 1, 1, :, rows[t]] = v[t]
    store_kv_torch(kv, k, v, pages, rows, 1)
    torch.testing.assert_close(kv, want, rtol=0, atol=0, equal_nan=True)


def test_wrappers_run_the_twins_on_cpu():
    qk, cos, sin = rope_inputs(3, 4, 2, 64, torch.bfloat16, seed=6)
    for got, want in zip(rope_qk(qk, cos, sin, 4), rope_qk_torch(qk, cos, sin, 4)):
        assert torch.equal(got, want)
    x = torch.randn(3, 64, generator=gen(7)).bfloat16()
    w = norm_weight(64, torch.bfloat16, gen(8))
    assert torch.equal(rms_norm(x, w, 1e-5), rms_norm_torch(x, w, 1e-5))
    gate_up = torch.randn(3, 128, generator=gen(9)).bfloat16()
    assert torch.equal(silu_and_mul(gate_up), silu_and_mul_torch(gate_up))


# ---- CPU: the model computes what it computed before the fusion ------------------------------

def tiny_config(**overrides) -> ModelConfig:
    values = dict(architecture="LlamaForCausalLM", vocab_size=256, hidden_size=128,
                  intermediate_size=256, num_layers=3, num_heads=4, num_kv_heads=2, head_dim=32,
                  rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=None,
                  max_position_embeddings=4096, attention_bias=False, mlp_bias=False,
                  tie_word_embeddings=False, sliding_window=None, torch_dtype=torch.bfloat16)
    values.update(overrides)
    return ModelConfig(**values)


def tiny_model(dtype, device="cpu", seed=0, **overrides) -> LlamaForCausalLM:
    model = LlamaForCausalLM(tiny_config(**overrides), 4096)
    g = gen(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.3 if p.dim() == 1 else 0.1
            p.copy_((1.0 if "norm" in name else 0.0) + scale * torch.randn(p.shape, generator=g))
    return model.to(dtype=dtype, device=device)


class CausalAttention:
    """The step's tokens as one causal sequence (GQA), recording the K/V it is given."""

    def __init__(self):
        self.stored = []

    def attend(self, layer, q, k_pre, k, v):
        self.stored.append((layer, k.clone(), v.clone()))
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
        out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1),
                                             v.transpose(0, 1), is_causal=True)
        return out.transpose(0, 1)


def unfused_forward(model, input_ids, positions, attention):
    """The decoder as it was written before the fused ops, line for line."""
    config = model.config
    hq, hk, d = config.num_heads, config.num_kv_heads, config.head_dim

    def norm(module, x):
        return F.rms_norm(x, module.weight.shape, module.weight, module.eps)

    x = model.model.embed_tokens(input_ids)
    cos, sin = model.rotary.cos_sin(positions, x.dtype)
    sin = signed_sin(sin)
    t = x.shape[0]
    for layer in model.model.layers:
        attn = layer.self_attn
        qkv = attn.qkv_proj(norm(layer.input_layernorm, x)).view(t, hq + 2 * hk, d)
        k_pre, v = qkv[:, hq:hq + hk], qkv[:, hq + hk:]
        qk = apply_rope(qkv[:, :hq + hk], cos, sin)
        q, k = qk[:, :hq].contiguous(), qk[:, hq:]
        out = attention.attend(attn.layer, q, k_pre, k, v)
        x = x + attn.o_proj(out.reshape(t, hq * d))
        gate, up = layer.mlp.gate_up_proj(norm(layer.post_attention_layernorm, x)).chunk(2, -1)
        x = x + layer.mlp.down_proj(F.silu(gate) * up)
    return norm(model.model.norm, x)


def token_batch(tokens, seed, device="cpu"):
    g = gen(seed)
    ids = torch.randint(0, 256, (tokens,), generator=g)
    return ids.to(device), torch.arange(tokens).to(device)


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_on_cpu_is_unchanged(dtype):
    model = tiny_model(dtype)
    ids, positions = token_batch(37, seed=1)
    want_attention, got_attention = CausalAttention(), CausalAttention()
    with torch.inference_mode():
        want = unfused_forward(model, ids, positions, want_attention)
    got = model(ids, positions, got_attention)
    assert torch.equal(got, want)
    for (layer, k, v), (want_layer, want_k, want_v) in zip(got_attention.stored,
                                                           want_attention.stored):
        assert layer == want_layer and torch.equal(k, want_k) and torch.equal(v, want_v)


def test_interleaved_micro_batches_on_cpu_are_unchanged():
    """forward_interleaved keeps one (hidden, residual) state per micro-batch."""
    model = tiny_model(torch.bfloat16, seed=2)
    batches = [token_batch(n, seed=n) for n in (5, 11)]
    got = model.forward_interleaved([(ids, pos, CausalAttention()) for ids, pos in batches],
                                    [None, None])
    for (ids, pos), hidden in zip(batches, got):
        with torch.inference_mode():
            assert torch.equal(hidden, unfused_forward(model, ids, pos, CausalAttention()))


# ---- GPU: the CUDA ops equal the twins ---------------------------------------------------------

@needs_cuda_ops
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("head_dim", [64, 128, 256, 72])  # 72: D/2 not whole 16-byte vectors
def test_cuda_rope_qk_equals_twin(dtype, tokens, head_dim):
    qk, cos, sin = rope_inputs(tokens, 32, 8, head_dim, dtype, seed=tokens, device="cuda")
    q, k = rope_qk(qk, cos, sin, 32)  # float32: the twin, on the GPU
    want_q, want_k = rope_qk_torch(qk, cos, sin, 32)
    assert q.is_contiguous() and q.shape == want_q.shape and k.shape == want_k.shape
    assert torch.equal(q, want_q) and torch.equal(k, want_k)


@needs_cuda_ops
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_cuda_rope_qk_unaligned_inputs(dtype):
    """Rows off 16-byte boundaries take the element-wise path, with the same results."""
    qk, cos, sin = rope_inputs(9, 4, 2, 128, dtype, seed=11, device="cuda")
    flat = torch.empty(qk.numel() + 1, dtype=dtype, device="cuda")
    shifted = flat[1:].view(qk.shape).copy_(qk)
    cos_shifted = torch.empty(cos.numel() + 1, dtype=dtype, device="cuda")[1:].view(cos.shape)
    cos_shifted.copy_(cos)
    got = torch.ops.shadowkv.rope_qk(shifted, cos_shifted, sin, 4)
    for g, w in zip(got, rope_qk_torch(qk, cos, sin, 4)):
        assert torch.equal(g, w)


@needs_cuda_ops
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("dim", [64, 128, 4096, 100])  # 100: not whole 16-byte vectors
def test_cuda_rms_norm_equals_twin(dtype, tokens, dim):
    g = gen(tokens * 7 + dim)
    w = norm_weight(dim, dtype, g).cuda()
    # Exact sums of squares: the summation order cannot matter, so the outputs are bit-exact.
    x = exact_sum_rows(tokens, dim, dtype, g).cuda()
    assert torch.equal(rms_norm(x, w, 1e-5), rms_norm_torch(x, w, 1e-5))
    # Random rows: rstd may differ in its last float bit, an output rarely by one ulp.
    x = torch.randn(tokens, dim, generator=g).to(dtype).cuda()
    assert_norms_close(rms_norm(x, w, 1e-5), rms_norm_torch(x, w, 1e-5), dtype)


@needs_cuda_ops
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("dim", [64, 128, 4096, 100])
def test_cuda_fused_add_rms_norm_equals_twin_in_place(dtype, tokens, dim):
    g = gen(tokens * 11 + dim)
    w = norm_weight(dim, dtype, g).cuda()
    for exact in (True, False):
        if exact:
            x, residual = (exact_sum_rows(tokens, dim, dtype, g).cuda() for _ in range(2))
        else:
            x, residual = (torch.randn(tokens, dim, generator=g).to(dtype).cuda()
                           for _ in range(2))
        want_x, want_residual = fused_add_rms_norm_torch(x.clone(), residual.clone(), w, 1e-6)
        x_ptr, residual_ptr = x.data_ptr(), residual.data_ptr()
        out, res = fused_add_rms_norm(x, residual, w, 1e-6)
        assert out is x and res is residual
        assert x.data_ptr() == x_ptr and residual.data_ptr() == residual_ptr
        assert torch.equal(residual, want_residual)  # the add has no order to differ in
        if exact:
            assert torch.equal(x, want_x)
        else:
            assert_norms_close(x, want_x, dtype)


@needs_cuda_ops
def test_cuda_fused_add_rms_norm_strided_rows():
    """Rows with a stride beyond their length (views of a wider buffer) are read and written in
    place; the columns past them stay untouched."""
    g = gen(12)
    dim, dtype = 256, torch.bfloat16
    w = norm_weight(dim, dtype, g).cuda()
    x_buf = exact_sum_rows(8, dim + 64, dtype, g).cuda()
    r_buf = exact_sum_rows(8, dim + 32, dtype, g).cuda()
    x_before, r_before = x_buf.clone(), r_buf.clone()
    x, residual = x_buf[:, :dim], r_buf[:, :dim]
    want_x, want_residual = fused_add_rms_norm_torch(x.clone(), residual.clone(), w, 1e-5)
    fused_add_rms_norm(x, residual, w, 1e-5)
    assert torch.equal(x, want_x) and torch.equal(residual, want_residual)
    assert torch.equal(x_buf[:, dim:], x_before[:, dim:])
    assert torch.equal(r_buf[:, dim:], r_before[:, dim:])
    assert torch.equal(rms_norm(x_before[:, :dim], w, 1e-5),
                       rms_norm_torch(x_before[:, :dim], w, 1e-5))


@needs_cuda_ops
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("inter", [64, 128, 14336, 100])  # 100: not whole 16-byte vectors
def test_cuda_silu_and_mul_equals_twin(dtype, tokens, inter):
    g = gen(tokens + inter)
    gate_up = (4 * torch.randn(tokens, 2 * inter, generator=g)).to(dtype).cuda()
    got = silu_and_mul(gate_up)
    assert got.shape == (tokens, inter) and got.is_contiguous()
    assert torch.equal(got, silu_and_mul_torch(gate_up))
    wide = torch.zeros(tokens, 2 * inter + 64, dtype=dtype, device="cuda")
    wide[:, :2 * inter] = gate_up  # strided rows
    assert torch.equal(silu_and_mul(wide[:, :2 * inter]), silu_and_mul_torch(gate_up))


@needs_cuda_ops
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("index_dtype", [torch.long, torch.int32])
def test_cuda_store_kv_equals_twin(dtype, tokens, head_dim, index_dtype):
    kv, k, v, pages, rows = kv_case(tokens, 8, head_dim, dtype, seed=tokens, device="cuda",
                                    index_dtype=index_dtype)
    want = kv.clone()
    store_kv_torch(want, k, v, pages.long(), rows.long(), 1)
    store_kv(kv, k, v, pages, rows, 1)
    torch.testing.assert_close(kv, want, rtol=0, atol=0, equal_nan=True)
    contiguous_k = k.contiguous()  # as rope_qk hands it over
    store_kv(kv, contiguous_k, v, pages, rows, 2)
    store_kv_torch(want, contiguous_k, v, pages.long(), rows.long(), 2)
    torch.testing.assert_close(kv, want, rtol=0, atol=0, equal_nan=True)


@needs_cuda_ops
def test_cuda_store_kv_padding_rows_share_the_null_slot():
    """Padding rows all write row 0 of the null page: one of their values lands there, as with
    index_put; every other slot is exact."""
    tokens, padding, heads = 8, 3, 2
    kv, k, v, pages, rows = kv_case(tokens, heads, 128, torch.bfloat16, seed=13, padding=padding,
                                    device="cuda")
    want = kv.clone()
    store_kv_torch(want, k, v, pages, rows, 0)
    store_kv(kv, k, v, pages, rows, 0)
    null = (0, 0, slice(None), slice(None), 0)  # [2, H, D] at page 0, layer 0, row 0
    others = torch.ones(kv.shape[:5], dtype=torch.bool, device="cuda")
    others[0, 0, :, :, 0] = False
    torch.testing.assert_close(kv[others], want[others], rtol=0, atol=0, equal_nan=True)
    written = kv[null]  # [2, H, D]
    candidates = torch.stack((k[-padding:], v[-padding:]), dim=1)  # [P, 2, H, D]
    assert (candidates == written[None]).any(0).all()


@needs_cuda_ops
def test_cuda_store_kv_unaligned_rows():
    """k starting off a 16-byte boundary: the copy narrows its accesses, same result."""
    kv, k, v, pages, rows = kv_case(5, 2, 64, torch.float16, seed=14, device="cuda")
    flat = torch.empty(k.numel() + 1, dtype=k.dtype, device="cuda")
    shifted = flat[1:].view(k.shape).copy_(k)
    want = kv.clone()
    store_kv_torch(want, k, v, pages, rows, 1)
    store_kv(kv, shifted, v, pages, rows, 1)
    torch.testing.assert_close(kv, want, rtol=0, atol=0, equal_nan=True)


@needs_cuda_ops
def test_cuda_fusions_replay_from_a_cuda_graph():
    """No host sync or stray allocation breaks capture; a replay on new inputs equals the
    twins run eagerly."""
    dtype, tokens, dim = torch.bfloat16, 8, 4096
    qk, cos, sin = rope_inputs(tokens, 32, 8, 128, dtype, seed=15, device="cuda")
    kv, _, v, pages, rows = kv_case(tokens, 8, 128, dtype, seed=15, device="cuda")
    g = gen(16)
    w = norm_weight(dim, dtype, g).cuda()
    x = exact_sum_rows(tokens, dim, dtype, g).cuda()
    residual = exact_sum_rows(tokens, dim, dtype, g).cuda()
    gate_up = torch.randn(tokens, 2 * 1024, generator=g).to(dtype).cuda()
    outputs = {}

    def step():
        outputs["q"], k = rope_qk(qk, cos, sin, 32)
        store_kv(kv, k, v, pages, rows, 0)
        outputs["normed"] = rms_norm(x, w, 1e-5)
        fused_add_rms_norm(x, residual, w, 1e-5)
        outputs["act"] = silu_and_mul(gate_up)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()  # warm-up outside capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()

    new_qk, new_cos, new_sin = rope_inputs(tokens, 32, 8, 128, dtype, seed=17, device="cuda")
    qk.copy_(new_qk), cos.copy_(new_cos), sin.copy_(new_sin)
    x.copy_(exact_sum_rows(tokens, dim, dtype, g))
    residual.copy_(exact_sum_rows(tokens, dim, dtype, g))
    gate_up.copy_(torch.randn(tokens, 2 * 1024, generator=g).to(dtype))
    want_kv, want_x, want_residual = kv.clone(), x.clone(), residual.clone()
    want_q, want_k = rope_qk_torch(qk, cos, sin, 32)
    store_kv_torch(want_kv, want_k, v, pages, rows, 0)
    want_normed = rms_norm_torch(want_x, w, 1e-5)
    fused_add_rms_norm_torch(want_x, want_residual, w, 1e-5)
    want_act = silu_and_mul_torch(gate_up)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(outputs["q"], want_q)
    torch.testing.assert_close(kv, want_kv, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(outputs["normed"], want_normed)
    assert torch.equal(x, want_x) and torch.equal(residual, want_residual)
    assert torch.equal(outputs["act"], want_act)


@needs_cuda_ops
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_cuda_model_with_fusions_matches_the_twins(dtype, monkeypatch):
    """The whole decoder on the GPU, fused ops against the twins (the model's code before the
    fusion): the same up to rms_norm's rare last-bit differences."""
    model = tiny_model(dtype, device="cuda", seed=3, head_dim=64, num_heads=8, num_kv_heads=2,
                       hidden_size=256, intermediate_size=512)
    ids, positions = token_batch(40, seed=4, device="cuda")
    fused_attention = CausalAttention()
    fused = model(ids, positions, fused_attention)
    with torch.inference_mode():
        unfused = unfused_forward(model, ids, positions, CausalAttention())
    monkeypatch.setattr(model_fusions, "use_cuda_op", lambda *tensors: False)
    twins = model(ids, positions, CausalAttention())
    torch.testing.assert_close(twins, unfused, rtol=0, atol=0)  # the twins are the old code
    torch.testing.assert_close(fused, twins, rtol=3e-2, atol=3e-2)
    assert all(k.is_contiguous() for _, k, _ in fused_attention.stored)


@needs_cuda_ops
def test_cuda_interleaved_micro_batches_on_two_streams():
    """Two micro-batches layer by layer on two streams, with in-place norms on each one's own
    state, give what each gives alone (to GEMM tolerance: cuBLAS promises bit-equal results only
    for one stream)."""
    model = tiny_model(torch.bfloat16, device="cuda", seed=5)
    batches = [token_batch(n, seed=n, device="cuda") for n in (4, 9)]
    alone = [model(ids, pos, CausalAttention()) for ids, pos in batches]
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    for stream in streams:
        stream.wait_stream(torch.cuda.current_stream())
    got = model.forward_interleaved([(ids, pos, CausalAttention()) for ids, pos in batches],
                                    streams)
    for stream in streams:
        torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    for g, a in zip(got, alone):
        torch.testing.assert_close(g, a, rtol=2e-2, atol=2e-2)
