"""Who sends a request: the ``Authorization: Bearer`` header resolved to a principal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rollerblade.access.model import Principal
from rollerblade.errors import Unauthenticated
from rollerblade.pipeline import sharing
from rollerblade.pipeline.services import Services

#: Verifies a Google identity token and returns its email (``adapters/google_identity``).
IdentityVerifier = Callable[[str], str]

_bearer = HTTPBearer(auto_error=False, description="A token from `rollerblade token create` (or a Google ID token).")


def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The request's principal; 401 (``Unauthenticated``) without a valid identity."""
    services: Services = request.app.state.services
    if credentials is None:
        if request.headers.get("authorization"):
            raise Unauthenticated("expected the header 'Authorization: Bearer <token>'")
        raise Unauthenticated(
            "sign in: send 'Authorization: Bearer <token>' (make one with `rollerblade token create`)"
        )
    text = credentials.credentials
    verify: IdentityVerifier | None = request.app.state.verify_identity
    if text.startswith("rbt_") or verify is None:
        return sharing.token_principal(services, text)
    return sharing.email_principal(services, verify(text))
