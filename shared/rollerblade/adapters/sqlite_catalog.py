"""Analyses and jobs on SQLite: the catalog half of the SQLite index.

A mixin of :class:`~rollerblade.adapters.sqlite_index.SqliteIndex`, which provides the
connection and its write transactions; kept apart because it shares nothing with the
records, layers and metadata (as :mod:`rollerblade.adapters.firestore_catalog` is on
Firestore: steps towards splitting the Index port by concern).
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from rollerblade.analyses.jobs import JobRecord


def encode_json(value: Any) -> str:
    """Compact JSON: orjson (several times faster), json for what orjson refuses."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"))


def _job_text(job: JobRecord) -> str:
    """A job document as stored: compact JSON by orjson, json where orjson would write
    otherwise (a NaN or infinite parameter, which orjson writes as null)."""
    doc = job.to_doc()
    return encode_json(doc) if _finite(doc["params"]) else json.dumps(doc)


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


class SqliteCatalog:
    """The ``analyses`` and ``jobs`` tables."""

    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _write(self, statements: Iterable[tuple[str, Sequence[Any] | Iterable[Sequence[Any]], bool]]) -> list[int]:
        raise NotImplementedError

    def _immediate(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    # -- analyses and jobs ----------------------------------------------------------
    def put_analysis(self, *, name: str, doc: Mapping[str, Any]) -> None:
        self._write([("INSERT OR REPLACE INTO analyses VALUES (?, ?)", (name, json.dumps(dict(doc))), False)])

    def get_analysis(self, *, name: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT doc FROM analyses WHERE name = ?", (name,)).fetchone()
        return dict(json.loads(row[0])) if row else None

    def analyses(self) -> list[dict[str, Any]]:
        return [json.loads(doc) for (doc,) in self._db.execute("SELECT doc FROM analyses ORDER BY name")]

    def put_job(self, *, job: JobRecord) -> None:
        row = (job.key, job.analysis, job.state, time.time(), _job_text(job))
        self._write([("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?)", row, False)])

    def create_job(self, *, job: JobRecord) -> bool:
        row = (job.key, job.analysis, job.state, time.time(), _job_text(job))
        (created,) = self._write([("INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, ?)", row, False)])
        return created == 1

    def get_jobs(self, *, keys: Sequence[str]) -> dict[str, JobRecord]:
        unique = list(dict.fromkeys(keys))
        found: dict[str, JobRecord] = {}
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for key, doc in self._db.execute(f"SELECT key, doc FROM jobs WHERE key IN ({marks})", chunk):  # noqa: S608
                found[key] = JobRecord.from_doc(json.loads(doc))
        return found

    def create_jobs(self, *, jobs: Sequence[JobRecord]) -> list[bool]:
        """In one write transaction: the keys that exist are read (nobody else writes
        meanwhile), then the new ones inserted at once; a key twice in ``jobs``: the first."""
        if not jobs:
            return []
        now = time.time()
        with self._immediate() as db:
            taken = self._existing_jobs([job.key for job in jobs])
            created = []
            for job in jobs:
                created.append(job.key not in taken)
                taken.add(job.key)
            rows = [
                (job.key, job.analysis, job.state, now, _job_text(job))
                for job, new in zip(jobs, created, strict=True)
                if new
            ]
            db.executemany("INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, ?)", rows)
        return created

    def _existing_jobs(self, keys: Sequence[str]) -> set[str]:
        unique = list(dict.fromkeys(keys))
        found: set[str] = set()
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            found.update(key for (key,) in self._db.execute(f"SELECT key FROM jobs WHERE key IN ({marks})", chunk))  # noqa: S608
        return found

    def swap_job(self, *, job: JobRecord, state: str, attempts: int) -> bool:
        sql = (
            "UPDATE jobs SET analysis = ?, state = ?, updated = ?, doc = ? "
            "WHERE key = ? AND state = ? AND COALESCE(json_extract(doc, '$.attempts'), 0) = ?"
        )
        row = (job.analysis, job.state, time.time(), _job_text(job), job.key, state, attempts)
        (swapped,) = self._write([(sql, row, False)])
        return swapped == 1

    def get_job(self, *, key: str) -> JobRecord | None:
        row = self._db.execute("SELECT doc FROM jobs WHERE key = ?", (key,)).fetchone()
        return JobRecord.from_doc(json.loads(row[0])) if row else None

    def jobs(self, *, analysis: str | None = None, state: str | None = None) -> list[JobRecord]:
        sql, params = "SELECT doc FROM jobs WHERE 1", []
        if analysis is not None:
            sql += " AND analysis = ?"
            params.append(analysis)
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        rows = self._db.execute(sql + " ORDER BY updated DESC", params)
        return [JobRecord.from_doc(json.loads(doc)) for (doc,) in rows]
