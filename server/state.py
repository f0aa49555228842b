"""What one server instance knows: its engine, its lifecycle phase, its requests and metrics."""
from dataclasses import dataclass, field

from shadowkv_engine.config import EngineConfig

from .errors import APIError, clip
from .inflight import InFlightRequests
from .metrics import ServerMetrics
from .options import ServerOptions


@dataclass
class ServerState:
    config: EngineConfig
    engine: object | None = None  # AsyncEngine once loaded
    options: ServerOptions = field(default_factory=ServerOptions)
    # starting: the engine is loading; ready: serving; draining: SIGTERM received, finishing
    # running requests and refusing new ones; failed: the engine could not load or died.
    phase: str = "starting"
    metrics: ServerMetrics = field(init=False)
    inflight: InFlightRequests = field(init=False)

    def __post_init__(self):
        self.metrics = ServerMetrics(self, self.model_name)
        self.inflight = InFlightRequests(self.metrics)

    @property
    def model_name(self) -> str:
        return self.config.model_name

    @property
    def vocab_size(self) -> int:
        return self.engine.vocab_size

    @property
    def status(self) -> str:
        """The phase, where an engine whose loop died counts as failed."""
        if self.engine is not None and self.engine.is_dead:
            return "failed"
        return self.phase

    def replica_states(self) -> dict[str, str] | None:
        """Each replica's state behind a data-parallel router; None for one in-process engine."""
        states = getattr(self.engine, "replica_states", None)
        return states() if states is not None else None

    def ready_engine(self):
        """The engine, if this server takes new requests now; else a 503 for the caller."""
        if self.status != "ready":
            reason = {"starting": "the model is still loading",
                      "draining": "the server is shutting down",
                      "failed": "the engine failed"}[self.status]
            raise APIError(503, f"Service unavailable: {reason}.")
        return self.engine

    def check_model(self, requested: str | None):
        if requested is not None and requested != self.model_name:
            raise APIError(404, f"The model `{clip(requested, 100)}` does not exist. This server "
                                f"serves `{self.model_name}`.", "model")
