"""Datasets, Analyses and jobs on Firestore: the catalog half of the Firestore index.

A mixin of :class:`~rollerblade.adapters.firestore_index.FirestoreIndex`, which provides
the client and the error mapping; kept apart because it shares nothing with the records
and metadata (the first step of splitting the Index port by concern).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from rollerblade.analyses.jobs import JobRecord
from rollerblade.errors import TemporaryError
from rollerblade.records import DatasetInfo

T = TypeVar("T")


class FirestoreCatalog:
    """``datasets``, ``analyses`` and ``jobs`` collections."""

    _db: Any

    def _col(self, name: str) -> Any:
        raise NotImplementedError

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    def _stream(self, what: str, query: Any) -> list[Any]:
        raise NotImplementedError

    # -- datasets -------------------------------------------------------------------
    def put_dataset(self, *, info: DatasetInfo) -> None:
        ref = self._col("datasets").document(info.name)
        self._call("set", lambda: ref.set(info.to_doc()))

    def create_dataset(self, *, info: DatasetInfo) -> bool:
        ref = self._col("datasets").document(info.name)
        try:
            self._call("create", lambda: ref.create(info.to_doc()))
        except gexc.Conflict:  # AlreadyExists
            return False
        return True

    def update_dataset(self, *, name: str, changes: Mapping[str, Any], expect: Mapping[str, str] | None = None) -> bool:
        ref = self._col("datasets").document(name)
        update = {firestore.Client.field_path(k): v for k, v in changes.items()}

        @firestore.transactional  # type: ignore[untyped-decorator]
        def apply(transaction: Any) -> bool:
            snap = ref.get(transaction=transaction)
            if not snap.exists:
                return False
            doc = snap.to_dict()
            if any((doc.get(k) or "") != v for k, v in (expect or {}).items()):
                return False
            transaction.update(ref, update)
            return True

        return bool(self._call("transaction", lambda: apply(self._db.transaction())))

    def get_dataset(self, *, name: str) -> DatasetInfo | None:
        snap = self._call("get", self._col("datasets").document(name).get)
        return DatasetInfo.from_doc(snap.to_dict()) if snap.exists else None

    def datasets(self) -> list[DatasetInfo]:
        docs = self._stream("datasets", self._col("datasets"))
        return sorted((DatasetInfo.from_doc(s.to_dict()) for s in docs), key=lambda d: d.name)

    # -- analyses and jobs ----------------------------------------------------------
    def put_analysis(self, *, name: str, doc: Mapping[str, Any]) -> None:
        ref = self._col("analyses").document(name)
        self._call("set", lambda: ref.set({"doc": json.dumps(dict(doc))}))

    def get_analysis(self, *, name: str) -> dict[str, Any] | None:
        snap = self._call("get", self._col("analyses").document(name).get)
        return dict(json.loads(snap.get("doc"))) if snap.exists else None

    def analyses(self) -> list[dict[str, Any]]:
        docs = self._stream("analyses", self._col("analyses"))
        return sorted((json.loads(s.get("doc")) for s in docs), key=lambda d: d["name"])

    def put_job(self, *, job: JobRecord) -> None:
        data = {"analysis": job.analysis, "state": job.state, "updated": time.time(), "doc": json.dumps(job.to_doc())}
        ref = self._col("jobs").document(job.key)
        self._call("set", lambda: ref.set(data))

    def create_job(self, *, job: JobRecord) -> bool:
        data = {"analysis": job.analysis, "state": job.state, "updated": time.time(), "doc": json.dumps(job.to_doc())}
        ref = self._col("jobs").document(job.key)
        try:
            self._call("create", lambda: ref.create(data))
        except gexc.Conflict:  # AlreadyExists
            return False
        return True

    def swap_job(self, *, job: JobRecord, state: str, attempts: int) -> bool:
        """Optimistic compare-and-set: read, then write only if the document's update time
        is still the one read (a precondition; no transaction lock to contend on)."""
        ref = self._col("jobs").document(job.key)
        data = {"analysis": job.analysis, "state": job.state, "updated": time.time(), "doc": json.dumps(job.to_doc())}
        for _ in range(20):
            snap = self._call("get", ref.get)
            if not snap.exists or snap.get("state") != state:
                return False
            if json.loads(snap.get("doc")).get("attempts", 0) != attempts:
                return False
            option = self._db.write_option(last_update_time=snap.update_time)
            try:
                ref.update(data, option=option)
            except (gexc.FailedPrecondition, gexc.Aborted, gexc.NotFound):
                continue  # written meanwhile: read again and decide again
            return True
        raise TemporaryError(f"job {job.key[:12]} keeps changing under this update; try again later")

    def get_job(self, *, key: str) -> JobRecord | None:
        snap = self._call("get", self._col("jobs").document(key).get)
        return JobRecord.from_doc(json.loads(snap.get("doc"))) if snap.exists else None

    def jobs(self, *, analysis: str | None = None, state: str | None = None) -> list[JobRecord]:
        query = self._col("jobs")
        if analysis is not None:
            query = query.where(filter=FieldFilter("analysis", "==", analysis))
        if state is not None:
            query = query.where(filter=FieldFilter("state", "==", state))
        snaps = self._stream("jobs", query)
        snaps.sort(key=lambda s: s.get("updated"), reverse=True)
        return [JobRecord.from_doc(json.loads(s.get("doc"))) for s in snaps]
