"""Build the ASGI app: identity, limits, the error shape and the routers.

Entry point only: each route decodes its request, calls one use case with the request's
principal and encodes the result. Identity comes from ``Authorization: Bearer``: a
Rollerblade token (``rbt_...``), or, when the deployment configures a verifier, a
Google-signed identity token mapped to a user by email. Without a header a request is
anonymous and every ``/v1`` route answers 401.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from rollerblade import web
from rollerblade.api import errors, routes_access, routes_data, routes_work
from rollerblade.api.identity import IdentityVerifier, principal
from rollerblade.api.schemas import ErrorBody
from rollerblade.pipeline.services import Services

#: Largest request body accepted (bytes): queries and grants are small.
MAX_BODY = 64 * 1024
#: Longest URL query string accepted (bytes).
MAX_QUERY_STRING = 8 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Limits:
    """Refuses oversized bodies (413) and query strings (414) before any route runs,
    counting streamed bodies too (a missing or lying Content-Length changes nothing)."""

    def __init__(self, app: ASGIApp, *, max_body: int = MAX_BODY, max_query: int = MAX_QUERY_STRING) -> None:
        self.app, self.max_body, self.max_query = app, max_body, max_query

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > self.max_query:
            await self._refuse(send, 414, f"the query string is over {self.max_query} bytes: send the query in a body")
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._refuse(send, 413, f"the request body is over {self.max_body} bytes")
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise _TooLarge()
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send, 413, f"the request body is over {self.max_body} bytes")

    @staticmethod
    async def _refuse(send: Send, status: int, message: str) -> None:
        response = errors.respond(status, "too_large", message)
        await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass


#: Every error status a route may answer, all with the one error shape.
ERROR_STATUSES = {
    400: "Bad input: a query, a name, a right (query errors carry position and suggestions)",
    401: "No identity, or an expired, revoked, malformed or forged one",
    403: "A missing right",
    404: "No such thing (or route)",
    409: "It exists already",
    413: "The request body is too large",
    414: "The query string is too long",
    422: "A malformed request",
    503: "Briefly unavailable: retry after Retry-After seconds",
}


def create_app(services: Services, *, verify_identity: IdentityVerifier | None = None) -> FastAPI:
    """The API over ``services``."""
    app = FastAPI(
        title="Rollerblade",
        version="1",
        summary="Store, index, query, share and analyse BIDS brain-imaging data.",
        description="Every /v1 route needs 'Authorization: Bearer <token>'. Errors share one shape (ErrorBody).",
        responses={status: {"model": ErrorBody, "description": why} for status, why in ERROR_STATUSES.items()},
    )
    app.state.services = services
    app.state.verify_identity = verify_identity
    errors.install(app)
    for router in (routes_data.router, routes_work.router, routes_access.router):
        app.include_router(router, prefix="/v1", dependencies=[Depends(principal)])

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        """Liveness (no identity needed)."""
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The web page (it logs in with a token and calls only /v1)."""
        return FileResponse(web.STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/ui", StaticFiles(directory=web.STATIC, check_dir=False), name="ui")
    app.add_middleware(Limits)
    app.add_middleware(SecurityHeaders)
    return app


class SecurityHeaders:
    """Every response carries the page's Content-Security-Policy (own origin only) and
    tells browsers not to sniff types or send referrers."""

    HEADERS = (
        (b"content-security-policy", web.CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
