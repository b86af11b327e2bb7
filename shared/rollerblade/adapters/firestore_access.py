"""The access store and the audit log on Firestore (or its emulator in tests).

The cloud deployment's counterpart of ``sqlite_access``: the enforcement point and the
``user``/``token``/``grant`` commands reach it through the
:class:`~rollerblade.access.ports.AccessStore` and :class:`~rollerblade.access.ports.AuditLog`
ports, so every function instance and ``serve`` sees a grant or a revoke on its next
request. Collections (names start with ``prefix``, like the index's):

* ``users``, ``tokens``, ``grants``: one document per user, token, and (kind, resource,
  user); ids are hashes of those keys, so any name is a safe id;
* ``audit``: one document per entry, created with an auto id and never updated or deleted;
* ``access_meta/first_admin``: claimed by the first user, in the same atomic batch that
  creates that user as admin (two ``create`` preconditions: of concurrent first users
  exactly one batch commits, and no read lock is held, so they do not queue on one
  document as transactions would);
* grant changes run in a transaction that reads the grant and the resource's other
  managers, so two managers revoking each other at once cannot leave it without one.

SDK errors: unavailable/deadline/aborted/contention -> ``TemporaryError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from rollerblade.access.model import MANAGE, AuditEntry, Grant, Token, User
from rollerblade.access.ports import AccessStore, AuditLog, GrantChange, LastManager
from rollerblade.errors import TemporaryError

T = TypeVar("T")
BATCH = 500
_RETRYABLE = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.Aborted,
    gexc.InternalServerError,
    gexc.TooManyRequests,
)


def _id(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode(), usedforsecurity=False).hexdigest()


def _where(query: Any, **equal: str | None) -> Any:
    for field, value in equal.items():
        if value is not None:
            query = query.where(filter=FieldFilter(field, "==", value))
    return query


class FirestoreAccess(AccessStore, AuditLog):
    def __init__(self, *, project: str, prefix: str, emulator: bool = False) -> None:
        self._db: Any = (
            firestore.Client(project=project, credentials=AnonymousCredentials())
            if emulator
            else firestore.Client(project=project)
        )
        self.prefix = prefix
        self._first_admin = self._col("access_meta").document("first_admin")

    def __repr__(self) -> str:
        return f"FirestoreAccess(project={self._db.project!r}, prefix={self.prefix!r})"

    def _col(self, name: str) -> Any:
        return self._db.collection(self.prefix + name)

    @staticmethod
    def _call(what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _RETRYABLE as e:
            raise TemporaryError(f"Firestore unavailable ({what}): {e}", delay=2) from e
        except ValueError as e:  # the SDK's "failed to commit transaction in N attempts"
            if isinstance(e.__cause__, gexc.Aborted):
                raise TemporaryError(f"Firestore contention ({what}): {e}", delay=1) from e
            raise

    def _get(self, ref: Any) -> dict[str, Any] | None:
        snap = self._call("get", ref.get)
        return dict(snap.to_dict()) if snap.exists else None

    def _stream(self, what: str, query: Any) -> list[dict[str, Any]]:
        return [dict(s.to_dict()) for s in self._call(what, lambda: list(query.stream()))]

    # -- users ------------------------------------------------------------------------
    def create_user(self, *, user: User) -> tuple[User, bool]:
        ref = self._col("users").document(_id(user.name))
        found = self._get(ref)
        if found is not None:
            return User.from_doc(found), False
        if self._get(self._first_admin) is None:
            first = dataclasses.replace(user, admin=True)
            batch = self._db.batch()
            batch.create(self._first_admin, {"user": user.name, "created": user.created})
            batch.create(ref, first.to_doc())
            try:
                self._call("create user", batch.commit)
                return first, True
            except gexc.AlreadyExists:
                pass  # another first user won, or a user of this name was created meanwhile
        try:
            self._call("create user", lambda: ref.create(user.to_doc()))
            return user, True
        except gexc.AlreadyExists:
            found = self._get(ref)
            if found is None:  # users are never deleted: only a concurrent create gets here
                raise TemporaryError(f"user {user.name} is being created", delay=0.5) from None
            return User.from_doc(found), False

    def get_user(self, *, name: str) -> User | None:
        found = self._get(self._col("users").document(_id(name)))
        return User.from_doc(found) if found is not None else None

    def user_by_email(self, *, email: str) -> User | None:
        found = self._stream("users", _where(self._col("users"), email=email).limit(1))
        return User.from_doc(found[0]) if found else None

    def users(self) -> list[User]:
        return sorted((User.from_doc(d) for d in self._stream("users", self._col("users"))), key=lambda u: u.name)

    # -- tokens -----------------------------------------------------------------------
    def _token_ref(self, token_id: str) -> Any:
        return self._col("tokens").document(_id(token_id))

    def put_token(self, *, token: Token) -> None:
        ref = self._token_ref(token.id)
        self._call("put token", lambda: ref.set(token.to_doc()))

    def get_token(self, *, token_id: str) -> Token | None:
        found = self._get(self._token_ref(token_id))
        return Token.from_doc(found) if found is not None else None

    def tokens(self, *, user: str | None = None) -> list[Token]:
        found = [Token.from_doc(d) for d in self._stream("tokens", _where(self._col("tokens"), user=user))]
        return sorted(found, key=lambda t: (t.created, t.id))

    def revoke_token(self, *, token_id: str, when: float) -> bool:
        ref = self._token_ref(token_id)

        @firestore.transactional  # type: ignore[untyped-decorator]
        def apply(transaction: Any) -> bool:
            snap = ref.get(transaction=transaction)
            if not snap.exists or (snap.to_dict() or {}).get("revoked"):
                return False
            transaction.update(ref, {"revoked": when})
            return True

        return bool(self._call("revoke token", lambda: apply(self._db.transaction())))

    def touch_token(self, *, token_id: str, when: float) -> None:
        """A server-side maximum: no transaction on the hot path of every request."""
        ref = self._token_ref(token_id)
        with contextlib.suppress(gexc.NotFound):  # an unknown token: nothing to record
            self._call("touch token", lambda: ref.update({"last_used": firestore.Maximum(when)}))

    # -- grants -----------------------------------------------------------------------
    def change_grant(
        self, *, kind: str, resource: str, user: str, change: GrantChange
    ) -> tuple[Grant | None, Grant | None]:
        grants = self._col("grants")
        ref = grants.document(_id(kind, resource, user))
        managers = _where(grants, kind=kind, resource=resource, right=MANAGE)

        @firestore.transactional  # type: ignore[untyped-decorator]
        def apply(transaction: Any) -> tuple[Grant | None, Grant | None]:
            snap = ref.get(transaction=transaction)
            before = Grant.from_doc(snap.to_dict()) if snap.exists else None
            after = change(before)
            losing = before is not None and before.right == MANAGE and (after is None or after.right != MANAGE)
            # the other managers are read in the transaction: a concurrent revoke of one conflicts
            if losing and not any(s.id != ref.id for s in transaction.get(managers)):
                raise LastManager(f"{user} is the last manager of {kind} {resource!r}")
            if after is None:
                if before is not None:
                    transaction.delete(ref)
            elif after != before:
                transaction.set(ref, after.to_doc())
            return before, after

        result: tuple[Grant | None, Grant | None] = self._call("change grant", lambda: apply(self._db.transaction()))
        return result

    def grants(self, *, kind: str | None = None, resource: str | None = None, user: str | None = None) -> list[Grant]:
        query = _where(self._col("grants"), kind=kind, resource=resource, user=user)
        found = [Grant.from_doc(d) for d in self._stream("grants", query)]
        return sorted(found, key=lambda g: (g.kind, g.resource, g.user))

    def drop_resource(self, *, kind: str, resource: str) -> int:
        query = _where(self._col("grants"), kind=kind, resource=resource).select([])
        refs = [s.reference for s in self._call("grants", lambda: list(query.stream()))]
        for start in range(0, len(refs), BATCH):
            batch = self._db.batch()
            for ref in refs[start : start + BATCH]:
                batch.delete(ref)
            self._call("drop grants", batch.commit)
        return len(refs)

    # -- audit ------------------------------------------------------------------------
    def append(self, *, entry: AuditEntry) -> None:
        ref = self._col("audit").document()  # auto id; create() never overwrites
        self._call("audit", lambda: ref.create(entry.to_doc()))

    def entries(
        self,
        *,
        actor: str | None = None,
        kind: str | None = None,
        target: str | None = None,
        since: float = 0.0,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Newest ``limit`` first from the database, returned oldest first. Entries of the
        same ``time`` come in document id order (auto ids carry no order)."""
        if limit <= 0:
            return []
        query = _where(self._col("audit"), actor=actor, kind=kind, target=target)
        query = query.where(filter=FieldFilter("time", ">=", since))
        query = query.order_by("time", direction=firestore.Query.DESCENDING).limit(limit)
        return [AuditEntry.from_doc(d) for d in self._stream("audit", query)][::-1]
