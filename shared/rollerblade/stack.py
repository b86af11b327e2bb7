"""The composition root: build the adapters that ``Settings`` select.

Entry points (CLI, functions, tests) call :func:`open_stack` once and pass the ports
down. This is the only place that knows which adapter implements which port.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from rollerblade.access.ports import AccessStore, AuditLog
from rollerblade.adapters import local_bus, local_dir, sqlite_access, sqlite_index
from rollerblade.pipeline.services import Services
from rollerblade.ports import EventBus, Executor, Index, Storage
from rollerblade.settings import Settings

if TYPE_CHECKING:
    from rollerblade.adapters import gke_exec


@dataclasses.dataclass
class Stack:
    settings: Settings
    storage: Storage
    index: Index
    bus: EventBus
    #: users, tokens, grants and the audit log (one adapter implements both ports)
    access: AccessStore
    audit: AuditLog
    _executor: Executor | None = None
    _services: Services | None = None

    @property
    def indexed_by_deployment(self) -> bool:
        """Whether a deployment indexes what lands in the bucket (bucket notifications reach
        its index_object function), so that commands must not index a second time."""
        return self.settings.backend == "gcp" and bool(self.settings.topic_prefix)

    @property
    def executor(self) -> Executor:
        """The executor the settings select, connected on first use."""
        if self._executor is None:
            self._executor = make_executor(self.settings, self.storage)
        return self._executor

    @property
    def services(self) -> Services:
        """The ports as the bundle the use cases take (the executor made on first use)."""
        if self._services is None:
            self._services = Services(
                storage=self.storage,
                index=self.index,
                bus=self.bus,
                executor_name=self.settings.executor,
                make_executor=lambda: self.executor,
                max_jobs=self.settings.max_jobs if self.settings.executor == "gke" else 0,
                access=self.access,
                audit=self.audit,
            )
        return self._services

    def close(self) -> None:
        for port in (self.index, self.bus, self.access):
            close = getattr(port, "close", None)
            if close is not None:
                close()


def open_stack(settings: Settings, *, environ: Mapping[str, str] | None = None) -> Stack:
    """Open (creating if needed) the store that ``settings`` point at.

    ``environ`` is only read for the standard emulator variables of the ``gcp`` backend.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    if settings.backend == "gcp":
        return _open_gcp(settings, environ or {})
    access = sqlite_access.SqliteAccess(settings.home / "access.sqlite")
    return Stack(
        settings=settings,
        storage=local_dir.LocalDirStorage(settings.bucket_root),
        index=sqlite_index.SqliteIndex(settings.index_path),
        bus=local_bus.LocalBus(settings.bus_path),
        access=access,
        audit=access,
    )


def open_storage(settings: Settings, environ: Mapping[str, str]) -> Storage:
    """Only the bucket (what a job's stage-in and store-out containers need)."""
    if settings.backend == "gcp":
        from rollerblade.adapters import gcs

        return gcs.GcsStorage(
            bucket=settings.bucket, project=settings.gcp_project, emulator_host=environ.get("STORAGE_EMULATOR_HOST")
        )
    return local_dir.LocalDirStorage(settings.bucket_root)


def store_id(settings: Settings) -> str:
    """Tells stores apart on a shared Docker engine or Kubernetes namespace."""
    where = settings.bucket if settings.backend == "gcp" else str(settings.home.resolve())
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def make_executor(settings: Settings, storage: Storage) -> Executor:
    workdir = settings.work_root
    if settings.executor == "gke":
        return make_gke_executor(settings, storage, workdir)
    if settings.executor == "process":
        from rollerblade.adapters import process_exec

        return process_exec.ProcessExecutor(storage=storage, workdir=workdir)
    from rollerblade.adapters import docker_exec

    return docker_exec.DockerExecutor(store_id=store_id(settings), storage=storage, workdir=workdir)


def make_gke_executor(settings: Settings, storage: Storage, workdir: Path) -> gke_exec.GkeExecutor:
    """The ``gke`` executor (:class:`~rollerblade.adapters.gke_exec.GkeExecutor`), which also
    serves ``rollerblade gke watch``."""
    from rollerblade.adapters import gke_exec  # noqa: F811 - imported on use: the kubernetes client is optional

    env: dict[str, str] = {"ROLLERBLADE_BACKEND": settings.backend}
    if settings.backend == "gcp":
        env |= {"ROLLERBLADE_GCP_PROJECT": settings.gcp_project, "ROLLERBLADE_BUCKET": settings.bucket}
    else:  # a directory bucket (a cluster on this machine): mounted into the pods at the same path
        env |= {"ROLLERBLADE_HOME": str(settings.home.resolve())}
    cluster = gke_exec.Cluster(
        namespace=settings.gke_namespace,
        stager_image=settings.stager_image,
        store=store_id(settings),
        stager_env=env,
        bucket_path="" if settings.backend == "gcp" else str(settings.bucket_root.resolve()),
        pending_limit=settings.gke_pending_limit,
        stager_user=gke_exec.USER if settings.backend == "gcp" else settings.bucket_root.stat().st_uid,
    )
    api = gke_exec.api_client(
        kubeconfig=settings.kubeconfig, endpoint=settings.gke_endpoint, ca_cert=settings.gke_ca_cert
    )
    builder = None
    if settings.backend == "local":  # a cluster on this machine runs images of its Docker engine
        from rollerblade.adapters import docker_exec

        builder = docker_exec.DockerExecutor(store_id=store_id(settings), storage=storage, workdir=workdir).prepare
    return gke_exec.GkeExecutor(storage=storage, cluster=cluster, api=api, builder=builder)


def _open_gcp(settings: Settings, environ: Mapping[str, str]) -> Stack:
    from rollerblade.adapters import firestore_access, firestore_index

    storage = open_storage(settings, environ)
    index = firestore_index.FirestoreIndex(
        project=settings.gcp_project, prefix=settings.collection_prefix, emulator="FIRESTORE_EMULATOR_HOST" in environ
    )
    # The cloud deployment delivers object events through Pub/Sub to the index_object
    # function. Its functions publish (rerun batches) to the deployment's topics; a CLI
    # import drains its own events in-process through a local queue.
    bus: EventBus
    if settings.topic_prefix:
        from rollerblade.adapters import pubsub_bus

        bus = pubsub_bus.PubSubBus(project=settings.gcp_project, prefix=settings.topic_prefix, provision=False)
    else:
        bus = local_bus.LocalBus(settings.home / "events.sqlite")
    access = firestore_access.FirestoreAccess(
        project=settings.gcp_project, prefix=settings.collection_prefix, emulator="FIRESTORE_EMULATOR_HOST" in environ
    )
    return Stack(settings=settings, storage=storage, index=index, bus=bus, access=access, audit=access)
