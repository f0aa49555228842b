"""The batched sampler: greedy rows, logprobs and ranks, seeds, and the greedy fast path."""
import pytest
import torch

from shadowkv_engine.sample import Sampler, SampleRequest
from shadowkv_engine.sampling_params import SamplingParams

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
VOCAB = 300


def requests_for(params, seeds=None, keys=None):
    seeds = seeds or [None] * len(params)
    keys = keys or list(range(len(params)))
    return [SampleRequest(k, p, [], [], s, []) for k, p, s in zip(keys, params, seeds)]


def random_logits(rows, seed=0):
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(seed)) * 4


@pytest.mark.parametrize("device", DEVICES)
def test_greedy_rows_take_the_argmax_in_a_mixed_batch(device):
    logits = random_logits(5)
    params = [SamplingParams(temperature=0.0), SamplingParams(temperature=1.0, top_p=0.5),
              SamplingParams(temperature=1e-6), SamplingParams(temperature=0.9, top_k=3),
              SamplingParams(temperature=0.0, top_k=2, min_p=0.5)]
    results = Sampler(torch.device(device), 0).sample(logits.to(device), requests_for(params))
    for row in (0, 2, 4):
        assert results[row].token_id == int(logits[row].argmax())


def test_all_greedy_batch_does_not_sort_the_vocabulary(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("an all-greedy batch sorted the vocabulary")

    monkeypatch.setattr(torch.Tensor, "sort", forbidden)
    monkeypatch.setattr(torch.Tensor, "topk", forbidden)
    logits = random_logits(4)
    params = [SamplingParams(temperature=0.0)] * 4
    results = Sampler(torch.device("cpu"), 0).sample(logits, requests_for(params))
    assert [r.token_id for r in results] == logits.argmax(dim=-1).tolist()


@pytest.mark.parametrize("device", DEVICES)
def test_logprobs_ranks_and_top_alternatives_come_from_the_raw_distribution(device):
    logits = random_logits(5)
    params = [SamplingParams(temperature=1.0, logprobs=3),
              SamplingParams(temperature=0.0, logprobs=0, repetition_penalty=1.5),
              SamplingParams(temperature=0.7),
              SamplingParams(temperature=2.0, top_k=50, logprobs=20),
              SamplingParams(temperature=0.0, logprobs=1)]
    requests = requests_for(params)
    requests[1].prompt_token_ids = logits[1].topk(3).indices.tolist()
    results = Sampler(torch.device(device), 0).sample(logits.to(device), requests)
    raw = torch.log_softmax(logits, dim=-1)
    for row, (p, result) in enumerate(zip(params, results)):
        token = result.token_id
        assert result.logprob == pytest.approx(float(raw[row, token]), abs=1e-5)
        if p.logprobs is None:
            assert result.sampled_rank == 1 and result.top_logprobs == []
            continue
        assert result.sampled_rank == int((raw[row] > raw[row, token]).sum()) + 1
        values, ids = raw[row].topk(p.logprobs)
        assert [t for t, _ in result.top_logprobs] == ids.tolist()
        assert [v for _, v in result.top_logprobs] == pytest.approx(values.tolist(), abs=1e-5)
    assert results[1].sampled_rank > 1  # the penalty moved the greedy pick off the raw argmax


@pytest.mark.parametrize("device", DEVICES)
def test_seeded_rows_do_not_depend_on_the_batch(device):
    steps = [random_logits(4, seed) for seed in range(5)]
    # key: (its row of each step's logits, its seed)
    sequences = {10: (0, 7), 11: (1, None), 12: (2, 9), 13: (3, None), 20: (3, 4), 21: (1, None)}
    params = SamplingParams(temperature=1.0, top_p=0.9)

    def run(keys):
        sampler = Sampler(torch.device(device), seed=123)
        tokens = []
        for logits in steps:
            rows = [sequences[k][0] for k in keys]
            requests = [SampleRequest(k, params, [], [], sequences[k][1], []) for k in keys]
            results = sampler.sample(logits[rows].to(device), requests)
            tokens.append({k: r.token_id for k, r in zip(keys, results)})
        return tokens

    first = run([10, 11, 12, 13])
    second = run([13, 21, 12, 20, 10])  # other neighbours, other positions
    assert [s[10] for s in first] == [s[10] for s in second]
    assert [s[12] for s in first] == [s[12] for s in second]
    assert [s[10] for s in first] != [s[12] for s in first]


def test_release_restarts_a_seeded_stream_and_engine_seed_is_reproducible():
    logits = random_logits(2)
    params = [SamplingParams(temperature=1.0)] * 2

    def draws(sampler, count):
        return [[r.token_id for r in sampler.sample(logits, requests_for(params, [5, None]))]
                for _ in range(count)]

    sampler = Sampler(torch.device("cpu"), seed=1)
    before = draws(sampler, 4)
    sampler.release(0)
    after = draws(sampler, 4)
    assert [d[0] for d in before] == [d[0] for d in after]
    assert draws(Sampler(torch.device("cpu"), seed=1), 4) == before


def test_an_empty_batch_samples_nothing():
    assert Sampler(torch.device("cpu"), 0).sample(torch.empty(0, VOCAB), []) == []
