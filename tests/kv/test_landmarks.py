"""Chunk landmarks (kv/landmarks.py): what the scoring op computes from them, the minmax bound's
promise, the case it is for."""
import math

import torch

from shadowkv_engine.config import ShadowKVConfig
from shadowkv_engine.kv.landmarks import chunk_landmarks, landmark_queries, landmark_table
from shadowkv_engine.ops.chunk_scores import score_chunks

HEADS, GROUP, CHUNKS, C, D = 2, 4, 64, 8, 32


def op_logits(q, chunks, rows):
    """The logits the scoring op forms: q' . landmark / sqrt(width)."""
    lm = chunk_landmarks(chunks, rows)
    return landmark_queries(q, rows) @ lm.T / math.sqrt(lm.shape[-1])


def test_minmax_logit_is_quests_bound_and_bounds_every_key():
    torch.manual_seed(0)
    chunks, q = torch.randn(CHUNKS, C, D), torch.randn(D)
    logits = op_logits(q, chunks, 2)
    lo, hi = chunks.amin(1), chunks.amax(1)
    bound = torch.maximum(q * lo, q * hi).sum(-1) / math.sqrt(D)
    torch.testing.assert_close(logits, bound)
    best_key = (chunks @ q).amax(-1) / math.sqrt(D)
    assert bool((logits >= best_key - 1e-5).all())


def test_mean_logit_is_the_papers():
    torch.manual_seed(1)
    chunks, q = torch.randn(CHUNKS, C, D), torch.randn(D)
    torch.testing.assert_close(op_logits(q, chunks, 1), chunks.mean(1) @ q / math.sqrt(D))


def test_table_view_puts_a_landmarks_rows_side_by_side():
    head_rows = torch.arange(3 * 2 * HEADS * 32 * D, dtype=torch.float32).view(3, 2, HEADS, 32, D)
    table = landmark_table(head_rows, 2)
    assert table.shape == (3, 2, HEADS, 16, 2 * D)
    torch.testing.assert_close(table[1, 0, 1, 5], torch.cat([head_rows[1, 0, 1, 10],
                                                             head_rows[1, 0, 1, 11]]))
    assert table.data_ptr() == head_rows.data_ptr()  # a view: writes land in head_rows


def test_minmax_ranks_a_single_token_needle_first_where_the_mean_does_not():
    """A retrieval head looks for one token: the needle's chunk holds it beside 7 tokens that
    point away, while other chunks hold keys mildly aligned throughout. The mean dilutes the
    needle below them; the bound keeps it first."""
    torch.manual_seed(2)
    direction = torch.nn.functional.normalize(torch.randn(D), dim=0)
    chunks = torch.randn(HEADS, CHUNKS, C, D) * 0.3 + 1.0 * direction
    needle = 17
    chunks[:, needle] = -2.0 * direction + torch.randn(HEADS, C, D) * 0.3
    chunks[:, needle, 3] = 8.0 * direction
    q = (direction * 3.0).expand(HEADS * GROUP, D)
    none = torch.empty(HEADS, 0, dtype=torch.long)
    for rows, needle_first in ((1, False), (2, True)):
        lm = chunk_landmarks(chunks, rows)  # [H, N, rows*D]
        scores = score_chunks(landmark_queries(q, rows), lm, none)
        assert bool((scores.argmax(-1) == needle).all()) == needle_first, rows


def test_minmax_takes_two_rows_a_chunk():
    unset = ShadowKVConfig()
    assert unset.landmark is None and unset.for_model(2, 128).landmark == "mean"
    assert unset.landmark_rows == 1
    assert ShadowKVConfig(landmark="minmax").landmark_rows == 2
