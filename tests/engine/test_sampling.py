"""The sampling and stopping behaviour users rely on, through the offline LLM API."""
import pytest
import torch

from shadowkv_engine import LLM, SamplingParams
from shadowkv_engine.errors import InvalidRequestError, PromptTooLongError

PROMPT = "The quick brown fox jumps over the lazy dog. " * 4


@pytest.fixture(scope="module")
def llm(make_checkpoint):
    return LLM(model=str(make_checkpoint("llama3")), device="cpu", attention="dense",
               num_gpu_blocks=256, max_model_len=512)


def generate(llm, **params):
    return llm.generate([PROMPT], SamplingParams(**params), use_tqdm=False)[0].outputs


def test_stop_string_is_cut_from_the_text(llm):
    full = generate(llm, temperature=0.0, max_tokens=40, ignore_eos=True)[0]
    stop = full.text[12:15]
    first = full.text.index(stop)
    out = generate(llm, temperature=0.0, max_tokens=40, ignore_eos=True, stop=[stop])[0]
    assert out.text == full.text[:first]
    assert (out.finish_reason, out.stop_reason) == ("stop", stop)
    kept = generate(llm, temperature=0.0, max_tokens=40, ignore_eos=True, stop=stop,
                    include_stop_str_in_output=True)[0]
    assert kept.text == full.text[:first + len(stop)]


def test_stop_token_ids_and_min_tokens(llm):
    full = generate(llm, temperature=0.0, max_tokens=30, ignore_eos=True)[0].token_ids
    token = full[5]
    first = full.index(token)
    out = generate(llm, temperature=0.0, max_tokens=30, ignore_eos=True,
                   stop_token_ids=[token])[0]
    assert out.token_ids == full[:first + 1]
    assert (out.finish_reason, out.stop_reason) == ("stop", token)
    held = generate(llm, temperature=0.0, max_tokens=30, ignore_eos=True,
                    stop_token_ids=[token], min_tokens=first + 4)[0]
    assert len(held.token_ids) >= first + 4
    assert token not in held.token_ids[:first + 3]


def test_seed_makes_sampling_reproducible(llm):
    params = dict(temperature=1.0, top_p=0.95, max_tokens=20, ignore_eos=True)
    a = generate(llm, seed=7, **params)[0].token_ids
    b = generate(llm, seed=7, **params)[0].token_ids
    c = generate(llm, seed=8, **params)[0].token_ids
    assert a == b
    assert a != c


def test_n_choices_are_distinct_and_reproducible(llm):
    params = dict(n=3, temperature=1.0, max_tokens=16, ignore_eos=True, seed=3)
    first = generate(llm, **params)
    again = generate(llm, **params)
    assert [o.index for o in first] == [0, 1, 2]
    assert [o.token_ids for o in first] == [o.token_ids for o in again]
    assert len({tuple(o.token_ids) for o in first}) > 1


@pytest.mark.parametrize("narrow", [dict(top_k=1), dict(min_p=1.0), dict(top_p=1e-6)])
def test_narrowest_truncation_equals_greedy(llm, narrow):
    greedy = generate(llm, temperature=0.0, max_tokens=16, ignore_eos=True)[0].token_ids
    sampled = generate(llm, temperature=1.5, max_tokens=16, ignore_eos=True, seed=1,
                       **narrow)[0].token_ids
    assert sampled == greedy


def test_logprobs_are_the_model_distribution(llm):
    out = generate(llm, temperature=0.0, max_tokens=6, ignore_eos=True, logprobs=3)[0]
    assert len(out.logprobs) == 6
    total = 0.0
    for token, entry in zip(out.token_ids, out.logprobs):
        assert token in entry and entry[token].rank == 1  # greedy takes the most likely
        values = sorted((lp.logprob for lp in entry.values()), reverse=True)
        assert len(entry) == 3 and values[0] == entry[token].logprob and values[-1] <= 0
        assert all(isinstance(lp.decoded_token, str) for lp in entry.values())
        total += entry[token].logprob
    assert out.cumulative_logprob == pytest.approx(total)


