"""Chunk selection: the k best selectable chunks of each row, -1 where fewer are selectable."""
import torch

from shadowkv_engine.ops import select_top_chunks


def test_selects_the_best_and_pads_with_minus_one():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(6, 50, generator=g)
    scores[1, 10:] = float("-inf")  # 10 selectable chunks, k = 16
    scores[2] = float("-inf")
    got = select_top_chunks(scores, 16)
    assert got.dtype == torch.int32 and got.shape == (6, 16)
    for row in range(6):
        finite = scores[row].isfinite()
        want = scores[row].topk(min(16, int(finite.sum()))).indices.tolist() if finite.any() else []
        picked = [c for c in got[row].tolist() if c >= 0]
        assert sorted(picked) == sorted(want)
        assert got[row].tolist().count(-1) == 16 - len(want)


def test_k_larger_than_the_row():
    scores = torch.tensor([[0.5, float("-inf"), 0.1]])
    assert sorted(select_top_chunks(scores, 5)[0].tolist()) == [-1, -1, -1, 0, 2]


def test_equal_scores_go_to_the_lower_chunk_id_and_nan_is_never_selected():
    scores = torch.tensor([[0.2, 0.5, 0.2, 0.2, float("nan"), 0.5, -0.0, 0.0]])
    assert select_top_chunks(scores, 4)[0].tolist() == [1, 5, 0, 2]
    # -0.0 and 0.0 are equal: the lower id first
    assert sorted(select_top_chunks(scores, 7)[0].tolist()) == [0, 1, 2, 3, 5, 6, 7]
