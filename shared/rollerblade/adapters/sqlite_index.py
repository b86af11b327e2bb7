"""The Index port on one SQLite file (the embedded default).

Tables: ``records`` (one row per data file: what is its own, as a document plus its flat
query view as JSON ``s``/``n``, see :mod:`rollerblade.adapters.sqlite_query`, and the ids
of the layers it inherits), ``layers`` (inherited metadata stored once: merged sidecar
chains, own sidecars, participant and session rows, see
:mod:`rollerblade.adapters.sqlite_layers`), ``metadata`` (sidecars and tables by folder),
``datasets`` and ``fields`` (every flat field name ever written, for "did you mean"
suggestions). WAL mode; one writer at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from rollerblade.adapters.sqlite_catalog import SqliteCatalog
from rollerblade.adapters.sqlite_catalog import encode_json as _encode
from rollerblade.adapters.sqlite_connections import SqliteConnections
from rollerblade.adapters.sqlite_layer_fields import fill_layer_fields
from rollerblade.adapters.sqlite_layers import LAYERS_SCHEMA, REF_COLUMNS, LayerWriter, resolve
from rollerblade.adapters.sqlite_query import (
    INDEXED_NUMBER_FIELDS,
    INDEXED_TEXT_FIELDS,
    dataset_sets,
    number_expr,
    select,
    selective,
    text_expr,
)
from rollerblade.ports import Index
from rollerblade.query import ast
from rollerblade.query.fields import flatten, forms
from rollerblade.records import DatasetInfo, MetadataFile, ScanRecord

# 2: expression indexes on datatype and dir; 3: dataset_fields; 4: text indexes end with
# the dataset column (access-scoped queries), no expression index on dataset (a column);
# 5: the planner's statistics (ANALYZE) taken at migration and kept fresh by writes;
# 6: metadata by reference (layers; records hold only what is their own); 7: an index of
# each record's layer references (records_refs); 8: the fields each layer holds (layer_fields),
# each record's extension as a column
SCHEMA_VERSION = 8
#: Records converted per page when an index of schema <= 5 is opened.
CONVERT_PAGE = 5_000
_OLD_INDEXES = ("dataset", "suffix", "sub", "ses", "task", "datatype", "dir")
#: Rows written between two refreshes of the planner's statistics. Without statistics
#: SQLite answers ``dataset=D AND sub=S ORDER BY dataset, path`` by walking the whole
#: dataset on the primary key (10 ms at 7,200 records) instead of the (sub, dataset)
#: index (0.06 ms).
ANALYZE_EVERY = 5_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    dataset TEXT NOT NULL,
    path TEXT NOT NULL,
    generation INTEGER NOT NULL,
    doc TEXT NOT NULL,
    s TEXT NOT NULL,
    n TEXT NOT NULL,
    m INTEGER,
    o INTEGER,
    p INTEGER,
    q INTEGER,
    extension TEXT, -- its text form, as in s: a test of it reads no JSON (schema 8)
    PRIMARY KEY (dataset, path)
);
CREATE TABLE IF NOT EXISTS metadata (
    dataset TEXT NOT NULL,
    path TEXT NOT NULL,
    directory TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (dataset, path)
);
CREATE INDEX IF NOT EXISTS metadata_directory ON metadata (dataset, directory);
CREATE TABLE IF NOT EXISTS datasets (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fields (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS dataset_fields (dataset TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (dataset, name));
CREATE TABLE IF NOT EXISTS analyses (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    analysis TEXT NOT NULL,
    state TEXT NOT NULL,
    updated REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_analysis ON jobs (analysis, state);
"""


def _decode(doc: str) -> Any:
    """A stored record document: orjson (3x faster), json for what orjson refuses (an
    integer beyond 64 bits stored by an earlier version)."""
    try:
        return orjson.loads(doc)
    except orjson.JSONDecodeError:
        return json.loads(doc)


#: Metadata documents at least this long are decoded once per content (see _metadata_doc).
_BIG_DOC = 1 << 16


