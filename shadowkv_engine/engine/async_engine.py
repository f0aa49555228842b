"""An asyncio front for the engine: the engine loop runs in its own thread so a server's event
loop never waits on a model step; requests and aborts reach it through a command queue and
outputs come back to each request's asyncio queue."""
import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..config import EngineConfig
from ..errors import EngineDeadError, RequestFailedError
from ..outputs import RequestOutput
from ..sampling_params import SamplingParams
from .llm_engine import LLMEngine
from .stats import EngineStats

logger = logging.getLogger(__name__)


@dataclass
class _Stream:
    loop: asyncio.AbstractEventLoop
    outputs: asyncio.Queue

    def put(self, item) -> None:
        self.call(self.outputs.put_nowait, item)

    def call(self, fn, *args) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the caller's event loop is closed: nobody is listening any more


class AsyncEngine:
    def __init__(self, config: EngineConfig):
        self.config = config
        self.engine = LLMEngine(config)
        self.tokenizer = self.engine.tokenizer
        self.max_model_len = self.engine.max_model_len
        self.model_name = self.engine.model_name
        self.vocab_size = self.engine.model_config.vocab_size
        self._commands: queue.Queue = queue.Queue()
        self._streams: dict[str, _Stream] = {}
        self._step_lock = threading.Lock()
        self._dead: BaseException | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="shadowkv-engine", daemon=True)
        self._thread.start()

    @property
    def num_unfinished_requests(self) -> int:
        return len(self._streams)

    @property
    def is_dead(self) -> bool:
        return self._dead is not None

    def stats(self) -> EngineStats:
        with self._step_lock:
            return self.engine.stats()

    async def generate(self, prompt: str | list[int], params: SamplingParams,
                       request_id: str) -> AsyncIterator[RequestOutput]:
        """Streams cumulative outputs; the last one has finished=True. Raises the engine's
        request errors before yielding. Closing the iterator early aborts the request."""
        if self._dead is not None:
            raise EngineDeadError(f"the engine stopped after an error: {self._dead}")
        loop = asyncio.get_running_loop()
        accepted = loop.create_future()
        stream = _Stream(loop, asyncio.Queue())
        self._commands.put(("add", request_id, prompt, params, stream, accepted))
        try:
            await accepted
        except asyncio.CancelledError:
            self._commands.put(("abort", request_id))  # it may have been added meanwhile
            raise
        finished = False
        try:
            while True:
                item = await stream.outputs.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item.finished
                yield item
                if finished:
                    return
        finally:
            if not finished:
                self._commands.put(("abort", request_id))

    async def abort(self, request_id: str) -> None:
        self._commands.put(("abort", request_id))

    async def shutdown(self) -> None:
        """Stops the engine loop after the commands already sent; unfinished requests are
        aborted (their streams end with finish_reason "abort")."""
        self._commands.put(("stop",))
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 30)

    # ---- the engine thread -----------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while not self._stopping:
                idle = not self.engine.has_unfinished_requests()
                self._drain_commands(block=idle)
                if self.engine.has_unfinished_requests():
                    with self._step_lock:
                        outputs = self.engine.step()
                    self._deliver(outputs)
            for request_id in list(self._streams):
                self._execute(("abort", request_id))
        except BaseException as e:  # the engine is unusable now: fail every open request
            logger.exception("engine loop died")
            self._dead = e
            error = EngineDeadError(f"the engine stopped after an error: {e}")
            for stream in self._streams.values():
                stream.put(error)
            self._streams.clear()

    def _drain_commands(self, block: bool) -> None:
        try:
            command = self._commands.get(timeout=0.5) if block else self._commands.get_nowait()
        except queue.Empty:
            return
        while True:
            self._execute(command)
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return

    def _execute(self, command: tuple) -> None:
        kind = command[0]
        if kind == "add":
            _, request_id, prompt, params, stream, accepted = command
            try:
                with self._step_lock:
                    self.engine.add_request(request_id, prompt, params,
                                            queue_limit=self.config.max_queued_requests)
            except Exception as e:  # bad input: the caller gets the error, the engine goes on
                stream.call(_settle, accepted, e)
                return
            self._streams[request_id] = stream
            stream.call(_settle, accepted, None)
        elif kind == "abort":
            _, request_id = command
            stream = self._streams.pop(request_id, None)
            with self._step_lock:
                output = self.engine.abort_request(request_id)
            if stream is not None and output is not None:
                stream.put(output)
        elif kind == "stop":
            self._stopping = True

    def _deliver(self, outputs: list[RequestOutput]) -> None:
        for output in outputs:
            stream = self._streams.get(output.request_id)
            if stream is None:
                continue
            if output.finished:
                del self._streams[output.request_id]
            stream.put(RequestFailedError(output.error) if output.error else output)


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
