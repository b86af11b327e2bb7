"""Identity and sharing use cases: who is acting, users, API tokens, grants, the audit log.

Entry points resolve their principal here once per command or request
(:func:`local_principal` for the CLI, :func:`token_principal` and
:func:`email_principal` for HTTP) and pass it to every use case. Grants, revokes and
token operations are written to the audit log; so is every refusal (by the guard).
"""

from __future__ import annotations

import dataclasses
import difflib
import time
from typing import Any

from rollerblade.access import tokens
from rollerblade.access.model import (
    ANONYMOUS,
    KINDS,
    MANAGE,
    RIGHTS,
    AuditEntry,
    Grant,
    Principal,
    Token,
    User,
    after_revoke,
    check_right,
    check_user_name,
    implies,
)
from rollerblade.access.ports import AccessStore, LastManager
from rollerblade.errors import InputError, NotFound, PermissionDenied, Unauthenticated
from rollerblade.pipeline.services import Services

#: A token's last-used time is written at most this often (seconds): not once per request.
TOUCH_EVERY = 60.0


def _store(services: Services) -> AccessStore:
    return services.guard.access


def _principal(user: User) -> Principal:
    return Principal(user.name, "user", admin=user.admin)


# -- identity ------------------------------------------------------------------------


def local_principal(services: Services, os_user: str, *, as_user: str | None = None) -> Principal:
    """The CLI's principal: the OS user, made a Rollerblade user on first use (the first
    user of a new store is its admin). ``as_user`` switches to another existing user,
    for admins only."""
    me, _ = _store(services).create_user(user=User(name=check_user_name(os_user), created=time.time()))
    principal = _principal(me)
    if as_user is None or as_user == me.name:
        return principal
    if not principal.admin:
        services.guard.deny(principal, "act-as", "user", as_user, "not an admin")
        raise PermissionDenied(principal.name, "act as", "user", as_user, hint="only admins may use --as")
    other = _store(services).get_user(name=as_user)
    if other is None:
        raise NotFound("user", _with_suggestion(as_user, [u.name for u in _store(services).users()]))
    return _principal(other)


def token_principal(services: Services, text: str | None) -> Principal:
    """The principal a bearer token stands for; ANONYMOUS when there is none;
    ``Unauthenticated`` for an expired, revoked, malformed or forged one."""
    if not text:
        return ANONYMOUS
    store = _store(services)
    now = time.time()
    token = tokens.verify(text, store.get_token(token_id=tokens.token_id(text)), now=now)
    user = store.get_user(name=token.user)
    if user is None:
        raise Unauthenticated(f"token {token.id} belongs to no user")
    if now - token.last_used >= TOUCH_EVERY:
        store.touch_token(token_id=token.id, when=now)
    return _principal(user)


def email_principal(services: Services, email: str) -> Principal:
    """The user a verified Google identity (its email) is mapped to."""
    user = _store(services).user_by_email(email=email)
    if user is None:
        raise Unauthenticated(
            f"{email} is not a Rollerblade user: ask an admin for `rollerblade user add NAME --email {email}`"
        )
    return _principal(user)


# -- users ---------------------------------------------------------------------------


def add_user(services: Services, principal: Principal, name: str, *, email: str = "", admin: bool = False) -> User:
    services.guard.require_admin(principal, action="user-add")
    user, new = _store(services).create_user(
        user=User(name=check_user_name(name), created=time.time(), email=email.strip(), admin=admin)
    )
    if not new:
        raise InputError(f"user {name!r} exists already")
    services.guard.record(principal, "user-add", "user", name, "admin" if user.admin else "")
    return user


def list_users(services: Services, principal: Principal) -> list[User]:
    require_signed_in(services, principal, "user-list")
    return _store(services).users()


def require_signed_in(services: Services, principal: Principal, action: str) -> None:
    if principal.kind == "anonymous":
        services.guard.deny(principal, action, "", "", "not signed in")
        raise Unauthenticated("sign in first: pass a token (Authorization: Bearer rbt_...)")


def require_admin(services: Services, principal: Principal, action: str) -> None:
    """For the operator's commands (``serve``, ``status``, ``events retry``), which act on
    every dataset's events and jobs."""
    services.guard.require_admin(principal, action=action)


def _known_user(services: Services, name: str) -> User:
    user = _store(services).get_user(name=name)
    if user is None:
        raise NotFound("user", _with_suggestion(name, [u.name for u in _store(services).users()]))
    return user


