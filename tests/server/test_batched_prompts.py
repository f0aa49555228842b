"""A batch of prompts in one /v1/completions request, as vLLM and OpenAI accept it: choice j of
prompt i has index i * n + j, and each prompt is completed exactly as if sent alone."""
import json

import httpx
from server_harness import (HTTP_TIMEOUT, MODEL_NAME, engine_config, metrics, serve_in_thread,
                            wait_until)

from shadowkv_engine.model.tokenizer import Tokenizer

PROMPTS = ["The river runs past", "A pass key is hidden in", "Count the mills:"]


def greedy(client, prompt, **kwargs):
    return client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=5,
                                     temperature=0.0, extra_body={"ignore_eos": True}, **kwargs)


def test_a_batch_of_strings_completes_each_prompt_as_alone(client):
    alone = [greedy(client, prompt).choices[0].text for prompt in PROMPTS]
    batch = greedy(client, PROMPTS)
    assert [choice.index for choice in batch.choices] == [0, 1, 2]
    assert [choice.text for choice in batch.choices] == alone
    assert batch.usage.completion_tokens == 15
    single_prompt_tokens = sum(greedy(client, p).usage.prompt_tokens for p in PROMPTS)
    assert batch.usage.prompt_tokens == single_prompt_tokens
    assert batch.usage.total_tokens == batch.usage.prompt_tokens + 15


def test_a_batch_of_token_lists_with_n_indexes_prompt_major(client, demo_model):
    tokenizer = Tokenizer.from_pretrained(demo_model)
    ids = [tokenizer.encode(prompt) for prompt in PROMPTS[:2]]
    batch = client.completions.create(model=MODEL_NAME, prompt=ids, max_tokens=4, n=3,
                                      temperature=1.0, seed=5, extra_body={"ignore_eos": True})
    assert [choice.index for choice in batch.choices] == list(range(6))
    assert batch.usage.prompt_tokens == len(ids[0]) + len(ids[1])  # once per prompt, not per n
    assert batch.usage.completion_tokens == 24
    # Prompt 1's choices are what that prompt alone gives with the same seed.
    alone = client.completions.create(model=MODEL_NAME, prompt=ids[1], max_tokens=4, n=3,
                                      temperature=1.0, seed=5, extra_body={"ignore_eos": True})
    assert [c.text for c in batch.choices[3:]] == [c.text for c in alone.choices]


def test_a_streamed_batch_carries_every_choice_and_summed_usage(client, base_url):
    whole = greedy(client, PROMPTS, n=2, echo=True)
    body = {"model": MODEL_NAME, "prompt": PROMPTS, "max_tokens": 5, "temperature": 0.0,
            "n": 2, "echo": True, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}
    texts: dict[int, str] = {}
    with httpx.stream("POST", f"{base_url}/v1/completions", json=body,
                      timeout=HTTP_TIMEOUT) as response:
        assert response.status_code == 200
        events = [line[len("data: "):] for line in response.iter_lines()
                  if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    for chunk in chunks[:-1]:
        for choice in chunk["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
    assert texts == {choice.index: choice.text for choice in whole.choices}
    assert all(texts[2 * i].startswith(prompt) for i, prompt in enumerate(PROMPTS))
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == whole.usage.completion_tokens == 30
    assert chunks[-1]["usage"]["prompt_tokens"] == whole.usage.prompt_tokens


def test_one_bad_prompt_refuses_the_whole_batch(base_url):
    body = {"model": MODEL_NAME, "prompt": ["fine", "river " * 3000], "max_tokens": 4}
    response = httpx.post(f"{base_url}/v1/completions", json=body, timeout=HTTP_TIMEOUT)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"


def test_a_batch_the_queue_cannot_take_is_429_and_leaves_nothing_running(demo_model):
    config = engine_config(demo_model, max_num_seqs=1, max_queued_requests=1)
    with serve_in_thread(config) as url:
        body = {"model": MODEL_NAME, "prompt": PROMPTS, "max_tokens": 1500, "ignore_eos": True}
        response = httpx.post(f"{url}/v1/completions", json=body, timeout=HTTP_TIMEOUT)
        assert response.status_code == 429, response.text

        def idle():
            sample = metrics(url)
            return sample["vllm:num_requests_running"] == sample["vllm:num_requests_waiting"] == 0

        wait_until(idle, 10, "the batch's other requests to be aborted")
        assert metrics(url)["vllm:generation_tokens_total"] < 1500


def test_leaving_a_streamed_batch_aborts_every_prompt(base_url):
    body = {"model": MODEL_NAME, "prompt": PROMPTS, "max_tokens": 1500, "ignore_eos": True,
            "stream": True}
    before = metrics(base_url)["vllm:generation_tokens_total"]
    with httpx.stream("POST", f"{base_url}/v1/completions", json=body,
                      timeout=HTTP_TIMEOUT) as response:
        lines = response.iter_lines()
        for _ in range(6):
            next(lines)
        assert metrics(base_url)["vllm:num_requests_running"] == 3

    def idle():
        sample = metrics(base_url)
        return sample["vllm:num_requests_running"] == sample["vllm:num_requests_waiting"] == 0

    wait_until(idle, 10, "the batch's requests to be aborted")
    assert metrics(base_url)["vllm:generation_tokens_total"] - before < 3 * 1500
