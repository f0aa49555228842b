"""The FastAPI app: OpenAI endpoints plus health, metrics and version, on one `AsyncEngine`."""
import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST

from shadowkv_engine import __version__
from shadowkv_engine.config import EngineConfig

from . import chat, completions
from .errors import APIError, error_response, install_error_handlers
from .responses import now
from .state import ServerState

logger = logging.getLogger("shadowkv.server")


async def _load_engine(state: ServerState):
    # In a worker thread: loading weights takes seconds to minutes, and meanwhile the event loop
    # keeps answering /health with 503 so orchestrators see "starting", not "down".
    from shadowkv_engine.engine.async_engine import AsyncEngine

    try:
        state.engine = await asyncio.to_thread(AsyncEngine, state.config)
    except Exception:
        logger.exception("could not load the engine for %s", state.config.model)
        state.phase = "failed"
        return
    state.phase = "ready"
    logger.info("engine ready: serving %s (max_model_len %d)", state.model_name,
                state.engine.max_model_len)


def build_app(config: EngineConfig, engine=None) -> FastAPI:
    """An app serving `engine`, or, if None, an engine it builds from `config` after it starts.

    The app owns the engine either way and shuts it down when the app stops.
    """
    state = ServerState(config, engine)
    if engine is not None:
        state.phase = "ready"

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loader = asyncio.create_task(_load_engine(state)) if state.engine is None else None
        yield
        if loader is not None and not loader.done():
            loader.cancel()  # the thread finishes loading on its own; its engine is dropped
        if state.engine is not None:
            await state.engine.shutdown()

    app = FastAPI(title="ShadowKV OpenAI-compatible server", lifespan=lifespan)
    app.state.server = state
    install_error_handlers(app)
    app.include_router(completions.router)
    app.include_router(chat.router)

    @app.get("/health")
    async def health():
        if state.status != "ready":
            return error_response(503, f"Service unavailable: {state.status}.")
        return Response(status_code=200)

    @app.get("/v1/models")
    async def models():
        if state.engine is None:
            raise APIError(503, f"Service unavailable: {state.status}.")
        card = {"id": state.model_name, "object": "model", "created": now(),
                "owned_by": "shadowkv", "root": str(state.config.model),
                "max_model_len": state.engine.max_model_len}
        return {"object": "list", "data": [card]}

    @app.get("/version")
    async def version():
        return {"version": __version__}

    @app.get("/metrics")
    async def metrics():
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app
