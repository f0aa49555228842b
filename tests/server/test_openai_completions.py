"""/v1/completions through the official `openai` client, as a vLLM user would call it."""
import json

import httpx

from server_harness import HTTP_TIMEOUT, MODEL_NAME

from shadowkv_engine.model.tokenizer import Tokenizer

PROMPT = "The river runs past the old mill and"


def greedy(client, **kwargs):
    return client.completions.create(model=MODEL_NAME, prompt=PROMPT, temperature=0.0, **kwargs)


def test_completion_has_openai_shape_and_usage(client):
    response = greedy(client, max_tokens=8)
    assert response.object == "text_completion"
    assert response.model == MODEL_NAME
    [choice] = response.choices
    assert choice.index == 0
    assert choice.finish_reason == "length"
    assert choice.text
    usage = response.usage
    assert usage.completion_tokens == 8
    assert usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streaming_with_usage_matches_the_whole_completion(client):
    whole = greedy(client, max_tokens=12, extra_body={"ignore_eos": True})
    chunks = list(greedy(client, max_tokens=12, stream=True,
                         stream_options={"include_usage": True},
                         extra_body={"ignore_eos": True}))
    *content, last = chunks
    # Only the final chunk carries usage, and it has no choices.
    assert last.choices == [] and last.usage is not None
    assert all(chunk.usage is None and len(chunk.choices) == 1 for chunk in content)
    assert "".join(chunk.choices[0].text for chunk in content) == whole.choices[0].text
    assert content[-1].choices[0].finish_reason == "length"
    assert last.usage.completion_tokens == 12
    assert last.usage.prompt_tokens == whole.usage.prompt_tokens


def test_stream_is_sse_ending_in_done(base_url):
    body = {"model": MODEL_NAME, "prompt": PROMPT, "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{base_url}/v1/completions", json=body,
                      timeout=HTTP_TIMEOUT) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in events)
    payloads = [json.loads(line[len("data: "):]) for line in events[:-1]]
    assert payloads[-1]["choices"][0]["finish_reason"] in ("length", "stop")
    assert all("usage" not in p or p["usage"] is None for p in payloads)


def test_stop_string_ends_the_text_before_it(client):
    full = greedy(client, max_tokens=24, extra_body={"ignore_eos": True}).choices[0].text
    # A stop string whose first occurrence is in the middle of the greedy text.
    start = next((k for k in range(len(full) // 2, 0, -1) if full.find(full[k:k + 3]) == k), 0)
    stop = full[start:start + 3]
    stopped = greedy(client, max_tokens=24, stop=[stop], extra_body={"ignore_eos": True})
    assert stopped.choices[0].text == full[:start]
    assert stopped.choices[0].finish_reason == "stop"
    streamed = greedy(client, max_tokens=24, stop=stop, stream=True,
                      extra_body={"ignore_eos": True})
    assert "".join(chunk.choices[0].text for chunk in streamed) == full[:start]


def test_seed_makes_sampling_reproducible(client):
    def sample(seed):
        return client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=16,
                                         temperature=1.0, seed=seed,
                                         extra_body={"ignore_eos": True}).choices[0].text

    first = sample(1234)
    assert sample(1234) == first
    assert sample(4321) != first


def test_n_returns_n_choices(client):
    response = client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=6, n=3,
                                         temperature=1.0, seed=7,
                                         extra_body={"ignore_eos": True})
    assert sorted(c.index for c in response.choices) == [0, 1, 2]
    assert len({c.text for c in response.choices}) > 1
    assert response.usage.completion_tokens == 18
    streamed = client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=6, n=3,
                                         temperature=1.0, seed=7, stream=True,
                                         extra_body={"ignore_eos": True})
    texts = {0: "", 1: "", 2: ""}
    for chunk in streamed:
        for choice in chunk.choices:
            texts[choice.index] += choice.text
    assert texts == {c.index: c.text for c in response.choices}


def test_token_id_prompt_equals_text_prompt(client, demo_model):
    ids = Tokenizer.from_pretrained(demo_model).encode(PROMPT)
    from_text = greedy(client, max_tokens=6)
    from_ids = client.completions.create(model=MODEL_NAME, prompt=ids, max_tokens=6,
                                         temperature=0.0)
    assert from_ids.usage.prompt_tokens == from_text.usage.prompt_tokens == len(ids)
    assert from_ids.choices[0].text == from_text.choices[0].text


def test_echo_prepends_the_prompt(client):
    plain = greedy(client, max_tokens=4)
    echoed = client.completions.create(model=MODEL_NAME, prompt=[PROMPT], max_tokens=4,
                                       temperature=0.0, echo=True)
    assert echoed.choices[0].text == PROMPT + plain.choices[0].text


def test_logprobs_in_legacy_shape(client):
    response = greedy(client, max_tokens=5, logprobs=3)
    logprobs = response.choices[0].logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == 5
    assert len(logprobs.top_logprobs) == len(logprobs.text_offset) == 5
    for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs,
                                   logprobs.top_logprobs):
        assert logprob <= 0.0
        # The top 3 plus the sampled token when it is not among them (fewer where tokens
        # decode to the same text).
        assert len(top) <= 4
        assert top[token] == logprob  # greedy: the sampled token is the most likely one
        assert max(top.values()) == logprob


def test_sampling_options_are_accepted(client):
    response = client.completions.create(
        model=MODEL_NAME, prompt=PROMPT, max_tokens=4, temperature=0.8, top_p=0.9,
        presence_penalty=0.5, frequency_penalty=0.5, seed=1,
        extra_body={"top_k": 20, "min_p": 0.01, "repetition_penalty": 1.1, "min_tokens": 2})
    assert response.usage.completion_tokens >= 2


def test_every_generated_token_is_streamed_in_its_own_chunk(client):
    # A stop string holds back the last len(stop) - 1 characters of the text, so the first tokens
    # add no visible text; each still gets its chunk, with empty text (as vLLM streams special
    # tokens and held-back text), so a client timing the stream (TTFT, ITL) sees every token.
    stop = "\u2603" * 40  # never generated
    whole = greedy(client, max_tokens=12, stop=[stop], extra_body={"ignore_eos": True})
    chunks = list(greedy(client, max_tokens=12, stop=[stop], stream=True,
                         stream_options={"include_usage": True},
                         extra_body={"ignore_eos": True}))
    *content, last = chunks
    assert last.usage.completion_tokens == len(content) == 12
    assert content[0].choices[0].text == ""  # the hold-back is wider than the first token
    assert "".join(chunk.choices[0].text for chunk in content) == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in content] == [None] * 11 + ["length"]
