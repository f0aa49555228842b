"""Every failure leaves the server in OpenAI's error shape, `{"error": {message, type, param, code}}`.

Clients (the `openai` package among them) turn the status code into an exception class and show
`message`, so each handler below says what was wrong in words a caller can act on.
"""
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from shadowkv_engine.errors import EngineDeadError, InvalidRequestError, QueueFullError

logger = logging.getLogger("shadowkv.server")

# Seconds a client told "queue full" should wait; one engine step frees slots far sooner, but a
# shorter hint makes retrying clients hammer a saturated server.
RETRY_AFTER_SECONDS = 1

ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


class APIError(Exception):
    """An error the server itself decides on (unknown model, not ready, unsupported option)."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.param = param
        self.headers = headers


def error_body(status: int, message: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "APIError"),
                      "param": param, "code": status}}


def error_response(status: int, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    parts, param = [], None
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        param = param or (loc[0] if loc else None)
        parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}")
    return "Invalid request: " + "; ".join(parts), param


def install_error_handlers(app: FastAPI):
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return error_response(exc.status, str(exc), exc.param, exc.headers)

    # FastAPI answers malformed bodies with 422 and its own shape; OpenAI clients expect 400.
    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        message, param = _validation_message(exc)
        return error_response(400, message, param)

    @app.exception_handler(InvalidRequestError)
    async def invalid_request(request: Request, exc: InvalidRequestError):
        return error_response(400, str(exc), exc.param)

    @app.exception_handler(QueueFullError)
    async def queue_full(request: Request, exc: QueueFullError):
        message = str(exc) or "The server's request queue is full; retry later."
        return error_response(429, message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    @app.exception_handler(EngineDeadError)
    async def engine_dead(request: Request, exc: EngineDeadError):
        logger.error("engine is dead: %s", exc)
        return error_response(500, f"The engine stopped on an internal error: {exc}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    # Starlette re-raises after this handler, so uvicorn still logs the traceback.
    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return error_response(500, f"Internal server error: {type(exc).__name__}: {exc}")
