"""The access ports: where users, tokens and grants live, and the audit log.

Two small ports, split from the index by concern: the SQLite adapter keeps them in the
store's ``access.sqlite``, the Firestore adapter in collections of their own. One
contract suite (``tests/contract/test_access_contract.py``) runs over both.
Every write is visible to every reader at once (nothing is cached across calls), so a
grant or a revoke takes effect on the next request of any process.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection

from rollerblade.access.model import AuditEntry, Grant, Token, User

#: Given the grant a user holds on a resource (None: none), the grant they must hold
#: afterwards (None: none). Pure: it may be called more than once (a retried transaction).
GrantChange = Callable[[Grant | None], Grant | None]


class LastManager(Exception):
    """Raised by :meth:`AccessStore.change_grant` instead of leaving a resource that has a
    manager without one."""


class AccessStore(abc.ABC):
    """Users, their API tokens, and grants on datasets and Analyses."""

    # -- users ------------------------------------------------------------------------
    @abc.abstractmethod
    def create_user(self, *, user: User) -> tuple[User, bool]:
        """Store ``user`` unless one of that name exists: (the stored user, whether it is
        new). The first user a store ever holds is stored as admin, atomically: of
        concurrent first users exactly one becomes admin."""

    @abc.abstractmethod
    def get_user(self, *, name: str) -> User | None: ...

    @abc.abstractmethod
    def user_by_email(self, *, email: str) -> User | None: ...

    @abc.abstractmethod
    def users(self) -> list[User]:
        """Every user, by name."""

    # -- tokens -----------------------------------------------------------------------
    @abc.abstractmethod
    def put_token(self, *, token: Token) -> None: ...

    @abc.abstractmethod
    def get_token(self, *, token_id: str) -> Token | None: ...

    @abc.abstractmethod
    def tokens(self, *, user: str | None = None) -> list[Token]:
        """Tokens (of one user), oldest first."""

    @abc.abstractmethod
    def revoke_token(self, *, token_id: str, when: float) -> bool:
        """Mark a token revoked; False if it does not exist or was revoked already."""

    @abc.abstractmethod
    def touch_token(self, *, token_id: str, when: float) -> None:
        """Record that the token was used at ``when``."""

    # -- grants -----------------------------------------------------------------------
    @abc.abstractmethod
    def change_grant(
        self, *, kind: str, resource: str, user: str, change: GrantChange
    ) -> tuple[Grant | None, Grant | None]:
        """Atomically replace the user's grant on the resource with ``change(current)``:
        (before, after). Raises :class:`LastManager`, changing nothing, when the user holds
        ``manage``, would not afterwards, and nobody else manages the resource."""

    @abc.abstractmethod
    def grants(self, *, kind: str | None = None, resource: str | None = None, user: str | None = None) -> list[Grant]:
        """Grants matching every given filter, by (kind, resource, user)."""

    def resources(self, *, kind: str, user: str, rights: Collection[str]) -> set[str]:
        """The resources of ``kind`` on which ``user`` holds one of ``rights`` (what every
        query asks: a store may answer it without building each grant)."""
        return {g.resource for g in self.grants(kind=kind, user=user) if g.right in rights}

    @abc.abstractmethod
    def drop_resource(self, *, kind: str, resource: str) -> int:
        """Delete every grant on a resource that no longer exists; how many."""


class AuditLog(abc.ABC):
    """Append-only: entries are added, never changed or removed (the adapters refuse it)."""

    @abc.abstractmethod
    def append(self, *, entry: AuditEntry) -> None: ...

    @abc.abstractmethod
    def entries(
        self,
        *,
        actor: str | None = None,
        kind: str | None = None,
        target: str | None = None,
        since: float = 0.0,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Entries matching every given filter, at or after ``since``, oldest first; at most
        the ``limit`` most recent of them."""
