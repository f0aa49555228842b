"""Bearer API keys on /v1/*, and CORS when origins are configured.

/health and /metrics stay open so that load balancers and Prometheus need no key, as in vLLM.
"""
import hmac

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_response
from .options import ServerOptions

PROTECTED_PREFIX = "/v1"


def key_matches(presented: bytes, keys: tuple[bytes, ...]) -> bool:
    """Every configured key is compared, each with `hmac.compare_digest`, so the time taken
    tells nothing of what a key holds."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key)
    return matched


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, api_keys: tuple[str, ...]):
        self.app = app
        self.keys = tuple(key.encode("utf-8") for key in api_keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send):
        if scope["type"] == "http" and _protected(scope["path"]) and scope["method"] != "OPTIONS" \
                and not self._authorized(scope):
            response = error_response(
                401, "Missing or invalid API key. Send it as 'Authorization: Bearer <key>'.",
                headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        header = next((value for name, value in scope["headers"] if name == b"authorization"),
                      b"")
        scheme, _, token = header.partition(b" ")
        return scheme.lower() == b"bearer" and key_matches(token.strip(), self.keys)


def _protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


def install_access_control(app: FastAPI, options: ServerOptions):
    """Call after every other middleware is added: CORS must be outermost, so that preflight
    requests need no key and a 401 still carries the CORS headers the browser needs to read it."""
    if options.api_keys:
        app.add_middleware(APIKeyMiddleware, api_keys=options.api_keys)
    if options.allowed_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(options.allowed_origins),
                           allow_methods=list(options.allowed_methods),
                           allow_headers=list(options.allowed_headers))
