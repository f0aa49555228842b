"""One streamed request against canned server answers (httpx.MockTransport): parsing, the
token counts from usage, and every kind of failure counted, never raised."""
import asyncio
import json

import httpx
import pytest

from shadowkv_engine.bench.client import Target, send
from shadowkv_engine.bench.datasets import BenchRequest

REQUEST = BenchRequest("Once upon a time", prompt_len=4, output_len=3)


def sse(*events) -> bytes:
    lines = [": ping"]  # an SSE comment, as servers send to keep a connection open
    lines += [f"data: {json.dumps(e) if isinstance(e, dict) else e}" for e in events]
    return ("\n\n".join(lines) + "\n\n").encode()


def run(handler, target=None, request=REQUEST):
    target = target or Target("http://server", "completions", "m", "key-1", {"ignore_eos": True})

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await send(client, target, request, 0)
    return asyncio.run(go())


def test_completions_stream_uses_the_usage_chunk():
    seen = {}

    def handler(request: httpx.Request):
        seen["body"], seen["auth"] = json.loads(request.content), request.headers["authorization"]
        seen["path"] = request.url.path
        return httpx.Response(200, content=sse(
            {"choices": [{"text": " there"}]}, {"choices": [{"text": " was"}]},
            {"choices": [{"text": " a", "finish_reason": "length"}]},
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}, "[DONE]"))

    result = run(handler)
    assert result.success and result.text == " there was a"
    assert (result.prompt_tokens, result.output_tokens) == (5, 3)
    assert len(result.itl) == 2 and 0 < result.ttft <= result.latency
    assert seen["path"] == "/v1/completions" and seen["auth"] == "Bearer key-1"
    assert seen["body"] == {"model": "m", "prompt": "Once upon a time", "max_tokens": 3,
                            "stream": True, "stream_options": {"include_usage": True},
                            "ignore_eos": True}


def test_chat_stream_and_its_token_limit():
    seen = {}

    def handler(request: httpx.Request):
        seen["body"], seen["path"] = json.loads(request.content), request.url.path
        return httpx.Response(200, content=sse(
            {"choices": [{"delta": {"role": "assistant", "content": "Hi"}}]},
            {"choices": [{"delta": {"content": "!"}}]}, "[DONE]"))

    result = run(handler, Target("http://server/", "chat", "m"))
    assert result.success and result.text == "Hi!"
    assert result.output_tokens == 2  # no usage chunk: counted in chunks
    assert seen["path"] == "/v1/chat/completions"
    assert seen["body"]["max_completion_tokens"] == 3 and "max_tokens" not in seen["body"]
    assert seen["body"]["messages"] == [{"role": "user", "content": "Once upon a time"}]


def test_http_error_is_a_failure_with_the_servers_message():
    result = run(lambda request: httpx.Response(
        429, json={"error": {"message": "too many waiting requests"}}))
    assert not result.success
    assert result.error == "HTTP 429 Too Many Requests: too many waiting requests"


def test_refused_connection_is_a_failure():
    def handler(request):
        raise httpx.ConnectError("connection refused")

    result = run(handler)
    assert not result.success and result.error == "ConnectError: connection refused"


def test_connection_dropped_mid_stream_is_a_failure():
    class Dropped(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield sse({"choices": [{"text": " a"}]})
            raise httpx.RemoteProtocolError("peer closed connection")

    result = run(lambda request: httpx.Response(200, stream=Dropped()))
    assert not result.success and "RemoteProtocolError" in result.error


@pytest.mark.parametrize("body, reason", [
    (sse({"error": {"message": "engine failed"}}), "error event: engine failed"),
    (sse("[DONE]"), "the stream ended without a generated chunk"),
    (b"data: {not json\n\n", "JSONDecodeError")])
def test_bad_streams_are_failures(body, reason):
    result = run(lambda request: httpx.Response(200, content=body))
    assert not result.success and reason in result.error
