"""One streamed request to an OpenAI-compatible server, timed as `vllm bench serve` times it.

Every request is sent with `stream: true` and `stream_options: {include_usage: true}`. SSE
comment lines and `[DONE]` are skipped; each chunk with choices is a token event (TTFT, ITL,
latency: stats.py); the trailing usage chunk gives the token counts. Without usage, the output
is counted in chunks. A non-200 answer, an error event in the stream or a broken connection
makes the request a failure with its reason; nothing raised here stops a run.
"""
import json
import time
from dataclasses import dataclass, field

import httpx

from .datasets import BenchRequest
from .stats import RequestResult

ENDPOINTS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


class BenchError(Exception):
    """The run cannot start (server unreachable, bad model, bad options); its message says why."""


@dataclass(frozen=True)
class Target:
    base_url: str
    endpoint: str  # a key of ENDPOINTS
    model: str
    api_key: str | None = None
    extra_body: dict = field(default_factory=dict)  # sampling options merged into every body

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + ENDPOINTS[self.endpoint]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def body(self, request: BenchRequest, max_tokens: int | None = None) -> dict:
        tokens = request.output_len if max_tokens is None else max_tokens
        if self.endpoint == "chat":
            if not isinstance(request.prompt, str):
                raise BenchError("the chat endpoint takes text prompts")
            body = {"messages": [{"role": "user", "content": request.prompt}],
                    "max_completion_tokens": tokens}
        else:
            body = {"prompt": request.prompt, "max_tokens": tokens}
        return {"model": self.model, **body, "stream": True,
                "stream_options": {"include_usage": True}, **self.extra_body}


def error_message(response: httpx.Response) -> str:
    text = response.text
    try:
        detail = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        detail = text.strip()[:300]
    return f"HTTP {response.status_code} {response.reason_phrase}: {detail}"


def chunk_text(choice: dict) -> str:
    if "delta" in choice:  # chat
        return (choice["delta"] or {}).get("content") or ""
    return choice.get("text") or ""


async def send(client: httpx.AsyncClient, target: Target, request: BenchRequest, index: int,
               started: float = 0.0, max_tokens: int | None = None) -> RequestResult:
    """Sends one request; `started` is the run's start (perf_counter) for the send time."""
    result = RequestResult(index=index, prompt_tokens=request.prompt_len)
    sent = time.perf_counter()
    result.start = sent - started
    last = sent
    chunks, text = 0, []
    try:
        async with client.stream("POST", target.url, json=target.body(request, max_tokens),
                                 headers=target.headers()) as response:
            if response.status_code != 200:
                await response.aread()
                result.error = error_message(response)
                return result
            async for line in response.aiter_lines():
                line = line.strip()
                if not line or line.startswith(":") or not line.startswith("data:"):
                    continue
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    error = chunk["error"]
                    detail = error.get("message", error) if isinstance(error, dict) else error
                    result.error = f"error event: {detail}"
                    return result
                now = time.perf_counter()
                if chunk.get("choices"):
                    if chunks == 0:
                        result.ttft = now - sent
                    else:
                        result.itl.append(now - last)
                    last, chunks = now, chunks + 1
                    text.append(chunk_text(chunk["choices"][0]))
                if usage := chunk.get("usage"):
                    result.output_tokens = usage.get("completion_tokens") or 0
                    result.prompt_tokens = usage.get("prompt_tokens") or result.prompt_tokens
    except Exception as e:  # a load test counts whatever a server does wrong as a failure
        result.error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return result
    if chunks == 0:
        result.error = "the stream ended without a generated chunk"
        return result
    result.success, result.latency, result.text = True, last - sent, "".join(text)
    result.output_tokens = result.output_tokens or chunks
    return result
