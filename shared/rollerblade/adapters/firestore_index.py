"""The Index port on Firestore (or its emulator in tests).

The only module that imports ``google.cloud.firestore``. Collections (all names start
with ``prefix``, so several deployments or tests can share a database):

* ``records``: one document per data file: ``dataset``, ``path``, ``generation``, ``doc``
  (the record as JSON text) and the flat query view as maps ``s`` (text) and ``n``
  (numbers); queries compile to native filters on these maps
  (:mod:`rollerblade.adapters.firestore_query`), the rest is finished in Python;
* ``metadata``, ``datasets``, ``fields``, ``analyses``, ``jobs``.

Document ids are hashes of natural keys, so every write is idempotent. Writes go in
batches of 500. SDK errors: unavailable/deadline/aborted -> ``TemporaryError``.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from rollerblade.adapters.firestore_catalog import FirestoreCatalog
from rollerblade.adapters.firestore_query import compile_filters
from rollerblade.errors import InputError, TemporaryError
from rollerblade.ports import Index
from rollerblade.query import ast
from rollerblade.query.evaluate import matches
from rollerblade.query.fields import flatten, number_form, text_form
from rollerblade.records import MetadataFile, ScanRecord

T = TypeVar("T")
BATCH = 500
INFLIGHT = 4  # batches committed at once
FIELDS_TTL = 30.0  # seconds known_fields() answers from memory
BATCH_BYTES = 8 << 20  # stay under Firestore's 10 MiB per request
INLINE_BYTES = 900_000  # a metadata document larger than this is stored in parts (1 MiB cap)
TRANSACTION = 250  # records checked and written per transaction (Firestore allows 500 writes)
PAGE = 300  # records read back per round trip when a query's matches are returned
_RETRYABLE = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.Aborted,
    gexc.InternalServerError,
    gexc.TooManyRequests,
)


def _size(data: Any) -> int:
    """Rough bytes of a document, for splitting batches under the request size limit."""
    if isinstance(data, str | bytes):
        return len(data)
    if isinstance(data, dict):
        return sum(len(k) + _size(v) for k, v in data.items())
    return 8


def _id(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode(), usedforsecurity=False).hexdigest()


class FirestoreIndex(FirestoreCatalog, Index):
    def __init__(self, *, project: str, prefix: str = "", emulator: bool = False, client: Any = None) -> None:
        if client is None:
            client = (
                firestore.Client(project=project, credentials=AnonymousCredentials())
                if emulator
                else firestore.Client(project=project)
            )
        self._db = client
        self.prefix = prefix
        self._fields: set[str] | None = None
        self._pairs: set[tuple[str, str]] | None = None
        self._fields_read = 0.0
        #: When a list, every query run is appended to it (a test checks each one against
        #: the composite indexes of firestore.indexes.json, which production requires).
        self.observed: list[Any] | None = None

    def __repr__(self) -> str:
        return f"FirestoreIndex(project={self._db.project!r}, prefix={self.prefix!r})"

    def _col(self, name: str) -> Any:
        return self._db.collection(self.prefix + name)

    @staticmethod
    def _call(what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _RETRYABLE as e:
            raise TemporaryError(f"Firestore unavailable ({what}): {e}", delay=2) from e
        except gexc.FailedPrecondition as e:
            # production Firestore refuses a query that needs a composite index it lacks;
            # the message carries the link that creates it.
            raise InputError(
                f"Firestore needs a composite index for this query ({what}); add it to firestore.indexes.json "
                f"and apply terraform: {e.message}"
            ) from e

    def _stream(self, what: str, query: Any) -> list[Any]:
        if self.observed is not None:
            self.observed.append(query)
        return self._call(what, lambda: list(query.stream()))

    def _count(self, query: Any) -> int:
        if self.observed is not None:
            self.observed.append(query)
        return int(self._call("count", lambda: query.count().get())[0][0].value)

    def _batched(self, operations: Iterable[tuple[str, Any, Any]]) -> None:
        """Apply ("set" | "delete", ref, data) operations in batches of 500, 4 batches in flight."""

        def commit(chunk: list[tuple[str, Any, Any]]) -> None:
            batch = self._db.batch()
            for op, ref, data in chunk:
                if op == "set":
                    batch.set(ref, data)
                else:
                    batch.delete(ref)
            self._call("batch write", batch.commit)

        chunks: list[list[tuple[str, Any, Any]]] = [[]]
        size = 0
        for op in operations:
            weight = _size(op[2])
            if len(chunks[-1]) >= BATCH or (chunks[-1] and size + weight > BATCH_BYTES):
                chunks.append([])
                size = 0
            chunks[-1].append(op)
            size += weight
        chunks = [chunk for chunk in chunks if chunk]
        if len(chunks) <= 1:
            for chunk in chunks:
                commit(chunk)
            return
        with concurrent.futures.ThreadPoolExecutor(INFLIGHT) as pool:
            for _ in pool.map(commit, chunks):
                pass

    # -- records -------------------------------------------------------------------
    def _record_data(self, record: ScanRecord) -> dict[str, Any]:
        flat = flatten(record)
        numbers = {k: x for k, v in flat.items() if (x := number_form(v)) is not None and math.isfinite(x)}
        return {
            "dataset": record.dataset,
            "path": record.path,
            "generation": record.generation,
            "doc": json.dumps(record.to_doc(), separators=(",", ":")),
            "s": {k: text_form(v) for k, v in flat.items()},
            "n": numbers,
        }

    def _note_fields(self, records: Sequence[ScanRecord]) -> list[tuple[str, Any, Any]]:
        """Writes noting the fields of ``records``: per dataset (``dataset_fields``, what a
        principal's queries are checked against) and store-wide (``fields``)."""
        if self._fields is None or self._pairs is None:
            self.known_fields(datasets=())
        known = self._fields if self._fields is not None else set()
        pairs = self._pairs if self._pairs is not None else set()
        new_pairs = {(r.dataset, name) for r in records for name in flatten(r)} - pairs
        new = {name for _, name in new_pairs} - known
        known |= new
        pairs |= new_pairs
        ops: list[tuple[str, Any, Any]] = [
            ("set", self._col("fields").document(_id(name)), {"name": name}) for name in sorted(new)
        ]
        ops += [
            ("set", self._col("dataset_fields").document(_id(d, name)), {"dataset": d, "name": name})
            for d, name in sorted(new_pairs)
        ]
        return ops

    def put_records(self, *, records: Sequence[ScanRecord]) -> None:
        ops = [("set", self._col("records").document(_id(r.dataset, r.path)), self._record_data(r)) for r in records]
        self._batched(ops + self._note_fields(records))

    def refresh_records(self, *, records: Sequence[ScanRecord]) -> int:
        """One transaction per :data:`TRANSACTION` records: read them, write those still
        there with a generation no newer than ours."""
        written = 0
        for start in range(0, len(records), TRANSACTION):
            chunk = {_id(r.dataset, r.path): r for r in records[start : start + TRANSACTION]}
            refs = [self._col("records").document(doc_id) for doc_id in chunk]

            @firestore.transactional  # type: ignore[untyped-decorator]
            def apply(transaction: Any, refs: list[Any] = refs, chunk: dict[str, ScanRecord] = chunk) -> int:
                current = {s.id: s.get("generation") for s in transaction.get_all(refs) if s.exists}
                count = 0
                for ref in refs:
                    record = chunk[ref.id]
                    if ref.id in current and int(current[ref.id]) <= record.generation:
                        transaction.set(ref, self._record_data(record))
                        count += 1
                return count

            written += self._call("transaction", lambda apply=apply: apply(self._db.transaction()))  # type: ignore[misc]
        self._batched(self._note_fields(records))
        return written

    def delete_records(self, *, keys: Sequence[tuple[str, str]]) -> None:
        self._batched(("delete", self._col("records").document(_id(d, p)), None) for d, p in keys)

    def get_record(self, *, dataset: str, path: str) -> ScanRecord | None:
        snap = self._call("get", self._col("records").document(_id(dataset, path)).get)
        return ScanRecord.from_doc(json.loads(snap.get("doc"))) if snap.exists else None

    def records(self, *, dataset: str, prefix: str = "") -> Iterator[ScanRecord]:
        query = self._col("records").where(filter=FieldFilter("dataset", "==", dataset))
        if prefix:
            query = query.where(filter=FieldFilter("path", ">=", prefix)).where(
                filter=FieldFilter("path", "<", prefix + "\uffff")
            )
        query = query.order_by("path").limit(PAGE)
        after: Any = None
        while True:  # pages in path order: memory stays bounded whatever the dataset's size
            page = self._stream("records", query if after is None else query.start_after(after))
            for snap in page:
                yield ScanRecord.from_doc(json.loads(snap.get("doc")))
            if len(page) < PAGE:
                return
            after = page[-1]

    def _matching_keys(self, node: ast.Node) -> list[tuple[str, str, Any]]:
        """(dataset, path, document reference) of every match, sorted. Only keys are kept in
        memory; a residual (Python) filter reads each candidate's record once."""
        native, residual = compile_filters(node)
        query = self._col("records") if native is None else self._col("records").where(filter=native)
        fields = ["dataset", "path"] if residual is None else ["dataset", "path", "doc"]

        def fetch() -> list[tuple[str, str, Any]]:
            keys = []
            for snap in self._stream("query", query.select(fields)):
                if residual is not None and not matches(
                    residual, flatten(ScanRecord.from_doc(json.loads(snap.get("doc"))))
                ):
                    continue
                keys.append((snap.get("dataset"), snap.get("path"), snap.reference))
            return keys

        keys = self._call("query", fetch)
        keys.sort(key=lambda k: (k[0], k[1]))
        return keys

    def query(self, *, node: ast.Node, limit: int | None = None) -> Iterator[ScanRecord]:
        """Matches in (dataset, path) order, read back in pages of :data:`PAGE` records."""
        keys = self._matching_keys(node)
        if limit is not None:
            keys = keys[:limit]
        for start in range(0, len(keys), PAGE):
            page = [ref for _, _, ref in keys[start : start + PAGE]]
            snaps = self._call("get", lambda page=page: list(self._db.get_all(page, field_paths=["doc"])))  # type: ignore[misc]
            docs = {snap.reference.path: snap for snap in snaps if snap.exists}
            for ref in page:
                if ref.path in docs:  # deleted meanwhile: skip
                    yield ScanRecord.from_doc(json.loads(docs[ref.path].get("doc")))

    def count(self, *, node: ast.Node) -> int:
        native, residual = compile_filters(node)
        if residual is None:
            query = self._col("records") if native is None else self._col("records").where(filter=native)
            return self._count(query)
        return len(self._matching_keys(node))

    def known_fields(self, *, datasets: Collection[str] | None = None, fresh: bool = False) -> set[str]:
        """Cached for :data:`FIELDS_TTL` seconds: other writers (every function instance)
        add fields, but reading the whole collection on every query costs too much."""
        stale = self._fields is None or self._pairs is None or time.monotonic() - self._fields_read > FIELDS_TTL
        if fresh or stale:
            names = {s.get("name") for s in self._stream("fields", self._col("fields"))}
            pairs = {(s.get("dataset"), s.get("name")) for s in self._stream("fields", self._col("dataset_fields"))}
            self._fields = names | (self._fields or set())
            self._pairs = pairs  # as stored: a deleted dataset's fields go
            self._fields_read = time.monotonic()
        assert self._fields is not None and self._pairs is not None
        if datasets is None:
            return set(self._fields)
        return {name for dataset, name in self._pairs if dataset in datasets}

    # -- metadata files -------------------------------------------------------------
    def _meta_ops(self, files: Sequence[MetadataFile]) -> list[tuple[str, Any, Any]]:
        """Writes of metadata files. A document over :data:`INLINE_BYTES` (a participants.tsv
        of thousands of rows) is stored in parts: Firestore caps a document at 1 MiB."""
        ops: list[tuple[str, Any, Any]] = []
        for m in files:
            text = json.dumps(m.to_doc()).encode()
            data = {"dataset": m.dataset, "path": m.path, "directory": m.directory, "generation": m.generation}
            parts = [text[i : i + INLINE_BYTES] for i in range(0, len(text), INLINE_BYTES)]
            if len(parts) <= 1:
                ops.append(
                    ("set", self._col("metadata").document(_id(m.dataset, m.path)), {**data, "doc": text.decode()})
                )
                continue
            ops.append(
                (
                    "set",
                    self._col("metadata").document(_id(m.dataset, m.path)),
                    {**data, "doc": "", "parts": len(parts)},
                )
            )
            ops += [
                (
                    "set",
                    self._part(m.dataset, m.path, m.generation, i),
                    {"dataset": m.dataset, "path": m.path, "generation": m.generation, "data": part},
                )
                for i, part in enumerate(parts)
            ]
            ops += self._stale_parts(m.dataset, m.path, keep=[(m.path, m.generation)])
        return ops

    def _part(self, dataset: str, path: str, generation: int, i: int) -> Any:
        return self._col("metadata_parts").document(_id(dataset, path, str(generation), str(i)))

    def _stale_parts(
        self, dataset: str, path: str | None = None, keep: Iterable[tuple[str, int]] = ()
    ) -> list[tuple[str, Any, Any]]:
        """Deletes of the stored parts of ``path`` (of every path when None), except the
        parts of the (path, generation) pairs in ``keep``."""
        query = self._col("metadata_parts").where(filter=FieldFilter("dataset", "==", dataset))
        if path is not None:
            query = query.where(filter=FieldFilter("path", "==", path))
        kept = set(keep)
        return [
            ("delete", snap.reference, None)
            for snap in self._stream("parts", query.select(["path", "generation"]))
            if (snap.get("path"), snap.get("generation")) not in kept
        ]

    def _metadata_doc(self, snap: Any) -> MetadataFile:
        parts = snap.get("parts") if "parts" in (snap.to_dict() or {}) else 0
        if not parts:
            return MetadataFile.from_doc(json.loads(snap.get("doc")))
        generation = snap.get("generation")
        refs = [self._part(snap.get("dataset"), snap.get("path"), generation, i) for i in range(parts)]
        got = {
            s.reference.path: s.get("data")
            for s in self._call("parts", lambda: list(self._db.get_all(refs)))
            if s.exists
        }
        if len(got) != parts:  # rewritten meanwhile: the caller's settling reads it again
            raise TemporaryError(f"metadata {snap.get('path')} is being rewritten", delay=0.5)
        return MetadataFile.from_doc(json.loads(b"".join(got[ref.path] for ref in refs)))

    def put_metadata(self, *, files: Sequence[MetadataFile]) -> None:
        self._batched(self._meta_ops(files))

    def delete_metadata(self, *, keys: Sequence[tuple[str, str]]) -> None:
        parts = [op for d, p in keys for op in self._stale_parts(d, p)]
        self._batched([("delete", self._col("metadata").document(_id(d, p)), None) for d, p in keys] + parts)

    def metadata(
        self, *, dataset: str, directories: Iterable[str] | None = None, under: str | None = None
    ) -> list[MetadataFile]:
        base = self._col("metadata").where(filter=FieldFilter("dataset", "==", dataset))
        queries = [base]
        if (directories is not None or under is not None) and under != "":
            dirs = sorted(set(directories or ()) | ({under} if under is not None else set()))
            queries = [
                base.where(filter=FieldFilter("directory", "in", dirs[i : i + 30])) for i in range(0, len(dirs), 30)
            ]
            if under is not None:
                queries.append(
                    base.where(filter=FieldFilter("directory", ">=", under + "/")).where(
                        filter=FieldFilter("directory", "<", under + "/\uffff")
                    )
                )
        docs = {s.id: s for q in queries for s in self._stream("metadata", q)}
        return sorted((self._metadata_doc(s) for s in docs.values()), key=lambda m: m.path)

    def replace_dataset(self, *, name: str, records: Iterable[ScanRecord], metadata: Sequence[MetadataFile]) -> None:
        records = list(records)  # read to the end before any write: a stream that fails replaces nothing
        keep_records = {_id(r.dataset, r.path) for r in records}
        keep_meta = {_id(m.dataset, m.path) for m in metadata}
        stale = []
        for collection, keep in (("records", keep_records), ("metadata", keep_meta)):
            query = self._col(collection).where(filter=FieldFilter("dataset", "==", name)).select([])
            for snap in self._stream("list", query):
                if snap.id not in keep:
                    stale.append(("delete", snap.reference, None))
        writes = [("set", self._col("records").document(_id(r.dataset, r.path)), self._record_data(r)) for r in records]
        stale += self._stale_parts(name, keep=[(m.path, m.generation) for m in metadata])
        self._batched(writes + self._meta_ops(metadata) + self._note_fields(records) + stale)

    # -- datasets -------------------------------------------------------------------
    def delete_dataset(self, *, name: str) -> None:
        stale = self._stale_parts(name)
        for collection in ("records", "metadata", "dataset_fields"):
            query = self._col(collection).where(filter=FieldFilter("dataset", "==", name)).select([])
            stale += [("delete", snap.reference, None) for snap in self._stream("list", query)]
        self._batched(stale + [("delete", self._col("datasets").document(name), None)])
        if self._pairs is not None:
            self._pairs = {(dataset, field) for dataset, field in self._pairs if dataset != name}

    def dataset_stats(self, *, name: str) -> Mapping[str, int]:
        mine = self._col("records").where(filter=FieldFilter("dataset", "==", name))
        errors = mine.where(filter=FieldFilter(firestore.Client.field_path("s", "error"), ">", ""))
        warnings = mine.where(filter=FieldFilter(firestore.Client.field_path("s", "warning"), ">", ""))
        meta = self._col("metadata").where(filter=FieldFilter("dataset", "==", name))
        counts = [self._count(q) for q in (mine, errors, warnings, meta)]
        return {"records": counts[0], "errors": counts[1], "warnings": counts[2], "metadata": counts[3]}
