"""Runs the app under uvicorn, with a graceful drain on SIGTERM.

uvicorn's own SIGTERM handling closes the listening socket at once, so a request arriving during
the drain gets "connection refused" and load balancers cannot tell a draining server from a dead
one. Here SIGTERM instead turns /health and new requests to 503 while the socket stays open,
waits up to `shutdown_timeout` seconds for running requests to finish, aborts what is left, and
only then lets uvicorn stop. A second SIGTERM, or SIGINT (Ctrl-C), stops at once.
"""
import asyncio
import logging
import signal

import uvicorn

from shadowkv_engine.config import EngineConfig

from .app import build_app
from .options import ServerOptions
from .state import ServerState

logger = logging.getLogger("shadowkv.server")

# After the drain, how long aborted streams get to send their last chunk before uvicorn closes
# their connections.
ABORT_GRACE_SECONDS = 5.0


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState, shutdown_timeout: float):
        super().__init__(config)
        self.state = state
        self.shutdown_timeout = shutdown_timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self.drain: asyncio.Task | None = None
        self.failed = False

    async def startup(self, sockets=None):
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig, frame):
        if sig == signal.SIGTERM and self.drain is None and self.loop is not None:
            # A signal handler may not touch the loop's internals; hand the work to the loop.
            self.loop.call_soon_threadsafe(self._start_drain)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self):
        if self.drain is None:
            self.drain = self.loop.create_task(self._drain())

    async def _drain(self):
        self.state.phase = "draining"
        running = len(self.state.inflight)
        logger.info("SIGTERM: draining %d running request(s) for up to %.0f s", running,
                    self.shutdown_timeout)
        if not await self.state.inflight.wait_idle(self.shutdown_timeout):
            logger.warning("shutdown timeout: aborting %d request(s) still running",
                           len(self.state.inflight))
            await self.state.inflight.abort_all()
            await self.state.inflight.wait_idle(ABORT_GRACE_SECONDS)
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.state.status == "failed":  # the engine failed to load or died: nothing to serve
            self.failed = True
            return True
        return await super().on_tick(counter)


def serve(config: EngineConfig, host: str, port: int, shutdown_timeout: float,
          log_level: str = "info", options: ServerOptions = ServerOptions()) -> int:
    """Serves until SIGTERM/SIGINT; returns the process exit code."""
    app = build_app(config, options=options)
    uvicorn_config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                    timeout_graceful_shutdown=ABORT_GRACE_SECONDS)
    server = DrainingServer(uvicorn_config, app.state.server, shutdown_timeout)
    server.run()
    return 1 if server.failed else 0
