"""The bundle every use case takes: the ports, and the executor made on first use.

Entry points build it once (``Stack.services``, a test's fixture) and pass it down with
the acting principal; use cases never open adapters themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from rollerblade.access.ports import AccessStore, AuditLog
from rollerblade.analyses.spec import AnalysisSpec
from rollerblade.pipeline.guard import Guard
from rollerblade.ports import Catalog, EventBus, Executor, Index, JobStore, Storage


@dataclasses.dataclass
class Services:
    """The bundle every use case takes: the ports, and the executor made on first use."""

    storage: Storage
    index: Index
    bus: EventBus
    executor_name: str = "docker"
    #: Jobs in flight at once across the deployment (0: bounded only by the machine).
    max_jobs: int = 0
    make_executor: Callable[[], Executor] | None = None
    #: Users, tokens and grants, and the audit log (one adapter usually serves both).
    access: AccessStore | None = None
    audit: AuditLog | None = None
    _executor: Executor | None = None
    _digests: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def catalog(self) -> Catalog:
        """The registered datasets and Analyses (the index's backend serves them)."""
        return self.index

    @property
    def jobs(self) -> JobStore:
        """Jobs and their states (the index's backend serves them)."""
        return self.index

    @property
    def guard(self) -> Guard:
        """The enforcement point every use case asks (see ``pipeline/guard.py``)."""
        if self.access is None or self.audit is None:
            raise RuntimeError("these services have no access store: build them with Stack.services")
        return Guard(self.access, self.audit)

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            if self.make_executor is None:
                raise RuntimeError("these services have no executor")
            self._executor = self.make_executor()
        return self._executor

    def image_of(self, doc: Mapping[str, Any]) -> tuple[str, str]:
        """(what the executor runs, its digest) for a registered Analysis: the job key is
        made from what actually runs, so the process executor keys jobs with the folder's
        digest, not the Docker image's."""
        if self.executor_name == doc.get("executor", "docker"):
            digest = str(doc["image_digest"])
        else:
            folder = str(doc["folder"])
            if folder not in self._digests:
                spec = AnalysisSpec.from_doc(doc["spec"])
                self._digests[folder] = self.executor.prepare(
                    folder=folder,
                    image_build=spec.image.build,
                    image_ref=spec.image.ref,
                    tag=f"rollerblade/{spec.name}:{spec.version}",
                )
            digest = self._digests[folder]
        image = digest if self.executor_name != "process" else str(doc["folder"])
        return image, digest
