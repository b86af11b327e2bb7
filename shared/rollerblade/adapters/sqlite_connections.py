"""A SQLite file shared by threads: one connection per thread, one writer at a time.

In ``serve`` the HTTP API's threads and the event loop share one adapter object. Each
thread reads through a connection of its own, opened on its first use: in WAL mode it sees
the last committed state, never a write transaction another thread has open, and does not
wait for it. Writers of one process take turns on a lock; other processes wait on SQLite's
file lock. An in-memory database exists only in its one connection, which threads share.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator

from rollerblade.errors import TemporaryError

#: The connections of the threads beyond the first (the HTTP API's, in ``serve``) read the
#: file through a memory map of up to this size: each then reads the pages the others
#: have read, where it would fill a page cache of its own (the API's requests took ~1 ms
#: more). The first thread's connection (every single-threaded command) reads as before.
MMAP_BYTES = 1 << 30


class SqliteConnections:
    """The connections of one SQLite file, by thread, and its write transactions."""

    path: str

    def _open_connections(self, path: str) -> None:
        """Open the first connection, the calling thread's (call once, from ``__init__``)."""
        self.path = path
        self._lock = threading.RLock()  # one writer at a time in this process
        self._registry = threading.Lock()  # the connections of the threads
        self._local = threading.local()
        self._connections: dict[int, sqlite3.Connection] = {}  # thread id -> its connection
        self._memory = path == ":memory:"
        self._scope_tables: dict[sqlite3.Connection, dict[frozenset[str], str]] = {}
        self._first = self._connect()
        self._adopt(self._first)

    def _connect(self, *, mapped: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA synchronous=NORMAL")
        if mapped:
            db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        return db

    def _adopt(self, db: sqlite3.Connection) -> None:
        """Make ``db`` this thread's connection, and forget those of threads that have
        ended: each closes once nothing holds it any more (a query's results still being
        read elsewhere, such as a download streamed by other threads, hold theirs)."""
        self._local.db = db
        with self._registry:  # not the write lock: a writer may be waiting on this thread
            alive = {thread.ident for thread in threading.enumerate()}
            this = threading.get_ident()  # an ended thread's id may be reused by this one
            for ident in [i for i in self._connections if i not in alive or i == this]:
                self._scope_tables.pop(self._connections.pop(ident), None)
            self._connections[this] = db

    @property
    def _db(self) -> sqlite3.Connection:
        """The calling thread's connection, opened on its first use."""
        if self._memory:
            return self._first
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect(mapped=True)
            self._adopt(db)
        return db

    @property
    def _tables(self) -> dict[frozenset[str], str]:
        """The scope tables of the calling thread's connection (temporary tables belong to
        a connection; see :meth:`_set_tables`)."""
        return self._scope_tables.setdefault(self._db, {})

    def close(self) -> None:
        with self._registry:
            for db in {self._first, *self._connections.values()}:
                db.close()
            self._connections.clear()
            self._scope_tables.clear()

    @contextlib.contextmanager
    def _immediate(self, db: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: nobody else writes until it ends) on the
        shared connection, or on ``db``, a connection of the caller's own; rolled back on
        any error; a busy database is a :class:`TemporaryError`."""
        db = db or self._db
        with self._lock if db is self._db else contextlib.nullcontext():
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    raise TemporaryError(f"{self.path} is busy: {e}", delay=0.5) from e
                raise
