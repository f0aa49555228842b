"""The engine requests this server has running, so that none outlives its client and a shutdown
can wait for all of them.

Every generation goes through `InFlightRequests.open`: it starts the engine request, waits for
the first output (the engine raises its validation and queue errors before yielding, and those
must become HTTP errors before any 200 is sent), and returns an iterator that aborts the engine
request if it is closed or cancelled before the request finished — a client that disconnects
frees its KV memory at once.
"""
import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import anyio

from shadowkv_engine.errors import InvalidRequestError, QueueFullError
from shadowkv_engine.outputs import RequestOutput
from shadowkv_engine.sampling_params import SamplingParams

from .metrics import ServerMetrics


class InFlightRequests:
    def __init__(self, metrics: ServerMetrics):
        self.metrics = metrics
        self._engines: dict[str, object] = {}  # request id -> engine running it
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._engines)

    async def open(self, engine, prompt: str | list[int], params: SamplingParams,
                   prefix: str) -> "RequestStream":
        request_id = f"{prefix}-{uuid.uuid4().hex}"
        outputs = self._run(engine, prompt, params, request_id)
        try:
            first = await anext(outputs)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await outputs.aclose()
            raise
        return RequestStream(request_id, first, outputs)

    async def _run(self, engine, prompt, params, request_id) -> AsyncIterator[RequestOutput]:
        start = time.monotonic()
        first_token_seen = False
        ended = False  # the engine holds the request no more: nothing to abort
        self._engines[request_id] = engine
        self._idle.clear()
        try:
            async with contextlib.aclosing(engine.generate(prompt, params, request_id)) as stream:
                async for output in stream:
                    if not first_token_seen and any(o.token_ids for o in output.outputs):
                        first_token_seen = True
                        self.metrics.observe_first_token(time.monotonic() - start)
                    if output.finished:
                        ended = True
                        self.metrics.observe_finished(output, time.monotonic() - start)
                    yield output
                    if ended:
                        return
        except (InvalidRequestError, QueueFullError):
            ended = True  # refused before it was queued
            raise
        finally:
            # Shielded: this runs while the handler is being cancelled by a client disconnect,
            # and an unshielded await would be cancelled before the abort reached the engine.
            if not ended:
                with anyio.CancelScope(shield=True):
                    await engine.abort(request_id)
            del self._engines[request_id]
            if not self._engines:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """True when every request finished within `timeout` seconds."""
        if self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            return False

    async def abort_all(self):
        for request_id, engine in list(self._engines.items()):
            await engine.abort(request_id)


@dataclass
class RequestStream:
    """One running engine request whose first output has arrived. Iterate it inside
    `contextlib.aclosing(stream)`: closing it early aborts the engine request."""

    request_id: str
    first: RequestOutput
    rest: AsyncGenerator[RequestOutput, None]

    async def __aiter__(self):
        yield self.first
        async for output in self.rest:
            yield output

    async def aclose(self):
        with anyio.CancelScope(shield=True):
            await self.rest.aclose()

    async def final(self) -> RequestOutput:
        output = self.first
        async with contextlib.aclosing(self):
            async for output in self:
                pass
        return output
