"""The access contract: users, tokens, grants and the audit log behave the same on SQLite
and on Firestore (the emulator), including the two rules that must hold under
concurrency: one admin among concurrent first users, and never a resource left without
its last manager when managers revoke each other at once.

Concurrent tests open the store twice (two SQLite connections on one file, two
Firestore clients on one prefix) so that only the database can serialize them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rollerblade.access.model import AuditEntry, Grant, Token, User, after_revoke
from rollerblade.access.ports import LastManager
from rollerblade.adapters.sqlite_access import SqliteAccess

if TYPE_CHECKING:
    from rollerblade.adapters.firestore_access import FirestoreAccess

    Access = SqliteAccess | FirestoreAccess

THREADS = 8


@pytest.fixture(params=["sqlite", "firestore"])
def open_access(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Access]]:
    """``open_access()`` opens the same store once more (another connection or client).

    ``open_access(slow=True)``: every SQLite statement first sleeps a little, so that
    without a transaction around them two threads would interleave between a read and the
    write that depends on it every time (Firestore's round trips are slow enough)."""
    opened: list[SqliteAccess] = []
    prefix = f"t{uuid.uuid4().hex[:10]}_"

    def make(*, slow: bool = False) -> Access:
        if request.param == "firestore":
            from rollerblade.adapters.firestore_access import FirestoreAccess

            gcp = request.getfixturevalue("gcp")
            return FirestoreAccess(project=gcp.project, prefix=prefix, emulator=True)
        store = SqliteAccess(tmp_path / "access.sqlite")
        if slow:
            store._db.set_trace_callback(lambda _: time.sleep(0.01))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def access(open_access: Callable[..., Access]) -> Access:
    return open_access()


def together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call in its own thread, released at once; each result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as e:  # returned for the test to inspect
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


# -- users --------------------------------------------------------------------------------
def test_create_user_is_idempotent_and_returns_the_stored_user(access: Access) -> None:
    ada = User(name="ada", created=100.0, email="ada@lab.org")
    stored, new = access.create_user(user=ada)
    assert (stored, new) == (User(name="ada", created=100.0, email="ada@lab.org", admin=True), True)
    again, new = access.create_user(user=User(name="ada", created=200.0, email="other@lab.org"))
    assert (again, new) == (stored, False)
    assert access.get_user(name="ada") == stored
    assert access.get_user(name="nobody") is None


def test_first_user_is_admin_later_ones_are_not_unless_asked(access: Access) -> None:
    assert access.create_user(user=User(name="zed", created=1.0))[0].admin is True
    assert access.create_user(user=User(name="amy", created=2.0))[0].admin is False
    assert access.create_user(user=User(name="max", created=3.0, admin=True))[0].admin is True
    assert [(u.name, u.admin) for u in access.users()] == [("amy", False), ("max", True), ("zed", True)]


def test_concurrent_first_users_make_exactly_one_admin(open_access: Callable[..., Access]) -> None:
    stores = [open_access(slow=True), open_access(slow=True)]
    names = [f"user{i}" for i in range(THREADS)]
    calls = [lambda i=i: stores[i % 2].create_user(user=User(name=names[i], created=float(i))) for i in range(THREADS)]
    results = together(calls)
    assert all(isinstance(r, tuple) for r in results), results
    assert [new for _, new in results] == [True] * THREADS
    admins = [user.name for user, _ in results if user.admin]
    assert len(admins) == 1
    stored = stores[0].users()
    assert [u.name for u in stored] == sorted(names)
    assert [u.name for u in stored if u.admin] == admins


def test_user_by_email(access: Access) -> None:
    access.create_user(user=User(name="ada", created=1.0, email="ada@lab.org"))
    access.create_user(user=User(name="bob", created=2.0, email="bob@lab.org"))
    found = access.user_by_email(email="bob@lab.org")
    assert found is not None and (found.name, found.admin) == ("bob", False)
    assert access.user_by_email(email="carol@lab.org") is None


# -- tokens -------------------------------------------------------------------------------
def token(token_id: str, user: str, created: float, **kw: Any) -> Token:
    return Token(id=token_id, user=user, digest=f"digest-{token_id}", created=created, **kw)


def test_tokens_put_get_list_revoke_touch(access: Access) -> None:
    late, early, other = token("a1", "ada", 20.0, label="laptop"), token("a2", "ada", 10.0), token("b1", "bob", 15.0)
    for t in (late, early, other):
        access.put_token(token=t)
    assert access.get_token(token_id="a1") == late
    assert access.get_token(token_id="zz") is None
    assert [t.id for t in access.tokens(user="ada")] == ["a2", "a1"]
    assert [t.id for t in access.tokens()] == ["a2", "b1", "a1"]
    assert access.tokens(user="carol") == []

    assert access.revoke_token(token_id="a1", when=30.0) is True
    assert access.revoke_token(token_id="a1", when=31.0) is False
    assert access.revoke_token(token_id="zz", when=31.0) is False
    assert access.get_token(token_id="a1") == token("a1", "ada", 20.0, label="laptop", revoked=30.0)

    access.touch_token(token_id="b1", when=50.0)
    access.touch_token(token_id="b1", when=40.0)  # an older use arriving late does not win
    got = access.get_token(token_id="b1")
    assert got is not None and got.last_used == 50.0
    access.touch_token(token_id="zz", when=50.0)
    assert access.get_token(token_id="zz") is None


# -- grants -------------------------------------------------------------------------------
def grant_to(right: str | None, by: str = "ada", at: float = 1.0) -> Callable[[Grant | None], Grant | None]:
    def change(current: Grant | None) -> Grant | None:
        if right is None:
            return None
        return Grant("dataset", "ds", "bob", right, by, at)

    return change


def revoke(right: str) -> Callable[[Grant | None], Grant | None]:
    return lambda g: None if g is None else after_revoke(g, right)


def test_change_grant_grants_upgrades_and_reports_before_and_after(access: Access) -> None:
    before, after = access.change_grant(kind="dataset", resource="ds", user="bob", change=grant_to("read"))
    assert (before, after) == (None, Grant("dataset", "ds", "bob", "read", "ada", 1.0))
    before, after = access.change_grant(kind="dataset", resource="ds", user="bob", change=grant_to("write", at=2.0))
    assert before == Grant("dataset", "ds", "bob", "read", "ada", 1.0)
    assert after == Grant("dataset", "ds", "bob", "write", "ada", 2.0)
    assert access.grants() == [after]
    before, after = access.change_grant(kind="dataset", resource="ds", user="bob", change=grant_to(None))
    assert (before is not None and before.right, after) == ("write", None)
    assert access.grants() == []


def manage(store: Access, user: str, resource: str = "ds", kind: str = "dataset") -> None:
    store.change_grant(
        kind=kind, resource=resource, user=user, change=lambda _: Grant(kind, resource, user, "manage", "t", 1.0)
    )


def test_last_manager_cannot_lose_manage_until_another_manages(access: Access) -> None:
    manage(access, "ada")
    manage(access, "carol", resource="other")  # managers of other resources do not count
    manage(access, "dave", kind="analysis")
    for change in (revoke("manage"), revoke("read")):  # downgraded to write, or removed
        with pytest.raises(LastManager):
            access.change_grant(kind="dataset", resource="ds", user="ada", change=change)
        assert [(g.user, g.right) for g in access.grants(kind="dataset", resource="ds")] == [("ada", "manage")]

    manage(access, "bob")
    before, after = access.change_grant(kind="dataset", resource="ds", user="ada", change=revoke("manage"))
    assert (before is not None and before.right, after is not None and after.right) == ("manage", "write")
    assert [(g.user, g.right) for g in access.grants(kind="dataset", resource="ds")] == [
        ("ada", "write"),
        ("bob", "manage"),
    ]


def test_managers_revoking_each_other_at_once_leave_exactly_one(open_access: Callable[..., Access]) -> None:
    first, second = open_access(slow=True), open_access(slow=True)
    manage(first, "ada")
    manage(first, "bob")
    results = together(
        [
            lambda: first.change_grant(kind="dataset", resource="ds", user="bob", change=revoke("manage")),
            lambda: second.change_grant(kind="dataset", resource="ds", user="ada", change=revoke("manage")),
        ]
    )
    refused = [r for r in results if isinstance(r, LastManager)]
    done = [r for r in results if isinstance(r, tuple)]
    assert (len(done), len(refused)) == (1, 1), results
    rights = sorted(g.right for g in second.grants(kind="dataset", resource="ds"))
    assert rights == ["manage", "write"]


def test_grants_filter_by_kind_resource_and_user(access: Access) -> None:
    odd = "../site a/__b__"  # not a valid document id as it stands
    for kind, resource, user, right in [
        ("dataset", "ds1", "bob", "read"),
        ("dataset", "ds1", "ada", "manage"),
        ("dataset", odd, "bob", "write"),
        ("analysis", "ds1", "ada", "run"),
    ]:
        new = Grant(kind, resource, user, right)
        access.change_grant(kind=kind, resource=resource, user=user, change=lambda _, new=new: new)
    keys = lambda gs: [(g.kind, g.resource, g.user) for g in gs]  # noqa: E731
    assert keys(access.grants()) == [
        ("analysis", "ds1", "ada"),
        ("dataset", "../site a/__b__", "bob"),
        ("dataset", "ds1", "ada"),
        ("dataset", "ds1", "bob"),
    ]
    assert keys(access.grants(kind="dataset")) == keys(access.grants())[1:]
    assert keys(access.grants(resource="ds1")) == [
        ("analysis", "ds1", "ada"),
        ("dataset", "ds1", "ada"),
        ("dataset", "ds1", "bob"),
    ]
    assert keys(access.grants(user="bob")) == [("dataset", odd, "bob"), ("dataset", "ds1", "bob")]
    assert [g.right for g in access.grants(kind="dataset", resource=odd, user="bob")] == ["write"]
    assert access.grants(kind="analysis", user="bob") == []
    # what every query asks: the resources a user holds one of some rights on
    assert access.resources(kind="dataset", user="bob", rights=("read", "write", "manage")) == {"ds1", odd}
    assert access.resources(kind="dataset", user="bob", rights=("write", "manage")) == {odd}
    assert access.resources(kind="dataset", user="ada", rights=("read",)) == set()
    assert access.resources(kind="analysis", user="ada", rights=("run", "manage")) == {"ds1"}
    assert access.resources(kind="analysis", user="bob", rights=("run", "manage")) == set()


def test_a_grant_or_revoke_counts_at_once_on_every_connection(open_access: Callable[..., Access]) -> None:
    """Each query asks for the user's readable datasets; an adapter may keep them between
    calls, but a grant or a revoke, made here or through another connection (another
    process, another function instance), must count on the very next call."""
    here, there = open_access(), open_access()
    read = ("read", "write", "manage")

    def change(store: Access, resource: str, right: str | None) -> None:
        new = Grant("dataset", resource, "bob", right) if right else None
        store.change_grant(kind="dataset", resource=resource, user="bob", change=lambda _: new)

    assert here.resources(kind="dataset", user="bob", rights=read) == set()
    change(there, "ds1", "read")
    assert here.resources(kind="dataset", user="bob", rights=read) == {"ds1"}
    change(here, "ds2", "write")
    assert here.resources(kind="dataset", user="bob", rights=read) == {"ds1", "ds2"}
    assert there.resources(kind="dataset", user="bob", rights=read) == {"ds1", "ds2"}
    change(there, "ds1", None)
    assert here.resources(kind="dataset", user="bob", rights=read) == {"ds2"}
    assert here.resources(kind="dataset", user="bob", rights=("manage",)) == set()
    change(here, "ds2", "manage")
    assert there.resources(kind="dataset", user="bob", rights=("manage",)) == {"ds2"}
    assert here.resources(kind="dataset", user="bob", rights=("manage",)) == {"ds2"}


def test_drop_resource_deletes_only_that_resources_grants(access: Access) -> None:
    manage(access, "ada", resource="ds1")
    manage(access, "bob", resource="ds1")
    manage(access, "ada", resource="ds2")
    manage(access, "ada", resource="ds1", kind="analysis")
    assert access.drop_resource(kind="dataset", resource="ds1") == 2
    assert access.drop_resource(kind="dataset", resource="ds1") == 0
    assert [(g.kind, g.resource) for g in access.grants()] == [("analysis", "ds1"), ("dataset", "ds2")]


# -- audit --------------------------------------------------------------------------------
ENTRIES = [
    AuditEntry(1.0, "ada", "grant", "allowed", "dataset", "ds1", "bob read"),
    AuditEntry(2.0, "bob", "query", "denied", "dataset", "ds2", "holds no read right on it"),
    AuditEntry(3.0, "ada", "run", "allowed", "analysis", "mask"),
    AuditEntry(4.0, "bob", "download", "allowed", "dataset", "ds1"),
    AuditEntry(5.0, "ada", "delete", "allowed", "dataset", "ds1"),
]


def test_audit_entries_filter_and_come_oldest_first(access: Access) -> None:
    for entry in ENTRIES:
        access.append(entry=entry)
    times = lambda es: [e.time for e in es]  # noqa: E731
    assert access.entries() == ENTRIES
    assert times(access.entries(actor="ada")) == [1.0, 3.0, 5.0]
    assert times(access.entries(kind="dataset")) == [1.0, 2.0, 4.0, 5.0]
    assert times(access.entries(target="ds1")) == [1.0, 4.0, 5.0]
    assert times(access.entries(actor="bob", kind="dataset", target="ds1")) == [4.0]
    assert times(access.entries(since=3.0)) == [3.0, 4.0, 5.0]
    assert times(access.entries(limit=2)) == [4.0, 5.0]
    assert times(access.entries(actor="ada", since=2.0, limit=1)) == [5.0]
    assert access.entries(actor="carol") == []


def test_audit_keeps_identical_entries(access: Access) -> None:
    access.append(entry=ENTRIES[0])
    access.append(entry=ENTRIES[0])
    assert access.entries() == [ENTRIES[0], ENTRIES[0]]


def test_sqlite_audit_table_refuses_update_and_delete(tmp_path: Path) -> None:
    store = SqliteAccess(tmp_path / "access.sqlite")
    store.append(entry=ENTRIES[0])
    store.close()
    raw = sqlite3.connect(tmp_path / "access.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("UPDATE audit SET actor = 'mallory'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("DELETE FROM audit")
    raw.commit()
    assert raw.execute("SELECT actor, action FROM audit").fetchall() == [("ada", "grant")]
    raw.close()
