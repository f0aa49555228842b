"""Error bodies and status codes, over raw HTTP: OpenAI's shape, the codes vLLM users expect."""
import threading

import httpx
import openai
import pytest
from server_harness import (HTTP_TIMEOUT, MODEL_NAME, engine_config, metrics, serve_in_thread,
                            wait_until)


def post(base_url: str, path: str, body) -> httpx.Response:
    return httpx.post(f"{base_url}{path}", json=body, timeout=HTTP_TIMEOUT)


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == status
    return error


@pytest.mark.parametrize("body, param", [
    ({"prompt": "hi", "temperature": -1}, "temperature"),
    ({"prompt": "hi", "top_p": 0}, "top_p"),
    ({"prompt": "hi", "n": 0}, "n"),
    ({"prompt": "hi", "max_tokens": "many"}, "max_tokens"),  # a type error (FastAPI's 422)
    ({"prompt": "hi", "logit_bias": {"5": 1.0}}, "logit_bias"),
    ({"max_tokens": 3}, "prompt"),
])
def test_invalid_parameters_are_400(base_url, body, param):
    error = error_of(post(base_url, "/v1/completions", {"model": MODEL_NAME, **body}), 400)
    assert error["type"] == "BadRequestError"
    assert error["param"] == param
    assert param in error["message"]


def test_malformed_json_is_400(base_url):
    response = httpx.post(f"{base_url}/v1/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"}, timeout=HTTP_TIMEOUT)
    error_of(response, 400)


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_over_the_context_length_is_400(base_url, stream):
    body = {"model": MODEL_NAME, "prompt": "river " * 3000, "max_tokens": 4, "stream": stream}
    error = error_of(post(base_url, "/v1/completions", body), 400)
    assert "maximum context length is 2048 tokens" in error["message"]
    requested = int(error["message"].split("you requested ")[1].split()[0])
    assert requested > 3000


def test_max_tokens_over_the_context_length_is_400(base_url):
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}],
            "max_completion_tokens": 5000}
    error = error_of(post(base_url, "/v1/chat/completions", body), 400)
    assert "2048" in error["message"] and "requested" in error["message"]


def test_openai_client_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client.completions.create(model=MODEL_NAME, prompt="hi", max_tokens=4096)


def test_unknown_model_is_404(base_url):
    error = error_of(post(base_url, "/v1/completions", {"model": "gpt-5", "prompt": "hi"}), 404)
    assert "gpt-5" in error["message"] and error["param"] == "model"
    chat = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}
    error_of(post(base_url, "/v1/chat/completions", chat), 404)


def test_unknown_route_is_404_in_openai_shape(base_url):
    error_of(httpx.get(f"{base_url}/v1/nothing", timeout=HTTP_TIMEOUT), 404)


def test_full_queue_is_429_with_retry_after(demo_model):
    config = engine_config(demo_model, max_num_seqs=1, max_queued_requests=1)
    with serve_in_thread(config) as base_url:
        long_request = {"model": MODEL_NAME, "prompt": "hello", "max_tokens": 1800,
                        "ignore_eos": True, "stream": True}
        with httpx.stream("POST", f"{base_url}/v1/completions", json=long_request,
                          timeout=HTTP_TIMEOUT) as running:
            lines = running.iter_lines()  # kept: dropping the iterator closes the response
            next(lines)  # it runs: the only batch slot is taken
            queued = threading.Thread(target=post, args=(
                base_url, "/v1/completions", {"model": MODEL_NAME, "prompt": "hi",
                                              "max_tokens": 2}))
            queued.start()
            wait_until(lambda: metrics(base_url)["vllm:num_requests_waiting"] == 1, 30,
                       "the second request to queue")
            response = post(base_url, "/v1/completions", {"model": MODEL_NAME, "prompt": "x"})
            error = error_of(response, 429)
            assert int(response.headers["Retry-After"]) >= 1
            assert error["type"] == "RateLimitError"
        # Leaving the stream disconnects it; the queued request then runs and finishes.
        queued.join(timeout=HTTP_TIMEOUT)
        assert not queued.is_alive()
