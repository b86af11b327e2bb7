"""``/v1`` access routes: who am I, users, tokens, grants and revocations, the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from rollerblade.access.model import Principal
from rollerblade.api.identity import principal
from rollerblade.api.routes_data import services_of
from rollerblade.api.schemas import (
    AccessOut,
    AuditOut,
    Doc,
    GrantBody,
    GrantOut,
    Me,
    RevokeOut,
    TokenBody,
    TokenMade,
    TokenOut,
    UserBody,
    UserOut,
)
from rollerblade.pipeline import sharing

router = APIRouter(tags=["access"])
Who = Annotated[Principal, Depends(principal)]


@router.get("/me", response_model=Me)
def me(who: Who) -> Doc:
    """Who the token stands for."""
    return {"name": who.name, "kind": who.kind, "admin": who.admin}


@router.get("/users", response_model=list[UserOut])
def users(request: Request, who: Who) -> list[Doc]:
    return [u.to_doc() for u in sharing.list_users(services_of(request), who)]


@router.post("/users", response_model=UserOut, status_code=201)
def add_user(request: Request, who: Who, body: UserBody) -> Doc:
    """Add a user (admins only)."""
    return sharing.add_user(services_of(request), who, body.name, email=body.email, admin=body.admin).to_doc()


@router.get("/tokens", response_model=list[TokenOut])
def tokens(request: Request, who: Who) -> list[Doc]:
    """Your tokens (an admin's: everyone's), never their secrets."""
    return [t.public() for t in sharing.list_tokens(services_of(request), who)]


@router.post("/tokens", response_model=TokenMade, status_code=201)
def create_token(request: Request, who: Who, body: TokenBody) -> Doc:
    """A new token for you: the response is the only time it is shown."""
    text, made = sharing.create_token(services_of(request), who, expires_in=body.expires_in, label=body.label)
    return {**made.public(), "token": text}


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(request: Request, who: Who, token_id: Annotated[str, Path(max_length=64)]) -> Doc:
    return sharing.revoke_token(services_of(request), who, token_id).public()


@router.get("/access/{target}", response_model=AccessOut)
def access(request: Request, who: Who, target: Annotated[str, Path(max_length=300)]) -> Doc:
    """Who holds which right on a dataset or Analysis."""
    return sharing.access_show(services_of(request), who, target)


@router.post("/grants", response_model=GrantOut)
def grant(request: Request, who: Who, body: GrantBody) -> Doc:
    """Give a user a right on a dataset (read, write, manage) or Analysis (run, manage)."""
    return sharing.grant(services_of(request), who, body.user, body.right, body.target).to_doc()


@router.post("/revocations", response_model=RevokeOut)
def revoke(request: Request, who: Who, body: GrantBody) -> Doc:
    """Take a right away (the user keeps the right below it)."""
    services = services_of(request)
    kind, name = sharing.resolve_target(services, body.target, body.right)
    left = sharing.revoke(services, who, body.user, body.right, body.target)
    return {"kind": kind, "resource": name, "user": body.user, "right": left.right if left else None}


@router.get("/audit", response_model=list[AuditOut])
def audit(
    request: Request,
    who: Who,
    user: Annotated[str | None, Query(max_length=128)] = None,
    dataset: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[float, Query(ge=0, description="Seconds since the epoch.")] = 0.0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[Doc]:
    """The audit log: all of it for admins, a dataset's for its managers, else your own."""
    found = sharing.audit_entries(services_of(request), who, user=user, dataset=dataset, since=since, limit=limit)
    return [e.to_doc() for e in found]
