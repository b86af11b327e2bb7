"""One error shape for every response that is not a success, in one place.

``{"error": {"status": 403, "type": "permission_denied", "message": "..."}}``: the
core's error family mapped to HTTP statuses (401 for a missing or bad identity, 403 for
a missing right), query errors with their position and suggestions, and never a stack
trace: an unexpected error is logged here and answered with a plain 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from rollerblade import errors

log = logging.getLogger("rollerblade.api")

#: (error class, HTTP status, type name), most specific first.
STATUSES: tuple[tuple[type[Exception], int, str], ...] = (
    (errors.Unauthenticated, 401, "unauthenticated"),
    (errors.PermissionDenied, 403, "permission_denied"),
    (errors.NotFound, 404, "not_found"),
    (errors.AlreadyExists, 409, "already_exists"),
    (errors.QueryError, 400, "query_error"),
    (errors.InputError, 400, "bad_input"),
    (errors.TemporaryError, 503, "unavailable"),
    (errors.RollerbladeError, 500, "failed"),
)


def body(status: int, kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"status": status, "type": kind, "message": message, **extra}}


def respond(status: int, kind: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(body(status, kind, message, **extra), status_code=status, headers=headers)


def _rollerblade(_: Request, exc: Exception) -> JSONResponse:
    status, kind = next((s, k) for cls, s, k in STATUSES if isinstance(exc, cls))
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, errors.Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, errors.TemporaryError):
        headers["Retry-After"] = str(max(1, round(exc.delay)))
    if isinstance(exc, errors.QueryError):
        extra = {"position": exc.position, "token": exc.token, "suggestions": list(exc.suggestions)}
    return respond(status, kind, str(exc), headers or None, **extra)


def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
    return respond(422, "invalid_request", "; ".join(problems) or "invalid request")


def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kinds = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 414: "too_large"}
    headers = dict(exc.headers) if exc.headers else None
    return respond(exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail), headers)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
    return respond(500, "internal", "internal error: the server logged it")


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.RollerbladeError, _rollerblade)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
