"""HTTP plumbing shared by the agent and the simulator: JSON errors, bearer auth, JSON bodies.

Every error leaves as JSON `{"error": ...}`; a traceback goes to the log, never to the client.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from agent.core import BadRequest, Refused
from agent.credentials import peer_credential

log = logging.getLogger("agent.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CREDENTIAL = "credential"  # request key: which credential a request carried (absent on open paths)
CONTROL = "control"
PEER = "peer"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, str(exc))
    except BadRequest as exc:
        return error_response(400, str(exc))
    except Refused as exc:
        return web.json_response(exc.answer, status=409)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return web.json_response(
            {"error": exc.reason},
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"},
        )
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal error (see the agent's log)")


def bearer_auth(
    token: str | Sequence[str],
    open_paths: Callable[[str], bool],
    peer_may: Callable[[web.Request], bool] | None = None,
) -> Any:
    """Middleware refusing (401) requests without `Authorization: Bearer <token>`.

    `token` may be several: during a rotation the agent accepts the old and the new control token
    (and the peer credential of each) until the control plane has moved to the new one.
    With `peer_may`, the peer credential derived from a token (agent/credentials.py) is accepted
    too, but only for the requests `peer_may` allows; any other call with it is refused (403).
    `request[CREDENTIAL]` says which of the two a request carried.
    """
    tokens = [token] if isinstance(token, str) else [t for t in token if t]
    expected = [f"Bearer {t}".encode() for t in tokens]
    peer_expected = [f"Bearer {peer_credential(t)}".encode() for t in tokens]

    def matches(given: bytes, candidates: list[bytes]) -> bool:
        return any([hmac.compare_digest(given, candidate) for candidate in candidates])  # all compared

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not open_paths(request.path):
            given = request.headers.get("Authorization", "").encode()
            if matches(given, expected):
                request[CREDENTIAL] = CONTROL
            elif peer_may is not None and matches(given, peer_expected):
                if not peer_may(request):
                    return error_response(
                        403,
                        f"the peer credential may not call {request.method} {request.path}: it may only send "
                        "heartbeats and read data for a sync; this call needs the control token",
                    )
                request[CREDENTIAL] = PEER
            else:
                return error_response(401, "missing or wrong bearer token")
        return await handler(request)

    return middleware


async def json_body(request: web.Request) -> Any:
    """The request's JSON document, or BadRequest with a readable reason."""
    raw = await request.read()
    if not raw:
        raise BadRequest("request body must be a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
