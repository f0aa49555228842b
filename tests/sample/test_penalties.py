"""Penalties from the cached per-sequence state equal the per-row reference at every step."""
import torch

from shadowkv_engine.sample import Sampler, SampleRequest
from shadowkv_engine.sample.penalties import PenaltyCache
from shadowkv_engine.sampling_params import SamplingParams

VOCAB = 50


def reference_penalties(logits, params, prompt, output, blocked=()):
    """The previous per-row sampler's processing, kept as the specification."""
    logits = logits.clone()
    outputs = torch.tensor(output, dtype=torch.long)
    if params.repetition_penalty != 1.0:
        seen = torch.tensor(prompt + output, dtype=torch.long).unique()
        values = logits[seen]
        logits[seen] = torch.where(values > 0, values / params.repetition_penalty,
                                   values * params.repetition_penalty)
    if outputs.numel() and (params.presence_penalty or params.frequency_penalty):
        counts = torch.bincount(outputs, minlength=logits.shape[0]).to(logits.dtype)
        logits -= (params.frequency_penalty * counts
                   + params.presence_penalty * (counts > 0).float())
    if blocked:
        logits[list(blocked)] = float("-inf")
    return logits


PARAMS = [
    SamplingParams(repetition_penalty=1.3),
    SamplingParams(presence_penalty=0.7, frequency_penalty=-0.4),
    SamplingParams(repetition_penalty=0.8, presence_penalty=-1.0, frequency_penalty=1.5),
    SamplingParams(frequency_penalty=0.5),
]


def test_cached_state_matches_reference_as_outputs_grow_and_reset():
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(VOCAB, (n,), generator=gen).tolist() for n in (30, 1, 0, 12)]
    outputs = [[] for _ in PARAMS]
    cache = PenaltyCache(torch.device("cpu"))
    for step in range(6):
        if step == 4:
            outputs[1] = outputs[1][:1]  # reset (e.g. recomputed): shorter than what was counted
        logits = torch.randn(len(PARAMS), VOCAB, generator=gen) * 3
        # every row in batch order except one left out on odd steps, like a partial batch
        rows = [r for r in range(len(PARAMS)) if not (step % 2 and r == 2)]
        requests = [SampleRequest(r, PARAMS[r], prompts[r], list(outputs[r]), None, [])
                    for r in range(len(PARAMS))]
        processed = logits.clone()
        cache.apply(processed, rows, requests)
        for r in range(len(PARAMS)):
            expected = (reference_penalties(logits[r], PARAMS[r], prompts[r], outputs[r])
                        if r in rows else logits[r])
            torch.testing.assert_close(processed[r], expected, rtol=1e-6, atol=1e-6)
        for r in rows:
            outputs[r] += torch.randint(VOCAB, (1 + r % 2,), generator=gen).tolist()


def test_released_slots_are_reused_without_stale_counts():
    cache = PenaltyCache(torch.device("cpu"))
    params = SamplingParams(frequency_penalty=1.0, repetition_penalty=2.0)
    logits = torch.ones(1, VOCAB)
    cache.apply(logits.clone(), [0], [SampleRequest(1, params, [3, 4], [5, 5, 6], None, [])])
    cache.release(1)
    fresh = SampleRequest(2, params, [7], [8], None, [])
    processed = logits.clone()
    cache.apply(processed, [0], [fresh])
    torch.testing.assert_close(processed[0], reference_penalties(logits[0], params, [7], [8]))
    assert len(cache.slots) == 1


def test_greedy_with_penalties_and_blocked_tokens_takes_the_processed_argmax():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(len(PARAMS), VOCAB, generator=gen)
    prompts = [torch.randint(VOCAB, (20,), generator=gen).tolist() for _ in PARAMS]
    outputs = [torch.randint(VOCAB, (5,), generator=gen).tolist() for _ in PARAMS]
    params = [SamplingParams(temperature=0.0, repetition_penalty=p.repetition_penalty,
                             presence_penalty=p.presence_penalty,
                             frequency_penalty=p.frequency_penalty) for p in PARAMS]
    blocked = [[int(logits[r].argmax())] for r in range(len(PARAMS))]
    requests = [SampleRequest(r, params[r], prompts[r], outputs[r], None, blocked[r])
                for r in range(len(PARAMS))]
    results = Sampler(torch.device("cpu"), seed=0).sample(logits, requests)
    for r, result in enumerate(results):
        expected = reference_penalties(logits[r], params[r], prompts[r], outputs[r], blocked[r])
        assert result.token_id == int(expected.argmax())
        assert result.token_id != blocked[r][0]


def test_tokens_the_host_has_not_seen_are_penalized_from_the_devices_count():
    """As under async scheduling: the host learns each token a step after it was sampled, yet
    every step's penalties cover all tokens sampled so far (the sampler counted them)."""
    gen = torch.Generator().manual_seed(2)
    params = SamplingParams(temperature=0.0, repetition_penalty=1.3, presence_penalty=0.4,
                            frequency_penalty=0.6)
    prompt = torch.randint(VOCAB, (15,), generator=gen).tolist()
    sampler = Sampler(torch.device("cpu"), seed=0)
    # The same logits every step: only the penalties keep the greedy token from repeating.
    base = torch.randn(1, VOCAB, generator=gen) * 3
    generated = []
    for _ in range(8):
        logits = base.clone()
        known = generated[:-1]  # the newest token is still in flight
        request = SampleRequest(7, params, prompt, known, None, [], len(generated) - len(known))
        token = sampler.sample(logits, [request])[0].token_id
        assert token == int(reference_penalties(logits[0], params, prompt, generated).argmax())
        generated.append(token)
    assert len(set(generated)) > 1  # the penalties steered away from repeats
