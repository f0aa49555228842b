"""The Ray actor that owns one engine replica, and how it is placed on the cluster.

A request starts with `add`, which returns its first output; every later output of every request
comes back through one Ray streaming generator per replica (`outputs`, `num_returns="streaming"`)
that the router reads without pause and hands to each request's queue. Nothing waits to fill a
batch: a batch is whatever is ready when the previous one was sent. Engine errors travel as
`RemoteError` values rather than exceptions, so the router rebuilds the exact error class (and
its HTTP status) without Ray's exception wrapping.
"""
import asyncio
import dataclasses
from dataclasses import dataclass

from ..config import EngineConfig
from ..errors import (EngineDeadError, InvalidRequestError, QueueFullError, RequestFailedError,
                      RequestTooLargeError)
from ..sampling_params import SamplingParams

# The errors a replica reports per request, by class name.
REQUEST_ERRORS = {cls.__name__: cls for cls in (InvalidRequestError, RequestTooLargeError,
                                                QueueFullError, RequestFailedError,
                                                EngineDeadError)}


@dataclass
class RemoteError:
    kind: str  # a key of REQUEST_ERRORS
    message: str
    param: str | None = None

    @classmethod
    def of(cls, error: Exception) -> "RemoteError":
        kind = next(name for name, known in reversed(REQUEST_ERRORS.items())
                    if isinstance(error, known))
        return cls(kind, str(error), getattr(error, "param", None))

    def exception(self) -> Exception:
        error_class = REQUEST_ERRORS[self.kind]
        if issubclass(error_class, InvalidRequestError):
            return error_class(self.message, param=self.param)
        return error_class(self.message)


@dataclass
class ReplicaInfo:
    max_model_len: int
    vocab_size: int
    model_name: str


class EngineReplica:
    """One `AsyncEngine` in its own Ray worker process (an async actor: its methods share the
    worker's event loop with the engine's output queues)."""

    def __init__(self, config: EngineConfig):
        from ..engine.async_engine import AsyncEngine

        self.engine = AsyncEngine(config)
        self.outbox: asyncio.Queue = asyncio.Queue()  # (request id, output or RemoteError)
        self.forwarders: set[asyncio.Task] = set()

    def info(self) -> ReplicaInfo:
        return ReplicaInfo(self.engine.max_model_len, self.engine.vocab_size,
                           self.engine.model_name)

    async def add(self, prompt: list[int], params: SamplingParams, request_id: str):
        """Starts a request and returns its first output, or the RemoteError refusing it; the
        later outputs come through `outputs()`."""
        stream = self.engine.generate(prompt, params, request_id)
        try:
            first = await anext(stream)
        except tuple(REQUEST_ERRORS.values()) as error:
            return RemoteError.of(error)
        if first.finished:
            await stream.aclose()
        else:
            task = asyncio.ensure_future(self._forward(request_id, stream))
            self.forwarders.add(task)
            task.add_done_callback(self.forwarders.discard)
        return first

    async def outputs(self):
        """The outputs of every running request, as the engine makes them: one list per yield,
        of all that are ready by then (under load, one engine step's worth for the whole batch,
        so the Ray cost is paid per step rather than per token of each request)."""
        while True:
            batch = [await self.outbox.get()]
            await asyncio.sleep(0)  # let the step's other requests queue theirs too
            while not self.outbox.empty():
                batch.append(self.outbox.get_nowait())
            yield batch

    async def _forward(self, request_id: str, stream):
        try:
            async for output in stream:
                # The prompt went with the first output; repeating a long prompt's token ids
                # with every token would cost more than the token.
                self.outbox.put_nowait((request_id, dataclasses.replace(
                    output, prompt=None, prompt_token_ids=[])))
        except tuple(REQUEST_ERRORS.values()) as error:
            self.outbox.put_nowait((request_id, RemoteError.of(error)))

    async def abort(self, request_id: str) -> None:
        await self.engine.abort(request_id)

    async def stats(self):
        """(EngineStats, engine dead?). In a thread: the snapshot waits for the running step,
        and the event loop must keep streaming meanwhile."""
        return await asyncio.to_thread(self.engine.stats), self.engine.is_dead

    async def shutdown(self) -> None:
        await self.engine.shutdown()


def actor_options(config: EngineConfig, cluster_gpus: float) -> dict:
    """One GPU per replica when the engine runs on CUDA (Ray sets CUDA_VISIBLE_DEVICES, so the
    engine sees its GPU as cuda:0); one CPU otherwise. Ray restarts nothing itself: the replica
    set notices a dead actor and starts a new one, whatever killed it."""
    on_gpu = config.device.startswith("cuda") or (config.device == "auto" and cluster_gpus >= 1)
    return {"num_gpus": 1 if on_gpu else 0, "num_cpus": 1, "max_restarts": 0}


def replica_config(config: EngineConfig) -> EngineConfig:
    if config.device.startswith("cuda:"):
        return dataclasses.replace(config, device="cuda")  # its one visible GPU
    return config
