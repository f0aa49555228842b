"""Top-k, top-p and min-p: samples stay in the allowed set and follow the truncated softmax."""
import pytest
import torch

from shadowkv_engine.sample import Sampler, SampleRequest
from shadowkv_engine.sampling_params import SamplingParams

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def reference_probs(logits, params):
    """The previous per-row sampler's truncation (unnormalized), kept as the specification."""
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if 0 < params.top_k < probs.shape[0]:
        threshold = probs.topk(params.top_k).values[-1]
        probs = torch.where(probs >= threshold, probs, 0.0)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        cumulative = sorted_probs.cumsum(0) / sorted_probs.sum()
        drop_sorted = cumulative - sorted_probs / sorted_probs.sum() >= params.top_p
        probs = probs.scatter(0, order, torch.where(drop_sorted, 0.0, sorted_probs))
    if params.min_p > 0.0:
        probs = torch.where(probs >= params.min_p * probs.max(), probs, 0.0)
    return probs / probs.sum()


PARAMS = [
    SamplingParams(temperature=1.0),
    SamplingParams(temperature=0.8, top_k=5),
    SamplingParams(temperature=1.2, top_p=0.6),
    SamplingParams(temperature=0.5, min_p=0.2),
    SamplingParams(temperature=1.5, top_k=20, top_p=0.8, min_p=0.05),
    SamplingParams(temperature=1.0, top_k=1),
]


def sample_many(logits, params, copies, device, seed=0):
    """Each row of `logits` repeated `copies` times in one mixed batch; returns [rows, copies]."""
    batch = logits.repeat_interleave(copies, dim=0).to(device)
    requests = [SampleRequest(i, params[i // copies], [], [], None, [])
                for i in range(len(batch))]
    results = Sampler(torch.device(device), seed).sample(batch, requests)
    return torch.tensor([r.token_id for r in results]).view(len(logits), copies)


TOP_K_ONLY = [p for p in PARAMS if p.top_p == 1.0 and p.min_p == 0.0]  # takes the no-sort path


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("params", [PARAMS, TOP_K_ONLY], ids=["mixed", "top_k_only"])
def test_samples_never_leave_the_allowed_set(device, params):
    logits = torch.randn(len(params), 200, generator=torch.Generator().manual_seed(0)) * 3
    tokens = sample_many(logits, params, copies=300, device=device)
    for row, p in enumerate(params):
        allowed = reference_probs(logits[row], p) > 0
        assert allowed[tokens[row]].all(), p
        if p.top_k == 1:
            assert (tokens[row] == logits[row].argmax()).all()


@pytest.mark.parametrize("device", DEVICES)
def test_frequencies_follow_the_truncated_softmax(device):
    logits = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0]] * 3)
    params = [SamplingParams(temperature=0.7),
              SamplingParams(temperature=1.3, top_k=5, top_p=0.9),
              SamplingParams(temperature=1.0, top_p=0.95, min_p=0.15)]
    copies = 20000
    tokens = sample_many(logits, params, copies, device)
    for row, p in enumerate(params):
        expected = reference_probs(logits[row], p)
        observed = torch.bincount(tokens[row], minlength=logits.shape[1]) / copies
        # 5 standard deviations of a frequency at n = 20000 is at most 0.018
        torch.testing.assert_close(observed, expected, atol=0.018, rtol=0)
        assert (observed[expected == 0] == 0).all()
