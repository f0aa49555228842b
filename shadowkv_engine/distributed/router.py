"""The engine API of one `AsyncEngine` (see docs/architecture.md) over N Ray replicas: the server
drives it unchanged.

Each request goes to the ready replica that best holds it: first the replicas whose free KV pages
(GPU pages, and for a prompt ShadowKV compresses, value pages in host or GPU memory) hold its
estimated need now, then the fewest requests running there, then the most free pages, then in turn.
The estimate only ranks replicas; the chosen replica admits exactly. A request no replica can ever
hold is refused by the first one tried (RequestTooLargeError, all replicas being alike); one
refused for a full queue is offered to the next, and gets the 429 only when every queue is full.
A request whose replica dies before its first output is offered to the next one too.
"""
import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import fields

from ..config import EngineConfig
from ..engine.stats import EngineStats
from ..errors import EngineDeadError, QueueFullError, RequestFailedError
from ..model.tokenizer import Tokenizer
from ..outputs import RequestOutput
from ..sampling_params import SamplingParams
from . import NoReplicaReadyError, ReplicaDiedError, require_ray
from .replica import RemoteError
from .replica_set import Replica, ReplicaSet

logger = logging.getLogger(__name__)


class ReplicaRouter:
    def __init__(self, ray, config: EngineConfig, replicas: ReplicaSet, info, tokenizer,
                 owns_ray: bool):
        self.ray = ray
        self.config = config
        self.replicas = replicas
        self.tokenizer = tokenizer
        self.max_model_len = info.max_model_len
        self.vocab_size = info.vocab_size
        self.model_name = info.model_name
        self.is_dead = False  # replicas are replaced, never given up on
        self._owns_ray = owns_ray
        self._running: dict[str, Replica] = {}
        self._turn = itertools.count()

    @classmethod
    async def start(cls, config: EngineConfig, size: int, address: str | None = None,
                    ) -> "ReplicaRouter":
        """Uses the Ray cluster this process is connected to, else connects to `address`
        ("auto": the one this node joined with `ray start`; None: Ray's default, $RAY_ADDRESS,
        then the last `ray start` cluster of this node, then a new local one); then starts
        `size` replicas and waits until all are ready."""
        ray = require_ray()
        owns_ray = not ray.is_initialized()
        if owns_ray:
            await asyncio.to_thread(ray.init, address=address, include_dashboard=False)
        try:
            replicas = ReplicaSet(ray, config, size)
            info = await replicas.start()
            tokenizer = await asyncio.to_thread(Tokenizer.from_pretrained, config.model)
        except BaseException:
            if owns_ray:
                ray.shutdown()
            raise
        logger.info("%d replicas ready on Ray (%s)", size, "GPU" if
                    replicas.options["num_gpus"] else "CPU")
        return cls(ray, config, replicas, info, tokenizer, owns_ray)

    # ---- the AsyncEngine API -------------------------------------------------------------
    @property
    def num_unfinished_requests(self) -> int:
        return len(self._running)

    async def generate(self, prompt: list[int], params: SamplingParams,
                       request_id: str) -> AsyncIterator[RequestOutput]:
        refused: Exception | None = None
        for replica in self._by_preference(len(prompt), params):
            stream = self._stream(replica, prompt, params, request_id)
            try:
                first = await anext(stream)
            except (QueueFullError, ReplicaDiedError) as e:
                refused = e  # nothing was sent yet: the next replica may take it
                continue
            async with contextlib.aclosing(stream):
                yield first
                async for output in stream:
                    yield output
            return
        raise refused or NoReplicaReadyError("No engine replica is ready; they are restarting.")

    async def abort(self, request_id: str) -> None:
        replica = self._running.get(request_id)
        if replica is not None and replica.state == "ready":
            replica.actor.abort.remote(request_id)  # no wait: a dying actor may never answer

    def stats(self) -> EngineStats:
        """The sum over ready replicas."""
        snapshots = [s for s in self.replica_stats().values() if s is not None]
        return EngineStats(**{f.name: sum(getattr(s, f.name) for s in snapshots)
                              for f in fields(EngineStats)})

    async def shutdown(self) -> None:
        await self.replicas.shutdown()
        if self._owns_ray:
            self.ray.shutdown()

    # ---- replicas, for /health and /metrics ----------------------------------------------
    def replica_states(self) -> dict[str, str]:
        return {str(r.index): r.state for r in self.replicas.replicas}

    def replica_stats(self) -> dict[str, EngineStats | None]:
        """The last snapshot of each replica (polled every fraction of a second); None while
        it is down or starting."""
        return {str(r.index): r.stats for r in self.replicas.replicas}

    def replica_requests(self) -> dict[str, int]:
        return {str(r.index): r.routed for r in self.replicas.replicas}

    # ---- routing ---------------------------------------------------------------------------
    def _pages_needed(self, prompt_len: int, params: SamplingParams) -> tuple[int, int]:
        """(GPU, value) pages the request holds at its peak, roughly: a compressed prompt is
        dense on the GPU until its prefill ends, and its values then live in value pages."""
        max_len = min(prompt_len + (params.max_tokens or self.max_model_len), self.max_model_len)
        bs = self.config.block_size
        if (self.config.attention == "shadowkv"
                and prompt_len >= self.config.shadowkv.min_context_len):
            return -(-prompt_len // bs) * params.n, -(-max_len // bs) * params.n
        return -(-max_len // bs) * params.n, 0

    def _by_preference(self, prompt_len: int, params: SamplingParams) -> list[Replica]:
        gpu, values = self._pages_needed(prompt_len, params)
        turn = next(self._turn)
        ready = self.replicas.ready
        count = len(self.replicas.replicas)

        def rank(replica: Replica):
            s = replica.stats or EngineStats()
            free_gpu = s.gpu_blocks_total - s.gpu_blocks_used
            free_values = s.free_value_blocks
            fits = free_gpu >= gpu and free_values >= values
            free = min(free_gpu / max(s.gpu_blocks_total, 1),
                       free_values / s.value_blocks_total if s.value_blocks_total else 1.0)
            return not fits, replica.inflight, -round(free, 2), (replica.index - turn) % count

        return sorted(ready, key=rank)

    async def _stream(self, replica: Replica, prompt, params, request_id: str):
        died = replica.died
        outputs = replica.streams[request_id] = asyncio.Queue()
        replica.inflight += 1
        replica.routed += 1
        self._running[request_id] = replica
        death = asyncio.ensure_future(died.wait())
        ended = False
        try:
            item = await self._until_death(replica.actor.add.remote(prompt, params, request_id),
                                           death, replica, died, request_id)
            prompt_text = prompt_ids = None
            while True:
                if isinstance(item, RemoteError):
                    ended = True
                    if item.kind == EngineDeadError.__name__:
                        self.replicas.mark_down(replica, died, "its engine loop died")
                        raise self._died(replica, request_id)
                    raise item.exception()
                if prompt_ids is None:
                    prompt_text, prompt_ids = item.prompt, item.prompt_token_ids
                else:  # the replica sends the prompt with the first output only
                    item.prompt, item.prompt_token_ids = prompt_text, prompt_ids
                ended = item.finished
                yield item
                if ended:
                    return
                item = await self._until_death(outputs.get(), death, replica, died, request_id)
        finally:
            death.cancel()
            replica.inflight -= 1
            replica.streams.pop(request_id, None)
            self._running.pop(request_id, None)
            if not ended and not died.is_set():
                replica.actor.abort.remote(request_id)

    async def _until_death(self, work, death: asyncio.Future, replica: Replica,
                           died: asyncio.Event, request_id: str):
        """Awaits `work`, or raises ReplicaDiedError as soon as the replica is declared dead,
        whether Ray reports it on this call or the watcher or output stream noticed."""
        work = asyncio.ensure_future(work)
        try:
            await asyncio.wait({work, death}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                raise self._died(replica, request_id)
            return work.result()
        except self.ray.exceptions.RayTaskError as e:  # a bug in the replica's code
            logger.error("replica %d failed on request %s: %s", replica.index, request_id, e)
            raise RequestFailedError(f"replica {replica.index} failed on request {request_id}")
        except self.ray.exceptions.RayError as e:  # the actor died or cannot be reached
            self.replicas.mark_down(replica, died, type(e).__name__)
            raise self._died(replica, request_id) from None
        finally:
            work.cancel()

    def _died(self, replica: Replica, request_id: str) -> ReplicaDiedError:
        return ReplicaDiedError(f"The engine replica running this request (replica "
                                f"{replica.index}) stopped before it finished; request "
                                f"{request_id} is lost. Retry it: the other replicas are serving.")