def _with_suggestion(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return name + (f" (did you mean {close[0]!r}?)" if close else " (see `rollerblade user list`)")


# -- tokens --------------------------------------------------------------------------


def create_token(
    services: Services,
    principal: Principal,
    *,
    user: str | None = None,
    expires_in: float | None = None,
    label: str = "",
) -> tuple[str, Token]:
    """A new token for ``user`` (default: the principal; others: admins only): the text,
    shown once, and what is stored (its digest)."""
    require_signed_in(services, principal, "token-create")
    owner = user or principal.name
    if owner != principal.name:
        services.guard.require_admin(principal, action="token-create")
    _known_user(services, owner)
    if expires_in is not None and expires_in <= 0:
        raise InputError("a token's lifetime must be positive")
    now = time.time()
    text, token = tokens.new_token(owner, now=now, expires=now + expires_in if expires_in else 0.0, label=label)
    _store(services).put_token(token=token)
    services.guard.record(principal, "token-create", "token", token.id, f"for {owner}")
    return text, token


def list_tokens(services: Services, principal: Principal) -> list[Token]:
    """The principal's tokens (an admin's: everyone's)."""
    require_signed_in(services, principal, "token-list")
    return _store(services).tokens(user=None if principal.admin else principal.name)


def revoke_token(services: Services, principal: Principal, token_id: str) -> Token:
    require_signed_in(services, principal, "token-revoke")
    token = _store(services).get_token(token_id=token_id)
    if token is None or (token.user != principal.name and not principal.unrestricted):
        services.guard.deny(principal, "token-revoke", "token", token_id, "no such token of theirs")
        raise NotFound("token", f"{token_id} (see `rollerblade token list`)")
    if not _store(services).revoke_token(token_id=token_id, when=time.time()):
        raise InputError(f"token {token_id} was revoked already")
    services.guard.record(principal, "token-revoke", "token", token_id, f"of {token.user}")
    return dataclasses.replace(token, revoked=time.time())


# -- grants --------------------------------------------------------------------------


def resolve_target(services: Services, target: str, right: str | None = None) -> tuple[str, str]:
    """(kind, name) of ``dataset:NAME``, ``analysis:NAME`` or a bare NAME (the kind the
    right belongs to, or whichever of the two exists)."""
    kind, sep, name = target.partition(":")
    if sep and kind in KINDS:
        kinds = [kind]
    else:
        name = target
        kinds = [k for k in KINDS if right is None or right in RIGHTS[k]]
    existing = [k for k in kinds if _exists(services, k, name)]
    if len(existing) == 1:
        return existing[0], name
    if not existing:
        raise NotFound(" or ".join(kinds), f"{name} (see `rollerblade datasets` and `rollerblade analysis list`)")
    raise InputError(f"{name!r} is both a dataset and an Analysis: say dataset:{name} or analysis:{name}")


def _exists(services: Services, kind: str, name: str) -> bool:
    if kind == "dataset":
        return services.catalog.get_dataset(name=name) is not None
    return services.catalog.get_analysis(name=name) is not None


def grant(services: Services, principal: Principal, user: str, right: str, target: str) -> Grant:
    """Give ``user`` ``right`` on a dataset or Analysis (the principal must manage it).
    A user keeps their highest right: granting ``read`` to a manager changes nothing."""
    kind, name = resolve_target(services, target, right)
    check_right(kind, right)
    services.guard.require(principal, kind, name, MANAGE, action="grant")
    _known_user(services, user)
    new = Grant(kind, name, user, right, granted_by=principal.name, granted_at=time.time())

    def raise_to(current: Grant | None) -> Grant | None:
        return current if current is not None and implies(kind, current.right, right) else new

    _, after = _store(services).change_grant(kind=kind, resource=name, user=user, change=raise_to)
    services.guard.record(principal, "grant", kind, name, f"{right} to {user}")
    assert after is not None
    return after


def revoke(services: Services, principal: Principal, user: str, right: str, target: str) -> Grant | None:
    """Take ``right`` away from ``user``: they keep the right just under it (a manager
    losing ``write`` can still read). Refused for the last manager of a resource."""
    kind, name = resolve_target(services, target, right)
    check_right(kind, right)
    services.guard.require(principal, kind, name, MANAGE, action="revoke")

    def take(current: Grant | None) -> Grant | None:
        return None if current is None else after_revoke(current, right)

    try:
        before, after = _store(services).change_grant(kind=kind, resource=name, user=user, change=take)
    except LastManager as e:
        services.guard.deny(principal, "revoke", kind, name, f"{right} of {user}: last manager")
        raise InputError(f"{e}: grant manage to someone else first, then revoke") from e
    if before is None or not implies(kind, before.right, right):
        raise InputError(f"{user} holds no {right} right on {kind} {name!r} (see `rollerblade access show {name}`)")
    services.guard.record(principal, "revoke", kind, name, f"{right} of {user}")
    return after


def claim(services: Services, principal: Principal, kind: str, name: str) -> None:
    """Make ``principal`` a manager of what they just created (datasets, Analyses)."""
    if principal.kind != "user":
        return
    now = time.time()

    def keep_or_manage(current: Grant | None) -> Grant | None:
        return (
            current
            if current is not None and current.right == MANAGE
            else Grant(kind, name, principal.name, MANAGE, principal.name, now)
        )

    _store(services).change_grant(kind=kind, resource=name, user=principal.name, change=keep_or_manage)


def access_show(services: Services, principal: Principal, target: str) -> dict[str, Any]:
    """Who holds what on a dataset or Analysis (for anyone who may read or run it)."""
    kind, name = resolve_target(services, target)
    services.guard.require(principal, kind, name, RIGHTS[kind][0], action="access-show")
    grants = _store(services).grants(kind=kind, resource=name)
    return {
        "kind": kind,
        "name": name,
        "managers": sorted(g.user for g in grants if g.right == MANAGE),
        "grants": [g.to_doc() for g in grants],
    }


# -- audit ---------------------------------------------------------------------------


def audit_entries(
    services: Services,
    principal: Principal,
    *,
    user: str | None = None,
    dataset: str | None = None,
    since: float = 0.0,
    limit: int = 1000,
) -> list[AuditEntry]:
    """The audit log: all of it for admins; a dataset's entries for its managers; else
    only the principal's own entries."""
    require_signed_in(services, principal, "audit")
    guard = services.guard
    if not principal.unrestricted:
        if dataset is not None:
            guard.require(principal, "dataset", dataset, MANAGE, action="audit")
        elif user not in (None, principal.name):
            guard.require_admin(principal, action="audit")
        else:
            user = principal.name
    kind = "dataset" if dataset is not None else None
    return guard.audit.entries(actor=user, kind=kind, target=dataset, since=since, limit=limit)
