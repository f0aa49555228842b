"""Random sampling parameters and token ids against the running server on loopback: any 5xx,
an error inside a stream, or a dead engine fails the test. Run it alone with `-m fuzz`.

Values are drawn around the edges that broke the engine before (non-finite and extreme floats,
ids just outside the vocabulary, seeds beyond 64 bits, booleans where ids belong), and sent as
written, NaN and Infinity included (Python's JSON parser on the server accepts them).
"""
import json

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from server_harness import HTTP_TIMEOUT

VOCAB = 1024  # the demo model's
EXAMPLES = 40

pytestmark = pytest.mark.fuzz


def mostly(valid, edge):
    """Three draws in four valid: a request with several fields is then often served."""
    return st.one_of(valid, valid, valid, edge)


edge_floats = st.one_of(
    st.sampled_from([0.0, -0.0, 1e-45, -1e-45, 1e-30, 100.0, 1e30, -1e30, 1e308,
                     float("inf"), float("-inf"), float("nan")]),
    st.floats(-5, 5))
valid_ids = st.integers(0, VOCAB - 1)
token_ids = mostly(valid_ids, st.one_of(st.integers(-3, -1), st.integers(VOCAB, VOCAB + 3),
                                        st.booleans(), st.sampled_from([1.0, 2.5])))


def maybe(strategy):
    return st.one_of(st.none(), strategy)


sampling = st.fixed_dictionaries({}, optional={
    "n": mostly(st.integers(1, 3), st.sampled_from([-1, 0, 17])),
    "temperature": mostly(st.floats(0, 2), edge_floats),
    "top_p": mostly(st.floats(0.05, 1), edge_floats),
    "min_p": mostly(st.floats(0, 0.5), edge_floats),
    "top_k": mostly(st.integers(-1, 50), st.integers(-3, VOCAB + 5)),
    "presence_penalty": mostly(st.floats(-2, 2), edge_floats),
    "frequency_penalty": mostly(st.floats(-2, 2), edge_floats),
    "repetition_penalty": mostly(st.floats(0.5, 2), edge_floats),
    "seed": maybe(mostly(st.integers(-(1 << 63), (1 << 63) - 8),
                         st.integers(-(1 << 70), 1 << 70))),
    "min_tokens": mostly(st.integers(0, 3), st.integers(-1, 8)),
    "stop": maybe(st.lists(st.text(min_size=1, max_size=4), max_size=3)),
    "stop_token_ids": maybe(st.lists(token_ids, max_size=4)),
    "ignore_eos": st.booleans(),
    "stream": st.booleans(),
})
# Always bounded: None would generate up to the context length.
max_tokens = mostly(st.integers(1, 6), st.integers(-1, 0))
# Unpaired surrogates: JSON can escape them, Unicode text cannot hold them.
texts = mostly(st.text(max_size=40), st.sampled_from(["\ud800", "a\udfffb"]))
prompts = st.one_of(texts,
                    st.lists(token_ids, min_size=0, max_size=8),
                    st.lists(st.lists(valid_ids, min_size=1, max_size=6), min_size=1, max_size=3))
logprobs = maybe(mostly(st.integers(0, 5), st.integers(-1, 25)))
completion = st.builds(lambda s, p, m, lp: {**s, "prompt": p, "max_tokens": m,
                                            **({} if lp is None else {"logprobs": lp})},
                       sampling, prompts, max_tokens, logprobs)
roles = mostly(st.sampled_from(["system", "user", "assistant"]),
               st.sampled_from(["developer", "tool", "wizard"]))
messages = st.lists(st.fixed_dictionaries({"role": roles, "content": texts}),
                    min_size=1, max_size=3)
chat = st.builds(lambda s, msgs, m, lp, top: {**s, "messages": msgs, "max_tokens": m,
                                              "logprobs": lp, **top},
                 sampling, messages, max_tokens, st.booleans(),
                 st.fixed_dictionaries({}, optional={"top_logprobs": st.integers(-1, 25)}))
requests = st.one_of(st.tuples(st.just("/v1/completions"), completion),
                     st.tuples(st.just("/v1/chat/completions"), chat))


def send(base_url: str, path: str, body: dict) -> tuple[int, list[dict]]:
    """The status, and for a 200 stream its events, the stream read to its end."""
    content = json.dumps(body)  # NaN and Infinity as Python writes them
    with httpx.stream("POST", f"{base_url}{path}", content=content, timeout=HTTP_TIMEOUT,
                      headers={"content-type": "application/json"}) as response:
        text = response.read().decode()
    if response.status_code != 200 or not body.get("stream"):
        return response.status_code, []
    return 200, [json.loads(line[len("data: "):]) for line in text.splitlines()
                 if line.startswith("data: {")]


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=requests)
def test_random_requests_never_get_a_5xx_or_stop_the_engine(base_url, request):
    path, body = request
    status, events = send(base_url, path, body)
    event(f"{path} {status}")  # --hypothesis-show-statistics: how many were served
    assert status < 500, (path, body, status)
    assert status in (200, 400), (path, body, status)
    assert not any("error" in event for event in events), (path, body, events)
    assert httpx.get(f"{base_url}/health", timeout=HTTP_TIMEOUT).status_code == 200, body
