"""Who may do what: principals, users, rights, grants, tokens, audit entries, and the one
decision function.

Pure: no store, no clock, no SDK. The enforcement point (``pipeline/guard.py``) loads a
principal's grants through the :class:`~rollerblade.ports.AccessStore` port and asks
:func:`decide`; adapters only map these dataclasses to rows and documents.

Rights are ordered per kind of resource, each implying the ones before it:

* dataset: ``read`` (query, show, download) < ``write`` (import, delete, reindex) <
  ``manage`` (grant, revoke);
* analysis: ``run`` < ``manage`` (register a new version, grant, revoke).

A principal holds at most one right per resource (its highest); admins and the
deployment's own service principals hold every right.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from rollerblade.errors import InputError

Kind = Literal["dataset", "analysis"]
KINDS: tuple[Kind, ...] = ("dataset", "analysis")
RIGHTS: Mapping[str, tuple[str, ...]] = {"dataset": ("read", "write", "manage"), "analysis": ("run", "manage")}
MANAGE = "manage"

#: A user name: letters, digits and ``._@+-`` (an email address is a valid name).
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")


def check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise InputError(f"unknown kind of resource {kind!r}: expected dataset or analysis")
    return kind


def check_right(kind: str, right: str) -> str:
    """``right`` if it is a right on ``kind``; else an error listing the valid ones."""
    valid = RIGHTS[check_kind(kind)]
    if right not in valid:
        close = difflib.get_close_matches(right, valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown right {right!r} on a {kind}: expected one of {', '.join(valid)}{hint}")
    return right


def check_user_name(name: str) -> str:
    if not USER_NAME.fullmatch(name):
        raise InputError(
            f"invalid user name {name!r}: use letters, digits and . _ @ + - (at most 128, e.g. 'ada' or 'ada@lab.org')"
        )
    return name


def implies(kind: str, held: str, wanted: str) -> bool:
    """Whether holding ``held`` on a ``kind`` gives ``wanted``."""
    order = RIGHTS[kind]
    return order.index(held) >= order.index(wanted)


def giving(kind: str, wanted: str) -> tuple[str, ...]:
    """The rights on a ``kind`` that give ``wanted`` (``read`` <- read, write, manage)."""
    return tuple(held for held in RIGHTS[kind] if implies(kind, held, wanted))


def below(kind: str, right: str) -> str | None:
    """The right just under ``right`` (what is left after revoking it), or None."""
    order = RIGHTS[kind]
    at = order.index(right)
    return order[at - 1] if at else None


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who acts: a user (``admin`` or not), one of the deployment's own services (the
    functions, the watcher, ``serve``), or nobody (``anonymous``)."""

    name: str
    kind: Literal["user", "service", "anonymous"] = "user"
    admin: bool = False

    @property
    def unrestricted(self) -> bool:
        """Admins and services hold every right."""
        return self.admin or self.kind == "service"


ANONYMOUS = Principal("anonymous", "anonymous")


def service(name: str) -> Principal:
    """The principal of one of the deployment's services (e.g. ``service:functions``)."""
    return Principal(f"service:{name}", "service")


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    created: float
    email: str = ""
    admin: bool = False

    def to_doc(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> User:
        return cls(
            name=str(doc["name"]),
            created=float(doc["created"]),
            email=str(doc.get("email") or ""),
            admin=bool(doc.get("admin")),
        )


@dataclasses.dataclass(frozen=True)
class Grant:
    """``user`` holds ``right`` (and every right it implies) on the ``kind`` named ``resource``."""

    kind: str
    resource: str
    user: str
    right: str
    granted_by: str = ""
    granted_at: float = 0.0

    def to_doc(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Grant:
        return cls(
            kind=str(doc["kind"]),
            resource=str(doc["resource"]),
            user=str(doc["user"]),
            right=str(doc["right"]),
            granted_by=str(doc.get("granted_by") or ""),
            granted_at=float(doc.get("granted_at") or 0.0),
        )


@dataclasses.dataclass(frozen=True)
class Token:
    """An API token as stored: never the secret, only its SHA-256 (see ``access/tokens.py``)."""

    id: str
    user: str
    digest: str
    created: float
    expires: float = 0.0  # 0: never
    revoked: float = 0.0  # 0: not revoked
    last_used: float = 0.0
    label: str = ""

    def to_doc(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Token:
        return cls(
            id=str(doc["id"]),
            user=str(doc["user"]),
            digest=str(doc["digest"]),
            created=float(doc["created"]),
            expires=float(doc.get("expires") or 0.0),
            revoked=float(doc.get("revoked") or 0.0),
            last_used=float(doc.get("last_used") or 0.0),
            label=str(doc.get("label") or ""),
        )

    def public(self) -> dict[str, Any]:
        """What listing a token shows (no digest)."""
        return {k: v for k, v in self.to_doc().items() if k != "digest"}


Outcome = Literal["allowed", "denied"]


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit log: ``actor`` did (or was refused) ``action`` on
    the ``kind`` named ``target``; ``detail`` says why or with what."""

    time: float
    actor: str
    action: str
    outcome: Outcome
    kind: str = ""
    target: str = ""
    detail: str = ""

    def to_doc(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AuditEntry:
        outcome: Outcome = "denied" if doc.get("outcome") == "denied" else "allowed"
        return cls(
            time=float(doc["time"]),
            actor=str(doc["actor"]),
            action=str(doc["action"]),
            outcome=outcome,
            kind=str(doc.get("kind") or ""),
            target=str(doc.get("target") or ""),
            detail=str(doc.get("detail") or ""),
        )


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    why: str


def decide(principal: Principal, kind: str, resource: str, wanted: str, grants: Iterable[Grant]) -> Decision:
    """Whether ``principal`` holds ``wanted`` on the ``kind`` named ``resource``, given
    (at least) that principal's grants on it."""
    check_right(kind, wanted)
    if principal.admin:
        return Decision(True, "admin")
    if principal.kind == "service":
        return Decision(True, "service principal")
    if principal.kind == "anonymous":
        return Decision(False, "not signed in")
    for grant in grants:
        if (grant.user, grant.kind, grant.resource) == (principal.name, kind, resource) and implies(
            kind, grant.right, wanted
        ):
            return Decision(True, f"holds {grant.right}")
    return Decision(False, f"holds no {wanted} right on it")


def after_revoke(grant: Grant, right: str) -> Grant | None:
    """What is left of ``grant`` once ``right`` is taken away: the right just under it (a
    manager losing ``write`` keeps ``read``), nothing, or the grant unchanged if it never
    gave ``right``."""
    if not implies(grant.kind, grant.right, right):
        return grant
    left = below(grant.kind, right)
    return dataclasses.replace(grant, right=left) if left else None