def _views(record: ScanRecord) -> tuple[str, str, set[str], str | None]:
    """The flat views of what is the record's own (its inherited parts are layers), and
    its extension's text form (a column of its own, see sqlite_query.COLUMN_FIELDS)."""
    flat = flatten(dataclasses.replace(record, meta={}, participant={}, session={}))
    texts = {}
    numbers = {}
    for name, value in flat.items():
        texts[name], number = forms(value)
        if number is not None and math.isfinite(number):
            numbers[name] = number
    return _encode(texts), _encode(numbers), set(flat), texts.get("extension")


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    """The names of ``table``'s columns (what an upgrade checks before adding one)."""
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _own_doc(record: ScanRecord) -> dict[str, Any]:
    """The stored document of a record: all of :class:`~rollerblade.records.RecordDoc` but
    what it inherits (``meta``, ``participant``, ``session``: its layers)."""
    return {
        "dataset": record.dataset,
        "path": record.path,
        "entities": dict(record.entities),
        "image": dict(record.image),
        "file": dict(record.file),
        "error": record.error,
        "warning": record.warning,
    }


def _metadata_text(file: MetadataFile) -> str:
    """A metadata file as stored: :meth:`MetadataFile.to_doc` without its deep copy."""
    return _encode({field.name: getattr(file, field.name) for field in dataclasses.fields(file)})


#: A ``dataset IN (...)`` of at least this many names is read from a temporary table.
SET_TABLE_LEAST = 32
#: Temporary tables of dataset names one connection keeps at most.
SET_TABLES = 256
#: Records of a streamed replace_dataset written per statement.
REPLACE_CHUNK = 1000

