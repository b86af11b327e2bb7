"""The embedded default's access store and audit log: one SQLite file, ``access.sqlite``.

Kept apart from the index file so that a long reindex never makes a request wait on a
token check. Grant changes and the first-admin rule run inside ``BEGIN IMMEDIATE``
transactions (one writer at a time across processes); the audit table refuses UPDATE
and DELETE with triggers, so not even a bug in this module can rewrite history.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from rollerblade.access.model import MANAGE, AuditEntry, Grant, Token, User
from rollerblade.access.ports import AccessStore, AuditLog, GrantChange, LastManager
from rollerblade.errors import TemporaryError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, email TEXT NOT NULL, admin INTEGER NOT NULL, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS users_email ON users (email);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, user TEXT NOT NULL, digest TEXT NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL, revoked REAL NOT NULL, last_used REAL NOT NULL, label TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS grants (
    kind TEXT NOT NULL, resource TEXT NOT NULL, user TEXT NOT NULL, right TEXT NOT NULL,
    granted_by TEXT NOT NULL, granted_at REAL NOT NULL,
    PRIMARY KEY (kind, resource, user)
);
CREATE INDEX IF NOT EXISTS grants_user ON grants (user);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, outcome TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

T = TypeVar("T")
_GRANT_COLUMNS = "kind, resource, user, right, granted_by, granted_at"
_TOKEN_COLUMNS = "id, user, digest, created, expires, revoked, last_used, label"
#: Users' resource sets kept between calls (see SqliteAccess.resources).
RESOURCES_KEPT = 256


class SqliteAccess(AccessStore, AuditLog):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._writes = 0  # commits made through this connection
        #: (kind, user, rights) -> ((data_version, _writes) when read, the resources)
        self._resources: dict[tuple[str, str, tuple[str, ...]], tuple[tuple[int, int], frozenset[str]]] = {}

    def __repr__(self) -> str:
        return f"SqliteAccess({self.path!r})"

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise TemporaryError(f"access store {self.path} is busy: {e}", delay=0.5) from e
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            finally:
                self._writes += 1  # PRAGMA data_version does not count this connection's own commits

    def _read(self, sql: str, params: tuple[Any, ...], make: Callable[[sqlite3.Row | tuple[Any, ...]], T]) -> list[T]:
        with self._lock:
            return [make(row) for row in self._db.execute(sql, params)]

    # -- users ------------------------------------------------------------------------
    def create_user(self, *, user: User) -> tuple[User, bool]:
        with self._transaction() as db:
            row = db.execute("SELECT name, email, admin, created FROM users WHERE name = ?", (user.name,)).fetchone()
            if row is not None:
                return _user(row), False
            first = db.execute("SELECT count(*) FROM users").fetchone()[0] == 0
            stored = User(name=user.name, created=user.created, email=user.email, admin=user.admin or first)
            db.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?)", (stored.name, stored.email, int(stored.admin), stored.created)
            )
            return stored, True

    def get_user(self, *, name: str) -> User | None:
        found = self._read("SELECT name, email, admin, created FROM users WHERE name = ?", (name,), _user)
        return found[0] if found else None

    def user_by_email(self, *, email: str) -> User | None:
        found = self._read("SELECT name, email, admin, created FROM users WHERE email = ?", (email,), _user)
        return found[0] if found else None

    def users(self) -> list[User]:
        return self._read("SELECT name, email, admin, created FROM users ORDER BY name", (), _user)

    # -- tokens -----------------------------------------------------------------------
    def put_token(self, *, token: Token) -> None:
        t = token
        with self._transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (t.id, t.user, t.digest, t.created, t.expires, t.revoked, t.last_used, t.label),
            )

    def get_token(self, *, token_id: str) -> Token | None:
        found = self._read(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = ?", (token_id,), _token)
        return found[0] if found else None

    def tokens(self, *, user: str | None = None) -> list[Token]:
        if user is None:
            return self._read(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY created, id", (), _token)
        return self._read(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE user = ? ORDER BY created, id", (user,), _token)

    def revoke_token(self, *, token_id: str, when: float) -> bool:
        with self._transaction() as db:
            cursor = db.execute("UPDATE tokens SET revoked = ? WHERE id = ? AND revoked = 0", (when, token_id))
            return cursor.rowcount == 1

    def touch_token(self, *, token_id: str, when: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE tokens SET last_used = max(last_used, ?) WHERE id = ?", (when, token_id))

    # -- grants -----------------------------------------------------------------------
    def change_grant(
        self, *, kind: str, resource: str, user: str, change: GrantChange
    ) -> tuple[Grant | None, Grant | None]:
        with self._transaction() as db:
            row = db.execute(
                f"SELECT {_GRANT_COLUMNS} FROM grants WHERE kind = ? AND resource = ? AND user = ?",
                (kind, resource, user),
            ).fetchone()
            before = _grant(row) if row else None
            after = change(before)
            if before is not None and before.right == MANAGE and (after is None or after.right != MANAGE):
                others = db.execute(
                    "SELECT count(*) FROM grants WHERE kind = ? AND resource = ? AND right = ? AND user != ?",
                    (kind, resource, MANAGE, user),
                ).fetchone()[0]
                if not others:
                    raise LastManager(f"{user} is the last manager of {kind} {resource!r}")
            if after is None:
                db.execute("DELETE FROM grants WHERE kind = ? AND resource = ? AND user = ?", (kind, resource, user))
            elif after != before:
                g = after
                db.execute(
                    f"INSERT OR REPLACE INTO grants ({_GRANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (g.kind, g.resource, g.user, g.right, g.granted_by, g.granted_at),
                )
            return before, after

    def grants(self, *, kind: str | None = None, resource: str | None = None, user: str | None = None) -> list[Grant]:
        where = [(c, v) for c, v in (("kind", kind), ("resource", resource), ("user", user)) if v is not None]
        clause = " AND ".join(f"{c} = ?" for c, _ in where) or "1"
        return self._read(
            f"SELECT {_GRANT_COLUMNS} FROM grants WHERE {clause} ORDER BY kind, resource, user",
            tuple(v for _, v in where),
            _grant,
        )

    def resources(self, *, kind: str, user: str, rights: Collection[str]) -> set[str]:
        """Read once per state of the store: kept until any connection (this process's or
        another's) commits a change, which ``PRAGMA data_version`` and the count of this
        connection's own writes tell, so a grant or revoke still counts on the next call.
        A user who may read 900 datasets would otherwise pay ~0.6 ms per query for it."""
        key = (kind, user, tuple(sorted(rights)))
        with self._lock:
            state = (self._db.execute("PRAGMA data_version").fetchone()[0], self._writes)
            known = self._resources.get(key)
            if known is None or known[0] != state:
                marks = ", ".join("?" * len(rights))
                sql = f"SELECT resource FROM grants WHERE user = ? AND kind = ? AND right IN ({marks})"  # noqa: S608
                if len(self._resources) >= RESOURCES_KEPT:
                    self._resources.clear()
                rows = self._db.execute(sql, (user, kind, *key[2]))
                known = self._resources[key] = (state, frozenset(row[0] for row in rows))
            return set(known[1])

    def drop_resource(self, *, kind: str, resource: str) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM grants WHERE kind = ? AND resource = ?", (kind, resource)).rowcount

    # -- audit ------------------------------------------------------------------------
    def append(self, *, entry: AuditEntry) -> None:
        e = entry
        with self._transaction() as db:
            db.execute(
                "INSERT INTO audit (time, actor, action, outcome, kind, target, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (e.time, e.actor, e.action, e.outcome, e.kind, e.target, e.detail),
            )

    def entries(
        self,
        *,
        actor: str | None = None,
        kind: str | None = None,
        target: str | None = None,
        since: float = 0.0,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        where = [(c, v) for c, v in (("actor", actor), ("kind", kind), ("target", target)) if v is not None]
        clause = " AND ".join([*(f"{c} = ?" for c, _ in where), "time >= ?"])
        rows = self._read(
            f"SELECT time, actor, action, outcome, kind, target, detail FROM audit WHERE {clause} "
            "ORDER BY seq DESC LIMIT ?",
            (*(v for _, v in where), since, limit),
            _entry,
        )
        return rows[::-1]


def _user(row: Any) -> User:
    return User(name=row[0], email=row[1], admin=bool(row[2]), created=row[3])


def _token(row: Any) -> Token:
    return Token(*row)


def _grant(row: Any) -> Grant:
    return Grant(*row)


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(*row)
