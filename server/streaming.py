"""Server-sent events, and noticing a client that went away.

A disconnect must abort the engine request at once, not when the next token happens to be
written: a long prefill or a queued request may not write anything for a long time.
"""
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable

import anyio
from fastapi import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .errors import error_body, internal_error_message, log_internal_error

DONE = "data: [DONE]\n\n"


def sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _until_disconnect(receive: Receive):
    while (await receive())["type"] != "http.disconnect":
        pass


async def cancel_on_disconnect(request: Request, work: Awaitable) -> object | None:
    """Awaits `work`, cancelling it if the client disconnects first; returns None then.

    The request body has been read already, so the only message left to receive is the
    disconnect (like vLLM's `with_cancellation`). Plain tasks rather than a task group, so that
    errors from `work` reach the exception handlers as themselves, not in an ExceptionGroup.
    """
    work_task = asyncio.ensure_future(work)
    watch_task = asyncio.ensure_future(_until_disconnect(request.receive))
    try:
        await asyncio.wait({work_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch_task.cancel()
        if not work_task.done():
            work_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        return await work_task  # after a cancel, this waits for its cleanup (the abort)
    return None


def client_gone() -> Response:
    return Response(status_code=499)  # nginx's "client closed request"; nobody reads it


class EventStreamResponse(StreamingResponse):
    """An SSE response whose body generator is closed as soon as the stream ends for any reason
    (done, client gone, write failed), so its cleanup — aborting the engine request — runs now
    rather than whenever the garbage collector finalizes it."""

    def __init__(self, events: AsyncIterator[str]):
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send):
        try:
            async with anyio.create_task_group() as group:
                async def stream():
                    await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await _until_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()


async def stream_events(chunks: AsyncIterator[dict], request_id: str) -> AsyncIterator[str]:
    """Formats chunks as SSE, ending with `[DONE]`. An error after the 200 was sent can only be
    reported inside the stream, as an OpenAI-shaped error event."""
    try:
        async for chunk in chunks:
            yield sse(chunk)
    except Exception as exc:  # the status line is gone; the event is the only way to tell
        log_internal_error(exc, request_id)
        yield sse(error_body(500, internal_error_message(request_id, exc)))
    finally:
        await chunks.aclose()
    yield DONE