#: Named columns: an index converted from schema 5 or 7 has them in another order.
_INSERT_RECORD = (
    "INSERT OR REPLACE INTO records (dataset, path, generation, doc, s, n, m, o, p, q, extension) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: What a record is read from: its own document, its own sidecar's (one to one: joined)
#: and the ids of its shared layers (read once per query, see _resolved).
_RECORD_COLUMNS = "r.doc, r.m, o.doc, r.p, r.q"
_RECORD_FROM = "records r LEFT JOIN layers o ON o.id = r.o"


class SqliteIndex(SqliteConnections, SqliteCatalog, Index):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._open_connections(self.path)
        # An index at the current schema is opened without writing anything, so readers
        # (query, show, download) never wait for, nor fail on, a writer's transaction.
        self._holders: dict[str, set[str]] | None = None  # field -> datasets, read on first use
        self._unanalyzed = 0  # rows written since the statistics were taken
        self._big_docs: dict[str, MetadataFile] = {}  # stored text -> decoded (see _metadata_doc)
        self._fields: set[str] = set()
        if self._db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            self._create_schema()
        self._fields = {row[0] for row in self._db.execute("SELECT name FROM fields")}

    def __repr__(self) -> str:
        return f"SqliteIndex({self.path!r})"

    def _create_schema(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._db:
            self._db.executescript(_SCHEMA + LAYERS_SCHEMA)
            # fields per dataset (schema 3): filled from the records an older index holds
            self._db.execute(
                "INSERT OR IGNORE INTO dataset_fields SELECT DISTINCT records.dataset, each.key "
                "FROM records, json_each(records.s) AS each"
            )
            # the fields each layer holds (schema 8): later writes keep them by triggers
            for statement in fill_layer_fields("layers", "layers, "):
                self._db.execute(statement)
            for field in _OLD_INDEXES:  # schema <= 3
                self._db.execute(f"DROP INDEX IF EXISTS records_{field}")
            for field in INDEXED_TEXT_FIELDS:
                self._db.execute(
                    f"CREATE INDEX IF NOT EXISTS records_{field}_dataset ON records ({text_expr(field)}, dataset)"
                )
            for field in INDEXED_NUMBER_FIELDS:
                self._db.execute(f"CREATE INDEX IF NOT EXISTS records_n_{field} ON records ({number_expr(field)})")
        self._extension_column()
        self._by_reference()
        # A query on participant or session fields (participant.age>60) tests every record
        # of its datasets: this narrow index holds all it reads of them, where the table's
        # rows (~1.7 KB each) made the scan cost as much as the test (130 ms against 31 ms
        # at 100k records).
        self._db.execute("CREATE INDEX IF NOT EXISTS records_refs ON records (dataset, p, q, m, o)")
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._analyze()

    def _extension_column(self) -> None:
        """Schema <= 7 read a record's extension from its JSON view: give it its column."""
        with self._immediate() as db:  # checked inside: another process may be converting it too
            if "extension" in _columns(db, "records"):
                return
            db.execute("ALTER TABLE records ADD COLUMN extension TEXT")
            db.execute(f"UPDATE records SET extension = {text_expr('extension')}")

    def _by_reference(self) -> None:
        """Schema <= 5 kept each record's metadata in the record: store it by reference."""
        with self._immediate() as db:  # checked inside: another process may be converting it too
            if "m" in _columns(db, "records"):
                return
            for column in REF_COLUMNS:
                db.execute(f"ALTER TABLE records ADD COLUMN {column} INTEGER")
            after = ("", "")
            sql = "SELECT dataset, path, doc FROM records WHERE (dataset, path) > (?, ?) ORDER BY dataset, path LIMIT ?"
            while batch := db.execute(sql, (*after, CONVERT_PAGE)).fetchall():  # each page read, then rewritten
                self._store(db, [ScanRecord.from_decoded(_decode(doc)) for _, _, doc in batch])
                after = batch[-1][:2]

    def _write(self, statements: Iterable[tuple[str, Sequence[Any] | Iterable[Sequence[Any]], bool]]) -> list[int]:
        """Run the statements in one write transaction; returns each one's row count."""
        counts: list[int] = []
        with self._immediate() as db:
            for sql, params, many in statements:
                if many:
                    counts.append(db.executemany(sql, params).rowcount)
                else:
                    counts.append(db.execute(sql, params).rowcount)  # type: ignore[arg-type]
        self._counted(sum(max(c, 0) for c in counts))
        return counts

    def _analyze(self) -> None:
        """Refresh the query planner's statistics from a sample (a few ms at any size); a
        busy database skips it until the next batch of writes."""
        with self._lock:
            try:
                self._db.execute("PRAGMA analysis_limit=1000")
                self._db.execute("ANALYZE")
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                return
        self._unanalyzed = 0

    def _store(
        self,
        db: sqlite3.Connection,
        records: Sequence[ScanRecord],
        *,
        refresh: bool = False,
        writers: dict[str, LayerWriter] | None = None,
    ) -> int:
        """Write ``records`` with their layers inside the caller's transaction; returns
        how many rows were written (``refresh``: only where the stored generation is not
        newer, see :meth:`refresh_records`; ``writers``: the layer writers of datasets
        written in several calls of one transaction, by dataset, added to as needed)."""
        if refresh:  # decided before any layer is written: a record's own layers are shared by its versions
            records = [r for r in records if self._stored_generation(db, r.dataset, r.path) in range(r.generation + 1)]
        writers = {} if writers is None else writers
        rows = []
        names: set[tuple[str, str]] = set()
        for record in records:
            writer = writers.get(record.dataset)
            if writer is None:
                writer = writers[record.dataset] = LayerWriter(db, record.dataset, _decode, self._metadata_doc)
            refs = writer.refs(record)
            s, n, own, extension = _views(record)
            names.update((record.dataset, name) for name in own)
            doc = _encode(_own_doc(record))
            rows.append((record.dataset, record.path, record.generation, doc, s, n, *refs, extension))
        for writer in writers.values():
            names.update((writer.dataset, name) for name in writer.fields)
        self._note_fields(db, names)
        if refresh:
            sql = (
                "UPDATE records SET generation = ?, doc = ?, s = ?, n = ?, m = ?, o = ?, p = ?, q = ?, extension = ? "
                "WHERE dataset = ? AND path = ? AND generation <= ?"
            )
            params = [(g, doc, s, n, m, o, p, q, x, d, path, g) for d, path, g, doc, s, n, m, o, p, q, x in rows]
            return db.executemany(sql, params).rowcount
        return db.executemany(_INSERT_RECORD, rows).rowcount

    @staticmethod
    def _stored_generation(db: sqlite3.Connection, dataset: str, path: str) -> int:
        row = db.execute("SELECT generation FROM records WHERE dataset = ? AND path = ?", (dataset, path)).fetchone()
        return int(row[0]) if row else -1

    def _note_fields(self, db: sqlite3.Connection, names: set[tuple[str, str]]) -> None:
        """Record which datasets have which fields (for suggestions and access scoping)."""
        holders = self._field_datasets()
        new_pairs = sorted((dataset, name) for dataset, name in names if dataset not in holders.get(name, ()))
        db.executemany("INSERT OR IGNORE INTO dataset_fields VALUES (?, ?)", new_pairs)
        db.executemany("INSERT OR IGNORE INTO fields VALUES (?)", [(name,) for _, name in new_pairs])
        for dataset, name in new_pairs:
            holders.setdefault(name, set()).add(dataset)
        self._fields |= {name for _, name in new_pairs}

    def _counted(self, written: int) -> None:
        self._unanalyzed += max(written, 0)
        if self._unanalyzed >= ANALYZE_EVERY:
            self._analyze()

    def _resolved(self, rows: Iterable[Sequence[Any]]) -> Iterator[ScanRecord]:
        """Records from ``(doc, m, own sidecar doc, p, q)`` rows (see ``_RECORD_COLUMNS``),
        each shared layer read and decoded once."""
        layers: dict[int, dict[str, Any]] = {}
        batch: list[Sequence[Any]] = []

        def flush() -> Iterator[ScanRecord]:
            missing = sorted({row[i] for row in batch for i in (1, 3, 4) if row[i] is not None} - layers.keys())
            for start in range(0, len(missing), 500):
                chunk = missing[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                for layer, doc in self._db.execute(f"SELECT id, doc FROM layers WHERE id IN ({marks})", chunk):  # noqa: S608
                    layers[layer] = _decode(doc)
            for doc, m, own, p, q in batch:
                yield ScanRecord.from_decoded(
                    resolve(_decode(doc), layers.get(m), _decode(own) if own else None, layers.get(p), layers.get(q))
                )
            batch.clear()

        for row in rows:
            batch.append(row)
            if len(batch) >= 500:
                yield from flush()
        yield from flush()

    def _field_datasets(self) -> dict[str, set[str]]:
        """Field name -> the datasets whose records have it (from ``dataset_fields``)."""
        if self._holders is None:
            holders: dict[str, set[str]] = {}
            for dataset, name in self._db.execute("SELECT dataset, name FROM dataset_fields"):
                holders.setdefault(name, set()).add(dataset)
            self._holders = holders
        return self._holders

    # -- records -------------------------------------------------------------------
    #: Metadata changes reach the records through their layers (see sqlite_layers): a
    #: metadata change needs no record rewritten.
    resolves_metadata = True

    def put_records(self, *, records: Sequence[ScanRecord]) -> None:
        with self._immediate() as db:
            written = self._store(db, records)
            self._drop_inline(db, [(r.dataset, r.path) for r in records])
        self._counted(written)

    def refresh_records(self, *, records: Sequence[ScanRecord]) -> int:
        with self._immediate() as db:
            updated = self._store(db, records, refresh=True)
        self._counted(updated)
        return updated

    def delete_records(self, *, keys: Sequence[tuple[str, str]]) -> None:
        with self._immediate() as db:
            db.executemany("DELETE FROM records WHERE dataset = ? AND path = ?", list(keys))
            self._drop_inline(db, keys)

    @staticmethod
    def _drop_inline(db: sqlite3.Connection, keys: Sequence[tuple[str, str]]) -> None:
        """Remove the layers of their own that records no longer point at."""
        db.executemany(
            "DELETE FROM layers WHERE dataset = ? AND kind IN ('sidecar', 'participant', 'session') AND key = ? "
            "AND NOT EXISTS (SELECT 1 FROM records WHERE records.dataset = layers.dataset "
            "AND layers.id IN (records.o, records.p, records.q) AND records.path = ?)",
            [(dataset, "=" + path, path) for dataset, path in keys],
        )

    def get_record(self, *, dataset: str, path: str) -> ScanRecord | None:
        row = self._db.execute(
            f"SELECT {_RECORD_COLUMNS} FROM {_RECORD_FROM} WHERE r.dataset = ? AND r.path = ?", (dataset, path)
        ).fetchone()
        return next(self._resolved([row]), None) if row else None

    def records(self, *, dataset: str, prefix: str = "") -> Iterator[ScanRecord]:
        # a range on the primary key (dataset, path): LIKE would scan the whole dataset
        cursor = self._db.execute(
            f"SELECT {_RECORD_COLUMNS} FROM {_RECORD_FROM} "
            "WHERE r.dataset = ? AND r.path >= ? AND r.path < ? ORDER BY r.path",
            (dataset, prefix, prefix + "\U0010ffff"),
        )
        yield from self._resolved(cursor)

    def query(self, *, node: ast.Node, limit: int | None = None) -> Iterator[ScanRecord]:
        sql, params = select(node, _RECORD_COLUMNS, join=("o",), tables=self._set_tables(node))
        sql += " ORDER BY r.dataset, r.path"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        yield from self._resolved(self._db.execute(sql, params))

    def count(self, *, node: ast.Node) -> int:
        # a count reads every record its terms select: unless an index finds few, working
        # out first which layers pass a test of an inherited field is cheaper than reading
        # each record's layers (meta.RepetitionTime<2 over 100k records: 24-46 ms against 95-145)
        sql, params = select(node, "count(*)", tables=self._set_tables(node), layered=not selective(node))
        return int(self._db.execute(sql, params).fetchone()[0])

    def _set_tables(self, node: ast.Node) -> dict[frozenset[str], str]:
        """Temporary tables holding the large ``dataset IN (...)`` sets of ``node`` (a
        user's access scope), made on first use and kept for this connection's life. At
        most :data:`SET_TABLES` are made (a table another thread's statement may be reading
        is never dropped); past that, a set is listed in the SQL as before."""
        wanted = dataset_sets(node, SET_TABLE_LEAST)
        db, tables = self._db, self._tables  # this thread's connection and its tables
        missing = wanted - tables.keys()
        if missing and len(tables) < SET_TABLES:
            # an in-memory index's one connection: not inside another thread's write transaction
            with self._lock if self._memory else contextlib.nullcontext():
                for names in sorted(missing - tables.keys(), key=len)[: SET_TABLES - len(tables)]:
                    table = f"dataset_set_{len(tables)}"
                    db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} (name TEXT PRIMARY KEY) WITHOUT ROWID")
                    # rows left by an attempt that failed half way would widen this scope
                    db.execute(f"DELETE FROM temp.{table}")  # noqa: S608
                    db.executemany(f"INSERT INTO temp.{table} VALUES (?)", [(n,) for n in names])
                    tables[names] = table  # only once it holds exactly the set
        return {names: tables[names] for names in wanted if names in tables}

    def known_fields(self, *, datasets: Collection[str] | None = None, fresh: bool = False) -> set[str]:
        if datasets is not None:
            if fresh:
                self._holders = None
            wanted = datasets if isinstance(datasets, (set, frozenset)) else set(datasets)
            # isdisjoint walks the smaller set: a few dozen set probes per field
            return {name for name, holders in self._field_datasets().items() if not holders.isdisjoint(wanted)}
        if fresh:  # other processes add fields too
            self._fields |= {row[0] for row in self._db.execute("SELECT name FROM fields")}
        return set(self._fields)

    # -- metadata files -------------------------------------------------------------
    def put_metadata(self, *, files: Sequence[MetadataFile]) -> None:
        rows = [(m.dataset, m.path, m.directory, _metadata_text(m)) for m in files]
        with self._immediate() as db:
            before = self._stored_metadata(db, [(m.dataset, m.path) for m in files])
            db.executemany("INSERT OR REPLACE INTO metadata VALUES (?, ?, ?, ?)", rows)
            self._relayer(db, before, {(m.dataset, m.path): m for m in files})

    def delete_metadata(self, *, keys: Sequence[tuple[str, str]]) -> None:
        with self._immediate() as db:
            before = self._stored_metadata(db, keys)
            db.executemany("DELETE FROM metadata WHERE dataset = ? AND path = ?", list(keys))
            self._relayer(db, before, {})

    def _stored_metadata(
        self, db: sqlite3.Connection, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], MetadataFile]:
        found = {}
        for key in keys:
            row = db.execute("SELECT doc FROM metadata WHERE dataset = ? AND path = ?", key).fetchone()
            if row is not None:
                found[key] = self._metadata_doc(row[0])
        return found

    def _relayer(
        self,
        db: sqlite3.Connection,
        before: Mapping[tuple[str, str], MetadataFile],
        after: Mapping[tuple[str, str], MetadataFile],
    ) -> None:
        """Bring the layers in line with metadata files just written or deleted (see
        :meth:`LayerWriter.file_changed`)."""
        writers: dict[str, LayerWriter] = {}
        for key in sorted(set(before) | set(after)):
            dataset, path = key
            old, new = before.get(key), after.get(key)
            writer = writers.get(dataset)
            if writer is None:
                writer = writers[dataset] = LayerWriter(db, dataset, _decode, self._metadata_doc)
            writer.file_changed(path, old, new)
        names = {(w.dataset, name) for w in writers.values() for name in w.fields}
        if names:
            self._note_fields(db, names)

    def metadata(
        self, *, dataset: str, directories: Iterable[str] | None = None, under: str | None = None
    ) -> list[MetadataFile]:
        if (directories is None and under is None) or under == "":
            cursor = self._db.execute("SELECT doc FROM metadata WHERE dataset = ? ORDER BY path", (dataset,))
        else:
            # one index-friendly SELECT per condition (an OR of them would scan the dataset)
            dirs = list(directories or ()) + ([under] if under is not None else [])
            parts = [
                f"SELECT path, doc FROM metadata WHERE dataset = ? AND directory IN ({', '.join('?' * len(dirs))})"
            ]
            params: list[str] = [dataset, *dirs]
            if under is not None:
                parts.append("SELECT path, doc FROM metadata WHERE dataset = ? AND directory >= ? AND directory < ?")
                params += [dataset, under + "/", under + "/\U0010ffff"]
            cursor = self._db.execute(f"SELECT doc FROM ({' UNION '.join(parts)}) WHERE 1 ORDER BY path", params)
        return [self._metadata_doc(doc) for (doc,) in cursor]

    def _metadata_doc(self, doc: str) -> MetadataFile:
        """Decode a stored metadata file; large ones (a participants table of thousands of
        rows, read by every batch of an import) are decoded once and kept while unchanged."""
        if len(doc) < _BIG_DOC:
            return MetadataFile.from_doc(_decode(doc))
        cached = self._big_docs.get(doc)
        if cached is None:
            if len(self._big_docs) >= 16:
                self._big_docs.clear()
            cached = self._big_docs[doc] = MetadataFile.from_doc(_decode(doc))
        return cached

    def replace_dataset(self, *, name: str, records: Iterable[ScanRecord], metadata: Sequence[MetadataFile]) -> None:
        """Written as ``records`` is read, :data:`REPLACE_CHUNK` at a time, in one
        transaction on a connection of its own: this object's readers (the API's thread)
        see the old records until the commit, and a stream still being built is written
        while it runs without being held in memory."""
        meta_rows = [(m.dataset, m.path, m.directory, _metadata_text(m)) for m in metadata]
        own = self._db if self.path == ":memory:" else self._connect()
        written = 0
        try:
            with self._immediate(own) as db:
                for table in ("records", "metadata", "layers", "layer_members"):
                    db.execute(f"DELETE FROM {table} WHERE dataset = ?", (name,))  # noqa: S608
                db.executemany("INSERT INTO metadata VALUES (?, ?, ?, ?)", meta_rows)
                # the dataset's layers are all new: its writer reads no table (files=)
                writers = {name: LayerWriter(db, name, _decode, self._metadata_doc, files=metadata)}
                chunk: list[ScanRecord] = []
                for record in records:
                    chunk.append(record)
                    if len(chunk) >= REPLACE_CHUNK:
                        written += self._store(db, chunk, writers=writers)
                        chunk.clear()
                written += self._store(db, chunk, writers=writers)
        finally:
            if own is not self._db:
                own.close()
        self._counted(written)

    # -- datasets -------------------------------------------------------------------
    def put_dataset(self, *, info: DatasetInfo) -> None:
        self._write([("INSERT OR REPLACE INTO datasets VALUES (?, ?)", (info.name, json.dumps(info.to_doc())), False)])

    def create_dataset(self, *, info: DatasetInfo) -> bool:
        (inserted,) = self._write(
            [("INSERT OR IGNORE INTO datasets VALUES (?, ?)", (info.name, json.dumps(info.to_doc())), False)]
        )
        return inserted == 1

    def update_dataset(self, *, name: str, changes: Mapping[str, Any], expect: Mapping[str, str] | None = None) -> bool:
        paths = ", ".join("?, json(?)" for _ in changes)
        params: list[Any] = [p for key, value in changes.items() for p in (f'$."{key}"', json.dumps(value))]
        conditions = "".join(" AND COALESCE(json_extract(doc, ?), '') = ?" for _ in expect or {})
        params += [name] + [p for key, value in (expect or {}).items() for p in (f'$."{key}"', value)]
        (updated,) = self._write(
            [(f"UPDATE datasets SET doc = json_set(doc, {paths}) WHERE name = ?{conditions}", params, False)]
        )
        return updated == 1

    def delete_dataset(self, *, name: str) -> None:
        self._write(
            [
                ("DELETE FROM records WHERE dataset = ?", (name,), False),
                ("DELETE FROM metadata WHERE dataset = ?", (name,), False),
                ("DELETE FROM layers WHERE dataset = ?", (name,), False),
                ("DELETE FROM layer_members WHERE dataset = ?", (name,), False),
                ("DELETE FROM datasets WHERE name = ?", (name,), False),
                ("DELETE FROM dataset_fields WHERE dataset = ?", (name,), False),
            ]
        )
        for holders in self._field_datasets().values():
            holders.discard(name)

    def get_dataset(self, *, name: str) -> DatasetInfo | None:
        row = self._db.execute("SELECT doc FROM datasets WHERE name = ?", (name,)).fetchone()
        return DatasetInfo.from_doc(json.loads(row[0])) if row else None

    def datasets(self) -> list[DatasetInfo]:
        return [
            DatasetInfo.from_doc(json.loads(doc))
            for (doc,) in self._db.execute("SELECT doc FROM datasets ORDER BY name")
        ]

    def dataset_stats(self, *, name: str) -> Mapping[str, int]:
        records, errors, warnings = self._db.execute(
            "SELECT count(*), count(json_extract(s, '$.\"error\"')), count(json_extract(s, '$.\"warning\"')) "
            "FROM records WHERE dataset = ?",
            (name,),
        ).fetchone()
        (metadata,) = self._db.execute("SELECT count(*) FROM metadata WHERE dataset = ?", (name,)).fetchone()
        return {"records": int(records), "errors": int(errors), "warnings": int(warnings), "metadata": int(metadata)}
