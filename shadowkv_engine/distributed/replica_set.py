"""Starts the replicas, watches them, and replaces the ones that die.

A replica is `ready` (takes requests), `down` (its actor died, its engine died, or it stopped
answering; its in-flight requests end with `ReplicaDiedError`) or `starting` (a new actor is
loading the engine). A watcher asks every ready replica for its stats each `POLL_SECONDS`; the
router reports a dead actor sooner, as soon as one of its streams fails. Replacing is done here
rather than by Ray's `max_restarts`, so that a replica killed on purpose (`ray.kill`), one whose
engine loop died, and one that hangs are all handled the same way.
"""
import asyncio
import logging
from dataclasses import dataclass, field

from ..config import EngineConfig
from ..engine.stats import EngineStats
from .replica import EngineReplica, ReplicaInfo, actor_options, replica_config

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
# A replica whose stats do not arrive within this is declared dead; a snapshot waits at most
# for one engine step, which takes well under a second even for a long prefill chunk.
STATS_TIMEOUT_SECONDS = 30.0
RESTART_BACKOFF_SECONDS = 5.0  # after a replacement itself failed to start


@dataclass
class Replica:
    index: int
    actor: object = None
    state: str = "starting"  # starting, ready, down
    stats: EngineStats | None = None  # the last snapshot, while ready
    inflight: int = 0  # requests the router has running on it
    routed: int = 0  # requests the router ever sent to it (all its incarnations)
    restarts: int = 0
    # Set when this incarnation dies; a replacement gets a new one.
    died: asyncio.Event = field(default_factory=asyncio.Event)
    # Request id -> the queue its outputs go to, as the replica's output stream delivers them.
    streams: dict[str, asyncio.Queue] = field(default_factory=dict)


class ReplicaSet:
    def __init__(self, ray, config: EngineConfig, size: int):
        self.ray = ray
        self.config = replica_config(config)
        gpus = ray.cluster_resources().get("GPU", 0)
        self.options = actor_options(config, gpus)
        if self.options["num_gpus"] * size > gpus:
            raise RuntimeError(f"{size} replicas on CUDA need {size} GPUs, but the Ray cluster "
                               f"has {gpus:g}; lower --data-parallel-size or add nodes")
        self.actor_class = ray.remote(EngineReplica)
        self.replicas = [Replica(i) for i in range(size)]
        self._tasks: set[asyncio.Task] = set()
        self._closing = False

    async def start(self) -> ReplicaInfo:
        """Starts every replica and the watcher; fails if any replica fails to start."""
        try:
            infos = await asyncio.gather(*(self._launch(r) for r in self.replicas))
        except BaseException:
            await self.shutdown()
            raise
        self._spawn(self._watch())
        return infos[0]

    @property
    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.state == "ready"]

    def mark_down(self, replica: Replica, died: asyncio.Event, why: str):
        """Declares the incarnation whose event is `died` dead (once) and starts replacing it."""
        if replica.died is not died or died.is_set() or self._closing:
            return
        logger.error("replica %d is down (%s); starting a new one", replica.index, why)
        replica.state, replica.stats = "down", None
        died.set()  # ends its in-flight streams
        self._kill(replica.actor)
        self._spawn(self._replace(replica))

    async def shutdown(self):
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        actors = [r.actor for r in self.replicas if r.actor is not None]
        if actors:  # let each engine abort its requests and stop, then end the processes
            await asyncio.wait([asyncio.ensure_future(self._stop(actor)) for actor in actors])

    # ---- internals -----------------------------------------------------------------------
    async def _launch(self, replica: Replica) -> ReplicaInfo:
        replica.state, replica.died, replica.streams = "starting", asyncio.Event(), {}
        replica.actor = self.actor_class.options(**self.options).remote(self.config)
        info = await replica.actor.info.remote()
        replica.stats, _ = await replica.actor.stats.remote()
        self._spawn(self._deliver(replica, replica.died))
        replica.state = "ready"
        return info

    async def _deliver(self, replica: Replica, died: asyncio.Event):
        """Reads the replica's output stream for as long as this incarnation lives, handing
        each output to its request's queue; the stream failing means the actor died."""
        batches = replica.actor.outputs.options(num_returns="streaming").remote()
        try:
            async for ref in batches:
                for request_id, item in await ref:
                    queue = replica.streams.get(request_id)
                    if queue is not None:  # else the request was given up already
                        queue.put_nowait(item)
        except Exception as e:  # Ray's errors, and anything else: outputs can no longer flow
            self.mark_down(replica, died, type(e).__name__)
        else:
            self.mark_down(replica, died, "its output stream ended")

    async def _replace(self, replica: Replica):
        while not self._closing:
            try:
                await self._launch(replica)
            except Exception as e:
                logger.error("replica %d did not start again: %s; retrying in %.0f s",
                             replica.index, e, RESTART_BACKOFF_SECONDS)
                replica.state = "down"
                self._kill(replica.actor)
                await asyncio.sleep(RESTART_BACKOFF_SECONDS)
                continue
            replica.restarts += 1
            logger.info("replica %d is back (restart %d)", replica.index, replica.restarts)
            return

    async def _watch(self):
        while True:
            await asyncio.gather(*(self._poll(r) for r in self.ready))
            await asyncio.sleep(POLL_SECONDS)

    async def _poll(self, replica: Replica):
        died = replica.died
        try:
            stats, engine_dead = await asyncio.wait_for(replica.actor.stats.remote(),
                                                        STATS_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            self.mark_down(replica, died, f"no answer in {STATS_TIMEOUT_SECONDS:.0f} s")
        except Exception as e:  # Ray's errors (the actor died), or it answered nonsense
            self.mark_down(replica, died, type(e).__name__)
        else:
            if engine_dead:
                self.mark_down(replica, died, "its engine loop died")
            elif replica.died is died and not died.is_set():
                replica.stats = stats

    async def _stop(self, actor):
        try:
            await asyncio.wait_for(actor.shutdown.remote(), 30)
        except Exception:
            pass  # dead already, or stuck: it is killed next either way
        self._kill(actor)

    def _kill(self, actor):
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception:
            pass  # already gone

    def _spawn(self, work):
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
