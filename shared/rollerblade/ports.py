"""The ports: what the pipeline needs from storage, the index and the event bus.

Each port is a small abstract class with keyword-only methods. The embedded default and
the cloud deployment implement them as adapters (``rollerblade.adapters.*``); one
contract test suite (``tests/contract``) runs over every adapter, so a new adapter adds
one fixture parameter and passes unchanged.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from rollerblade.analyses.jobs import JobEnded, JobRecord
from rollerblade.analyses.spec import Resources
from rollerblade.errors import NotFound
from rollerblade.query import ast
from rollerblade.records import DatasetInfo, MetadataFile, ObjectInfo, ScanRecord


class Storage(abc.ABC):
    """Objects under ``/``-separated keys, laid out like the bucket.

    Guarantees: ``put`` is atomic (readers see the old or the new object, never a partial
    one) and gives the object a larger ``generation`` than any before it under that key;
    ``list`` yields objects in key order; keys are checked safe before use.
    """

    #: Whether a forked child process may use this object (no shared network connections).
    fork_safe: bool = False

    @abc.abstractmethod
    def put_bytes(self, *, key: str, data: bytes) -> ObjectInfo: ...

    @abc.abstractmethod
    def put_file(self, *, key: str, source: str) -> ObjectInfo:
        """Copy a local file into storage under ``key``."""

    @abc.abstractmethod
    def stat(self, *, key: str) -> ObjectInfo:
        """Size, generation and md5 of an object; raises ``NotFound``."""

    def generation(self, *, key: str) -> int | None:
        """The object's generation, ``None`` when it does not exist: what a handler re-reads
        to check that nothing changed under it. Adapters override it where ``stat`` costs
        more (a local file's md5 needs every byte)."""
        try:
            return self.stat(key=key).generation
        except NotFound:
            return None

    @abc.abstractmethod
    def read(self, *, key: str, start: int = 0, length: int | None = None) -> bytes:
        """Bytes ``[start, start+length)`` (to the end when ``length`` is None); negative
        ``start`` counts from the end. Raises ``NotFound``."""

    def read_edges(self, *, key: str, head: int, tail: int) -> tuple[ObjectInfo, bytes, bytes]:
        """The object's info (with md5), its first ``head`` and last ``tail`` bytes.

        What the indexer needs of a data file; adapters may do it in one round trip.
        """
        info = self.stat(key=key)
        first = self.read(key=key, length=head) if info.size else b""
        last = self.read(key=key, start=-tail) if info.size >= tail else b""
        return info, first, last

    @abc.abstractmethod
    def download(self, *, key: str, destination: str) -> None:
        """Write the object to a local file path."""

    @abc.abstractmethod
    def list(self, *, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (``md5`` may be ``None`` here)."""

    @abc.abstractmethod
    def delete(self, *, key: str) -> None:
        """Remove an object; a missing object is not an error."""


class RecordIndex(abc.ABC):
    """Scan records and the metadata files they are derived from: what queries read.

    Guarantees: writes of one call are atomic; ``query`` answers exactly what
    :func:`rollerblade.query.evaluate.matches` answers over :func:`~rollerblade.query.fields.flatten`
    of every record, whatever the backend compiles natively.
    """

    #: True when records hold their inherited metadata (sidecars, participant and session
    #: rows) by reference, resolved from the stored metadata files: a metadata change then
    #: reaches every record it feeds within :meth:`put_metadata` / :meth:`delete_metadata`,
    #: and nothing needs to rewrite them. False: records are snapshots that the metadata
    #: handlers recompute (:meth:`refresh_records`).
    resolves_metadata: ClassVar[bool] = False

    # -- records -------------------------------------------------------------------
    @abc.abstractmethod
    def put_records(self, *, records: Sequence[ScanRecord]) -> None: ...

    @abc.abstractmethod
    def refresh_records(self, *, records: Sequence[ScanRecord]) -> int:
        """Replace each record only where the index still holds it with the same or an
        older ``generation``; returns how many were replaced.

        What a metadata change uses to rewrite the records it feeds: a record deleted or
        re-indexed from a newer object meanwhile is left to the handler that did it. Each
        record's check and write are atomic (a transaction or a conditional update).
        """

    @abc.abstractmethod
    def delete_records(self, *, keys: Sequence[tuple[str, str]]) -> None:
        """Delete records by (dataset, path); missing ones are ignored."""

    @abc.abstractmethod
    def get_record(self, *, dataset: str, path: str) -> ScanRecord | None: ...

    @abc.abstractmethod
    def records(self, *, dataset: str, prefix: str = "") -> Iterator[ScanRecord]:
        """Records of a dataset whose path starts with ``prefix``, in path order."""

    @abc.abstractmethod
    def query(self, *, node: ast.Node, limit: int | None = None) -> Iterator[ScanRecord]:
        """Records matching a parsed query, ordered by (dataset, path)."""

    @abc.abstractmethod
    def count(self, *, node: ast.Node) -> int: ...

    @abc.abstractmethod
    def known_fields(self, *, datasets: Collection[str] | None = None, fresh: bool = False) -> set[str]:
        """Every flat field name (``meta.X``, ``participant.age`` ...) some record has had:
        of any dataset, or only of the records of ``datasets`` (what a principal may read).
        Adapters may cache it for a while; ``fresh=True`` reads past the cache (for a query
        naming a field the cache lacks)."""

    # -- metadata files -------------------------------------------------------------
    @abc.abstractmethod
    def put_metadata(self, *, files: Sequence[MetadataFile]) -> None: ...

    @abc.abstractmethod
    def delete_metadata(self, *, keys: Sequence[tuple[str, str]]) -> None: ...

    @abc.abstractmethod
    def metadata(
        self, *, dataset: str, directories: Iterable[str] | None = None, under: str | None = None
    ) -> list[MetadataFile]:
        """Metadata files of a dataset in path order: all of them, or only those in one of
        ``directories`` or at any depth below the folder ``under`` (``""``: the whole dataset)."""

    @abc.abstractmethod
    def replace_dataset(self, *, name: str, records: Iterable[ScanRecord], metadata: Sequence[MetadataFile]) -> None:
        """Atomically make these the dataset's only records and metadata files.

        ``records`` may be a stream (a generator) that is still being built: it is read
        once, and an adapter may write it while it runs, so a large build need not be held
        in memory. If reading it raises, nothing is replaced."""


class Catalog(abc.ABC):
    """What is registered: datasets (owner, state, description) and Analyses."""

    # -- datasets -------------------------------------------------------------------
    @abc.abstractmethod
    def put_dataset(self, *, info: DatasetInfo) -> None: ...

    @abc.abstractmethod
    def create_dataset(self, *, info: DatasetInfo) -> bool:
        """Register ``info`` only if no dataset of that name exists; atomic (of two
        concurrent calls exactly one returns True)."""

    @abc.abstractmethod
    def update_dataset(self, *, name: str, changes: Mapping[str, Any], expect: Mapping[str, str] | None = None) -> bool:
        """Set some top-level fields of a registered dataset (``description``, ``state``)
        without touching the others, only if its text fields ``expect`` still hold those
        values (compare-and-set, atomic). False when the dataset is missing or the
        expectation failed."""

    @abc.abstractmethod
    def get_dataset(self, *, name: str) -> DatasetInfo | None: ...

    @abc.abstractmethod
    def delete_dataset(self, *, name: str) -> None:
        """Remove a dataset's registration, records and metadata files (missing: no error)."""

    @abc.abstractmethod
    def datasets(self) -> list[DatasetInfo]: ...

    @abc.abstractmethod
    def dataset_stats(self, *, name: str) -> Mapping[str, int]:
        """``{"records": n, "errors": n, "warnings": n, "metadata": n}`` for a dataset."""

    # -- analyses -------------------------------------------------------------------
    @abc.abstractmethod
    def put_analysis(self, *, name: str, doc: Mapping[str, Any]) -> None:
        """Register (or replace) an Analysis: its spec, image digest, folder, owner."""

    @abc.abstractmethod
    def get_analysis(self, *, name: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def analyses(self) -> list[dict[str, Any]]: ...


class JobStore(abc.ABC):
    """Jobs: their state, every change of it compare-and-set, and their provenance."""

    @abc.abstractmethod
    def put_job(self, *, job: JobRecord) -> None: ...

    @abc.abstractmethod
    def create_job(self, *, job: JobRecord) -> bool:
        """Store ``job`` only if no job has its key; atomic (of two concurrent calls
        exactly one returns True)."""

    def get_jobs(self, *, keys: Sequence[str]) -> dict[str, JobRecord]:
        """The jobs of these keys that exist (adapters may read them in one query)."""
        found = {key: self.get_job(key=key) for key in dict.fromkeys(keys)}
        return {key: job for key, job in found.items() if job is not None}

    def create_jobs(self, *, jobs: Sequence[JobRecord]) -> list[bool]:
        """:meth:`create_job` for each job (adapters may write them in one transaction)."""
        return [self.create_job(job=job) for job in jobs]

    @abc.abstractmethod
    def swap_job(self, *, job: JobRecord, state: str, attempts: int) -> bool:
        """Replace the job only while it is still in ``state`` with ``attempts`` (compare
        and set, atomic): how every state change of a job is written, so that two
        handlers of the same event cannot both move it."""

    @abc.abstractmethod
    def get_job(self, *, key: str) -> JobRecord | None: ...

    @abc.abstractmethod
    def jobs(self, *, analysis: str | None = None, state: str | None = None) -> list[JobRecord]:
        """Jobs, newest first."""


class Index(RecordIndex, Catalog, JobStore, abc.ABC):
    """The three stores one backend serves together (SQLite file, Firestore database).
    Use cases reach them as ``services.index`` (records), ``services.catalog`` and
    ``services.jobs``; a function that needs one of them takes that port."""


class EventBus(abc.ABC):
    """Durable at-least-once delivery of JSON messages on named topics.

    Guarantees: a published message is delivered until acknowledged; a message that is
    not acknowledged (handler crash) becomes deliverable again after its lease expires or
    after ``nack``'s delay. Order is not guaranteed.
    """

    @abc.abstractmethod
    def publish(self, *, topic: str, message: Mapping[str, Any]) -> str:
        """Returns the message id."""

    @abc.abstractmethod
    def pull(
        self, *, topic: str, max_messages: int = 100, lease_seconds: float = 60.0
    ) -> list[tuple[str, dict[str, Any]]]:
        """Lease up to ``max_messages`` deliverable messages as (id, message)."""

    @abc.abstractmethod
    def ack(self, *, message_ids: Sequence[str]) -> None: ...

    @abc.abstractmethod
    def nack(self, *, message_id: str, delay: float = 0.0, error: str = "") -> None:
        """Make a message deliverable again after ``delay`` seconds, noting why."""


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """One attempt of a job, in storage terms: the executor stages ``inputs`` (path under
    ``/input`` -> storage key) and ``files`` (path -> generated bytes) read-only at
    ``/input``, runs ``command`` offline within the limits, then stores everything the
    command wrote to ``/output`` under ``output_prefix`` and its log at ``log_key``.

    ``command`` may contain ``{input}`` and ``{output}`` (where the executor mounts them).
    ``image`` is an image digest for Docker (or GKE), the analysis folder for processes.
    """

    job_key: str
    attempt: int
    image: str
    command: tuple[str, ...]
    inputs: Mapping[str, str]
    files: Mapping[str, bytes]
    output_prefix: str
    log_key: str
    env: Mapping[str, str]
    cpu: float
    memory: int
    timeout: float
    log_limit: int = 1 << 20
    pids_limit: int = 256
    gpu: int = 0
    accelerator: str = ""
    spot: bool = False
    disk: int = 1 << 30
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)  # analysis, dataset: for a cluster's labels

    @property
    def resources(self) -> Resources:
        """What the attempt declares, as the Analysis's ``resources`` (for sizing rules)."""
        return Resources(
            cpu=self.cpu,
            memory=self.memory,
            timeout=self.timeout,
            gpu=self.gpu,
            accelerator=self.accelerator,
            spot=self.spot,
            disk=self.disk,
        )


class Executor(abc.ABC):
    """Runs jobs asynchronously: ``submit`` returns at once; each attempt's end is then
    reported by ``finished`` (until ``release``), which the caller publishes as a
    ``job.ended`` event. Completion is never the return value of a call.

    Guarantees: no network for the job; ``memory``, ``cpu`` and ``timeout`` enforced;
    logs capped at ``log_limit`` bytes (head and tail kept); submitting a job key that is
    active is a no-op; ``stop_all`` ends every run in progress (reported ``interrupted``).
    """

    name: str
    #: Runs on this machine (its CPUs and memory bound how many jobs run at once); a
    #: cluster executor is bounded by the in-flight limits instead.
    local: bool = True

    def check(self, *, spec: JobSpec) -> tuple[str, ...]:
        """What this executor will change in ``spec``'s resources (notes for the job record);
        raises :class:`~rollerblade.errors.InputError` for what it cannot run at all."""
        return ()

    @abc.abstractmethod
    def prepare(self, *, folder: str, image_build: str | None, image_ref: str | None, tag: str) -> str:
        """Build or look up the image of an Analysis; return its digest (immutable id)."""

    @abc.abstractmethod
    def submit(self, *, spec: JobSpec) -> None:
        """Start an attempt and return; problems starting it are reported as its end."""

    @abc.abstractmethod
    def finished(self) -> list[JobEnded]:
        """Attempts that ended and were not released yet."""

    @abc.abstractmethod
    def release(self, *, keys: Sequence[str]) -> None:
        """Forget ended attempts (their ``job.ended`` events are published)."""

    @abc.abstractmethod
    def active(self) -> set[str]:
        """Job keys submitted here and not released: what the reconciler trusts is alive."""

    @abc.abstractmethod
    def stop_all(self) -> None: ...

    def cleanup(self) -> int:
        """Remove what an earlier, killed process of this store left running; how many."""
        return 0
