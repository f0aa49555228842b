"""The FastAPI app: OpenAI endpoints plus health, metrics and version, on one `AsyncEngine`."""
import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from shadowkv_engine import __version__
from shadowkv_engine.config import EngineConfig

from . import chat, completions
from .auth import install_access_control
from .errors import (APIError, ErrorResponse, InternalErrorMiddleware, error_response,
                     install_error_handlers)
from .limits import BodyLimitMiddleware
from .options import ServerOptions
from .responses import now
from .state import ServerState

logger = logging.getLogger("shadowkv.server")


async def _start_engine(state: ServerState):
    """One engine in a worker thread, or the replicas' router: loading weights takes seconds to
    minutes, and meanwhile the event loop keeps answering /health with 503 so orchestrators see
    "starting", not "down"."""
    options = state.options
    if options.distributed_backend == "ray":  # Ray is imported only here
        from shadowkv_engine.distributed.router import ReplicaRouter

        return await ReplicaRouter.start(state.config, options.data_parallel_size,
                                         options.ray_address)
    from shadowkv_engine.engine.async_engine import AsyncEngine

    return await asyncio.to_thread(AsyncEngine, state.config)


async def _load_engine(state: ServerState):
    try:
        state.engine = await _start_engine(state)
    except Exception:
        logger.exception("could not load the engine for %s", state.config.model)
        state.phase = "failed"
        return
    state.phase = "ready"
    logger.info("engine ready: serving %s (max_model_len %d)", state.model_name,
                state.engine.max_model_len)


class Health(BaseModel):
    status: str


class ReplicatedHealth(Health):
    """With --data-parallel-size: "ready" when every replica is, "degraded" (still HTTP 200)
    while some are down or restarting; each replica's state: ready, down or starting."""

    replicas: dict[str, str]


def build_app(config: EngineConfig, engine=None,
              options: ServerOptions = ServerOptions()) -> FastAPI:
    """An app serving `engine`, or, if None, an engine it builds from `config` after it starts.

    The app owns the engine either way and shuts it down when the app stops.
    """
    state = ServerState(config, engine, options)
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

    app = FastAPI(title="ShadowKV OpenAI-compatible server", version=__version__,
                  lifespan=lifespan)
    app.state.server = state
    install_error_handlers(app)
    # Innermost first: the last one added sees a request first.
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=options.max_request_body_bytes)
    install_access_control(app, options)
    app.include_router(completions.router)
    app.include_router(chat.router)

    @app.get("/health", response_model=Health, responses={503: {"model": ErrorResponse}})
    async def health():
        if state.status != "ready":
            return error_response(503, f"Service unavailable: {state.status}.")
        replicas = state.replica_states()
        if replicas is None:
            return Health(status="ready")
        if "ready" not in replicas.values():
            return error_response(503, "Service unavailable: no engine replica is ready "
                                       f"(replicas: {replicas}).")
        degraded = any(s != "ready" for s in replicas.values())
        body = ReplicatedHealth(status="degraded" if degraded else "ready", replicas=replicas)
        return JSONResponse(body.model_dump())

    @app.get("/v1/models", responses={503: {"model": ErrorResponse}})
    async def models():
        if state.engine is None:
            raise APIError(503, f"Service unavailable: {state.status}.")
        card = {"id": state.model_name, "object": "model", "created": now(),
                "owned_by": "shadowkv", "root": state.model_name,
                "max_model_len": state.engine.max_model_len}
        return {"object": "list", "data": [card]}

    @app.get("/version")
    async def version():
        return {"version": __version__}

    @app.get("/metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus"}})
    async def metrics():
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.openapi = lambda: openapi_schema(app)
    return app


def openapi_schema(app: FastAPI) -> dict:
    """FastAPI's schema, with the 400 this server sends for a malformed body where FastAPI
    documents its own 422 (see errors.install_error_handlers)."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        schemas = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