def test_penalties_discourage_repetition(llm):
    plain = generate(llm, temperature=0.0, max_tokens=48, ignore_eos=True)[0].token_ids
    penalised = generate(llm, temperature=0.0, max_tokens=48, ignore_eos=True,
                         presence_penalty=2.0, frequency_penalty=2.0)[0].token_ids
    repeated = generate(llm, temperature=0.0, max_tokens=48, ignore_eos=True,
                        repetition_penalty=3.0)[0].token_ids
    assert len(set(penalised)) > len(set(plain))
    assert repeated != plain


def test_max_tokens_none_runs_to_the_context_length(llm):
    prompt = torch.arange(5, 505).tolist()
    out = llm.generate([prompt], SamplingParams(temperature=0.0, max_tokens=None,
                                                ignore_eos=True), use_tqdm=False)[0]
    assert len(out.outputs[0].token_ids) == 12
    assert out.outputs[0].finish_reason == "length"


def test_too_long_prompt_names_the_limit(llm):
    with pytest.raises(PromptTooLongError, match=r"maximum context length is 512 tokens.*"
                                                  r"you requested 530 tokens"):
        llm.generate([list(range(5, 505))], SamplingParams(max_tokens=30), use_tqdm=False)
    assert not llm.engine.has_unfinished_requests()


@pytest.mark.parametrize("bad, param", [
    (dict(temperature=-1.0), "temperature"), (dict(top_p=0.0), "top_p"),
    (dict(max_tokens=0), "max_tokens"), (dict(n=0), "n"), (dict(logprobs=50), "logprobs"),
    (dict(min_tokens=5, max_tokens=2), "min_tokens"), (dict(presence_penalty=3.0),
                                                        "presence_penalty")])
def test_invalid_sampling_params_name_the_parameter(bad, param):
    with pytest.raises(InvalidRequestError) as error:
        SamplingParams(**bad)
    assert error.value.param == param


def test_chat_uses_the_chat_template(llm):
    out = llm.chat([{"role": "user", "content": "Hi there"}],
                   SamplingParams(temperature=0.0, max_tokens=5, ignore_eos=True),
                   use_tqdm=False)[0]
    tokenizer = llm.get_tokenizer()
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "Hi there"}])
    assert out.prompt_token_ids == tokenizer.encode(rendered, add_special_tokens=False)
    assert len(out.outputs[0].token_ids) == 5


@pytest.mark.parametrize("params,param", [
    (dict(min_tokens=1, stop_token_ids=[5000]), "stop_token_ids"),  # the vocabulary is 1024
    (dict(temperature=float("inf")), "temperature"),
    (dict(repetition_penalty=float("nan")), "repetition_penalty"),
    (dict(seed=1 << 64), "seed"),
    (dict(repetition_penalty=1e-45), "repetition_penalty"),  # the logits would overflow
])
def test_parameters_the_sampler_cannot_use_are_refused_and_the_engine_goes_on(llm, params, param):
    with pytest.raises(InvalidRequestError) as error:
        llm.engine.add_request("bad", PROMPT, SamplingParams(max_tokens=3, **params))
    assert error.value.param == param
    assert not llm.engine.has_unfinished_requests()
    assert len(generate(llm, temperature=0.0, max_tokens=3)[0].token_ids) == 3


def test_choices_of_one_seed_are_not_another_seeds_choices(llm):
    params = dict(temperature=1.0, max_tokens=12, ignore_eos=True)
    pair = generate(llm, seed=42, n=2, **params)
    assert pair[0].token_ids == generate(llm, seed=42, **params)[0].token_ids
    assert pair[1].token_ids != generate(llm, seed=43, **params)[0].token_ids
    assert pair[1].token_ids == generate(llm, seed=42, n=2, **params)[1].token_ids
