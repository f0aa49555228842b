"""Landmark scoring read from the landmark pages: the twin against a float64 reference and the
old gather-then-score path (CPU), and the CUDA op against the twin over a grid of shapes."""
import math

import pytest
import torch

from shadowkv_engine import ops
from shadowkv_engine.kv.storage import PageLayout
from shadowkv_engine.ops.chunk_scores import score_chunks, score_chunks_paged_torch
from shadowkv_engine.ops.paged import gather_head_rows
from paged_case import needs_cuda_ops


def make_scoring_case(batch, group, heads, head_dim, max_chunks, num_excluded, dtype, device,
                      seed, id_dtype=torch.long, block_size=16, layers=2):
    """Landmark pages scattered over a shuffled arena (with spare pages), chunk counts that
    differ per sequence (the first has max_chunks), and excluded ids mixing real ids with ones
    to ignore (-1, past the sequence's end). Never every chunk excluded."""
    gen = torch.Generator().manual_seed(seed)
    layout = PageLayout(layers, heads, head_dim, block_size)
    rows = layout.head_rows_per_page
    cols = max(1, -(-max_chunks // rows))
    ids = torch.randperm(batch * cols + 3, generator=gen)[: batch * cols].int().view(batch, cols)
    n_chunks = torch.randint(1, max_chunks + 1, (batch,), generator=gen, dtype=torch.int32)
    n_chunks[0] = max_chunks
    excluded = torch.full((batch, heads, num_excluded), -1, dtype=id_dtype)
    for b in range(batch):
        n = int(n_chunks[b])
        for h in range(heads):
            real = torch.randperm(n, generator=gen)[: min(num_excluded, n - 1)]
            ignored = torch.tensor([-1, n, n + 5, max_chunks + 7] + [-1] * num_excluded)
            row = torch.cat([real, ignored])[:num_excluded]
            excluded[b, h] = row[torch.randperm(num_excluded, generator=gen)]
    torch.manual_seed(seed)
    arena = torch.randn(batch * cols + 3, layout.page_elems, dtype=dtype, device=device)
    q = 2 * torch.randn(batch, heads * group, head_dim, dtype=dtype, device=device)
    return dict(q=q, head_rows=layout.head_rows_view(arena), lm_pages=ids.to(device),
                n_chunks=n_chunks.to(device), excluded=excluded.to(device), layer=layers - 1,
                max_chunks=max_chunks)


def scores_by_hand(q, head_rows, lm_pages, n_chunks, excluded, layer, max_chunks):
    batch, heads, dim = q.shape[0], head_rows.shape[2], q.shape[2]
    group, rows = q.shape[1] // heads, head_rows.shape[3]
    out = torch.full((batch, heads, max_chunks), float("-inf"), dtype=torch.float64)
    for b in range(batch):
        n = int(n_chunks[b])
        for h in range(heads if n else 0):
            lm = torch.stack([head_rows[int(lm_pages[b, c // rows]), layer, h, c % rows]
                              for c in range(n)]).double()
            logits = q[b, h * group:(h + 1) * group].double() @ lm.T / math.sqrt(dim)
            for c in excluded[b, h].tolist():
                if 0 <= c < n:
                    logits[:, c] = float("-inf")
            out[b, h, :n] = torch.softmax(logits, dim=-1).amax(dim=0)
            for c in excluded[b, h].tolist():
                if 0 <= c < n:
                    out[b, h, c] = float("-inf")  # never selectable
    return out


def assert_scores_match(got, want, tolerance):
    assert not got.isnan().any(), "NaN in the scores (an unwritten or poisoned element)"
    assert torch.equal(got.isneginf(), want.isneginf()), "-inf padding differs"
    finite = ~want.isneginf()
    got, want = got[finite].double(), want[finite].double()
    error = (got - want).norm() / want.norm()
    assert error < tolerance, f"relative error {error:.2e}"
    assert (got - want).abs().max() <= 4 * tolerance * want.abs().max()


@pytest.mark.parametrize("id_dtype", [torch.int32, torch.long])
def test_twin_equals_float64_reference(id_dtype):
    case = make_scoring_case(batch=3, group=3, heads=2, head_dim=16, max_chunks=70,
                             num_excluded=6, dtype=torch.float32, device="cpu", seed=1,
                             id_dtype=id_dtype)
    assert_scores_match(score_chunks_paged_torch(**case), scores_by_hand(**case), 1e-6)


def test_twin_without_excluded_ids_and_with_an_empty_sequence():
    case = make_scoring_case(batch=2, group=2, heads=2, head_dim=8, max_chunks=40,
                             num_excluded=0, dtype=torch.float32, device="cpu", seed=2)
    case["n_chunks"][1] = 0
    got = score_chunks_paged_torch(**case)
    assert got[1].isneginf().all()
    assert_scores_match(got, scores_by_hand(**case), 1e-6)


def test_twin_equals_gather_then_score_chunks():
    """One sequence: exactly what kv/shadowkv.py computed before (gather, then score_chunks)."""
    case = make_scoring_case(batch=1, group=4, heads=2, head_dim=32, max_chunks=100,
                             num_excluded=5, dtype=torch.bfloat16, device="cpu", seed=3)
    excluded = torch.randperm(100)[:5].view(1, 1, 5).repeat(1, 2, 1)
    case["excluded"] = excluded
    landmarks = gather_head_rows(case["head_rows"], case["lm_pages"], case["layer"], 100)[0]
    want = score_chunks(case["q"][0], landmarks, excluded[0])
    assert torch.equal(ops.score_chunks_paged(**case)[0], want)


# (batch, GQA ratio, KV heads, head_dim, max chunks): small and odd chunk counts to 16384.
GRID = [
    (1, 1, 8, 128, 16384),
    (1, 4, 8, 128, 16384),
    (1, 2, 8, 256, 3000),
    (2, 2, 4, 64, 1000),
    (3, 3, 2, 128, 77),
    (4, 8, 1, 64, 4099),
    (5, 7, 1, 128, 1),
    (8, 6, 4, 128, 513),
    (16, 5, 2, 64, 31),
    (32, 4, 8, 128, 2048),
    (32, 8, 2, 64, 16384),
]
GRID_IDS = [f"b{b}-gqa{g}-h{h}-d{d}-n{n}" for b, g, h, d, n in GRID]
TOLERANCE = 1e-5  # float32 logits from the same inputs: only the summation order differs


@needs_cuda_ops
@pytest.mark.parametrize("num_excluded", [0, 48])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("batch,group,heads,head_dim,max_chunks", GRID, ids=GRID_IDS)
def test_cuda_op_equals_twin(batch, group, heads, head_dim, max_chunks, dtype, num_excluded):
    case = make_scoring_case(batch, group, heads, head_dim, max_chunks, num_excluded, dtype,
                             "cuda", seed=hash((batch, group, max_chunks, num_excluded)) % 1000,
                             id_dtype=torch.int32 if batch % 2 else torch.long)
    want = score_chunks_paged_torch(**case)
    got = torch.full((batch, heads, max_chunks), float("nan"), device="cuda")
    args = {k: v for k, v in case.items() if k != "max_chunks"}
    torch.ops.shadowkv.score_chunks_paged(**args, scores=got)
    assert_scores_match(got, want, TOLERANCE)
    assert_scores_match(ops.score_chunks_paged(**case), want, TOLERANCE)


@needs_cuda_ops
@pytest.mark.parametrize("block_size", [4, 48])
def test_cuda_op_pages_of_any_size(block_size):
    """Pages of 8 and 96 landmark rows: fewer rows than a block's pass, and no power of two."""
    case = make_scoring_case(batch=3, group=4, heads=2, head_dim=128, max_chunks=3001,
                             num_excluded=48, dtype=torch.bfloat16, device="cuda", seed=5,
                             block_size=block_size)
    assert_scores_match(ops.score_chunks_paged(**case), score_chunks_paged_torch(**case),
                        TOLERANCE)


@needs_cuda_ops
def test_cuda_op_replays_from_a_cuda_graph():
    case = make_scoring_case(batch=4, group=4, heads=8, head_dim=128, max_chunks=5000,
                             num_excluded=48, dtype=torch.bfloat16, device="cuda", seed=4)
    q = case["q"]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        ops.score_chunks_paged(**case)  # warm-up outside capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        scores = ops.score_chunks_paged(**case)
    q.copy_(torch.randn_like(q))
    # New counts, at least 2500: more chunks than excluded ids in every row.
    case["n_chunks"].copy_(torch.tensor([5000, 2500, 4000, 3333], dtype=torch.int32))
    graph.replay()
    torch.cuda.synchronize()
    assert_scores_match(scores, score_chunks_paged_torch(**case), TOLERANCE)
