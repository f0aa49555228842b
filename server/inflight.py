"""The engine requests this server has running, so that none outlives its client and a shutdown
can wait for all of them.

Every generation goes through `InFlightRequests.open`: it starts the engine request, waits for
the first output (the engine raises its validation and queue errors before yielding, and those
must become HTTP errors before any 200 is sent), and returns an iterator that aborts the engine
request if it is closed or cancelled before the request finished — a client that disconnects
frees its KV memory at once. A batch of prompts is one engine request per prompt, opened
together and merged into one stream of `(prompt index, output)`.
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
                   request_id: str) -> "RequestStream":
        outputs = self._run(engine, prompt, params, request_id)
        try:
            first = await anext(outputs)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await outputs.aclose()
            raise
        return RequestStream(request_id, first, outputs)

    async def open_all(self, engine, prompts: list[list[int]], params: SamplingParams,
                       request_id: str) -> list["RequestStream"]:
        """One engine request per prompt (ids `request_id-i` for a batch), all queued at once;
        if one is refused or the caller is cancelled, those already running are aborted."""
        if len(prompts) == 1:
            return [await self.open(engine, prompts[0], params, request_id)]
        tasks = [asyncio.ensure_future(self.open(engine, prompt, params, f"{request_id}-{i}"))
                 for i, prompt in enumerate(prompts)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except BaseException:
            await _close_all(tasks)
            raise
        errors = [task.exception() for task in tasks if task.done() and task.exception()]
        if errors:
            await _close_all(tasks)
            raise errors[0]
        return [task.result() for task in tasks]

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


async def _close_all(tasks: list[asyncio.Future]):
    with anyio.CancelScope(shield=True):
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is None:
                await task.result().aclose()


def new_request_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


async def merge(streams: list["RequestStream"]) -> AsyncIterator[tuple[int, RequestOutput]]:
    """The outputs of several streams as they arrive, each with its stream's position. Iterate
    it inside `contextlib.aclosing`: closing it aborts every unfinished stream."""
    if len(streams) == 1:  # the common case needs no tasks
        async with contextlib.aclosing(streams[0]):
            async for output in streams[0]:
                yield 0, output
        return
    arrivals: asyncio.Queue = asyncio.Queue()

    async def pump(i: int, stream: RequestStream):
        try:
            async for output in stream:
                arrivals.put_nowait((i, output))
            arrivals.put_nowait((i, None))
        except Exception as exc:
            arrivals.put_nowait((i, exc))

    pumps = [asyncio.ensure_future(pump(i, stream)) for i, stream in enumerate(streams)]
    try:
        running = len(streams)
        while running:
            i, item = await arrivals.get()
            if isinstance(item, Exception):
                raise item
            if item is None:
                running -= 1
            else:
                yield i, item
    finally:
        with anyio.CancelScope(shield=True):
            for task in pumps:
                task.cancel()
            await asyncio.wait(pumps)
            for stream in streams:
                await stream.aclose()


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
