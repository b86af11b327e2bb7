"""The embedded default's event loop: the bucket watcher, every topic, and the jobs that
fit the machine. ``rollerblade serve`` runs it until stopped; ``rollerblade run`` runs it
until its own jobs are finished.

One :meth:`Worker.step`:

1. the watcher publishes object events for what changed in the bucket folder;
2. every topic is pumped through :mod:`~rollerblade.pipeline.dispatch` (indexing, rules,
   job ends, results, reruns);
3. the executor's ended attempts become ``job.ended`` events;
4. queued jobs are submitted while they fit the machine's CPUs and memory (a job that
   does not fit waits in the queue, not in the executor);
5. now and then, jobs ``running`` that the executor does not know are reconciled.

Nothing here holds state that a restart needs: the queue, the index and the bucket do.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

from rollerblade.abids import layout
from rollerblade.analyses.spec import AnalysisSpec
from rollerblade.errors import NotFound
from rollerblade.pipeline.analyses import get_analysis
from rollerblade.pipeline.dispatch import pump
from rollerblade.pipeline.events import publish_all
from rollerblade.pipeline.jobflow import collect, in_flight_limit, reconcile, submit_job
from rollerblade.pipeline.messages import (
    JOBS_TOPIC,
    OBJECTS_TOPIC,
    QUEUE_TOPIC,
    RERUNS_TOPIC,
    RESULTS_TOPIC,
    SCANS_TOPIC,
    TOPICS,
    JobQueued,
)
from rollerblade.pipeline.services import Services
from rollerblade.records import DATASETS_PREFIX, DERIVATIVES_PREFIX, Actor, ObjectEvent

log = logging.getLogger(__name__)

#: Seconds between steps while jobs run and nothing else happens: how soon an ended
#: attempt is committed and the next job submitted.
BUSY_SLEEP = 0.05


@dataclasses.dataclass(frozen=True)
class Machine:
    """What the jobs may use together: cores and bytes of memory."""

    cpus: float
    memory: int

    @classmethod
    def this(cls) -> Machine:
        return cls(cpus=float(os.cpu_count() or 1), memory=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


class BucketWatcher:
    """Publishes object events for objects written into (or removed from) the bucket by
    any means. At start it compares the bucket with the index (so nothing dropped while
    nobody watched is missed); afterwards it compares each listing with the last one.

    It polls (``storage.list``; a stat per file): simple, and the same on every
    filesystem, including network mounts where inotify sees nothing.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self._seen: dict[str, int] | None = None

    def _listing(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for prefix in (DATASETS_PREFIX, DERIVATIVES_PREFIX):
            for info in self.services.storage.list(prefix=prefix):
                found[info.key] = info.generation
        return found

    def _indexed(self) -> Iterator[tuple[str, int | None]]:
        index = self.services.index
        for dataset in index.datasets():
            for record in index.records(dataset=dataset.name):
                yield layout.dataset_key(dataset.name, record.path), record.file.get("generation")
            for doc in index.metadata(dataset=dataset.name):
                yield layout.dataset_key(dataset.name, doc.path), doc.generation

    def scan(self) -> int:
        """Publish events for what changed; returns how many."""
        now = self._listing()
        events: list[ObjectEvent] = []
        if self._seen is None:
            known = dict(self._indexed())
            events += [ObjectEvent("created", k, g) for k, g in now.items() if known.get(k) != g]
            events += [ObjectEvent("deleted", k) for k in known if k not in now]
        else:
            events += [ObjectEvent("created", k, g) for k, g in now.items() if self._seen.get(k) != g]
            events += [ObjectEvent("deleted", k) for k in self._seen if k not in now]
        if events:
            publish_all(self.services.bus, [e.to_message() for e in events], topic=OBJECTS_TOPIC)
        self._seen = now
        return len(events)


class Worker:
    """See the module docstring. ``slots`` caps jobs at once (besides CPU and memory)."""

    def __init__(
        self,
        services: Services,
        *,
        actor: Actor,
        machine: Machine | None = None,
        slots: int | None = None,
        watcher: BucketWatcher | None = None,
        reconcile_every: float = 10.0,
        scan_every: float = 0.0,
    ) -> None:
        self.services, self.actor = services, actor
        self.machine = machine or Machine.this()
        self.slots = slots
        self.watcher = watcher
        self.reconcile_every = reconcile_every
        self.scan_every = scan_every  # seconds between bucket listings (a listing stats every file)
        self._next_scan = 0.0
        self._running: dict[str, tuple[float, int]] = {}  # job key -> (cpu, memory) submitted here
        self._specs: dict[str, AnalysisSpec] = {}
        self._backlog: dict[str, None] = {}  # planned job keys, in arrival order
        self._last_reconcile = 0.0
        self.stopping = threading.Event()

    def start(self) -> None:
        """Before the first step: remove what a killed process left running, and take
        every ``running`` job that nothing runs any more as lost (retried)."""
        removed = self.services.executor.cleanup()
        if removed:
            log.info("removed %d runs a stopped rollerblade left behind", removed)
        reconcile(self.services, older_than=0.0)
        requeue(self.services, [job.key for job in self.services.jobs.jobs(state="planned")])
        self._last_reconcile = time.monotonic()

    def step(self) -> int:
        """One pass over everything; returns how much work it found (0: idle)."""
        done = 0
        if self.watcher is not None and not self.stopping.is_set() and time.monotonic() >= self._next_scan:
            self._next_scan = time.monotonic() + self.scan_every
            done += self.watcher.scan()
        for topic in (OBJECTS_TOPIC, RERUNS_TOPIC, SCANS_TOPIC, RESULTS_TOPIC):
            done += pump(self.services, topic, actor=self.actor)
        done += self._collect()
        done += pump(self.services, JOBS_TOPIC, actor=self.actor)
        if not self.stopping.is_set():
            done += self._submit()
        if time.monotonic() - self._last_reconcile > self.reconcile_every:
            self._last_reconcile = time.monotonic()
            done += reconcile(self.services, older_than=self.reconcile_every)
        return done

    def _collect(self) -> int:
        ended = collect(self.services)
        if ended:
            alive = self.services.executor.active()
            for key in [k for k in self._running if k not in alive]:
                del self._running[key]
        return ended

    def _fits(self, spec: AnalysisSpec) -> bool:
        if not self.services.executor.local:  # a cluster: the in-flight limits, not this machine
            if self.slots is not None and len(self._running) >= self.slots:
                return False
            return in_flight_limit(self.services, spec.name, spec) is None
        if not self._running:
            return True  # one job always runs, whatever it declares (run refuses the impossible)
        if self.slots is not None and len(self._running) >= self.slots:
            return False
        cpu = sum(c for c, _ in self._running.values()) + spec.resources.cpu
        memory = sum(m for _, m in self._running.values()) + spec.resources.memory
        return cpu <= self.machine.cpus + 1e-9 and memory <= self.machine.memory * 0.8

    def _submit(self) -> int:
        """Take ``job.queued`` messages into a small in-memory backlog (acknowledged: the
        job's record says it is planned, and :meth:`start` announces every planned job
        again after a restart), then submit from it while jobs fit."""
        if len(self._backlog) < 64:
            messages = self.services.bus.pull(topic=QUEUE_TOPIC, max_messages=64, lease_seconds=60.0)
            for _, body in messages:
                try:
                    key = JobQueued.from_message(body).key
                except ValueError as e:
                    log.error("dropping malformed job.queued message: %s", e)
                    continue
                if key not in self._backlog:
                    self._backlog[key] = None
            if messages:
                self.services.bus.ack(message_ids=[m for m, _ in messages])
        submitted = 0
        for key in list(self._backlog):
            if self.stopping.is_set():
                break
            job = self.services.jobs.get_job(key=key)
            if job is None or job.state != "planned":
                del self._backlog[key]
                continue
            try:
                spec = self._specs.get(job.analysis) or get_analysis(job.analysis, index=self.services.index)[0]
            except NotFound:
                spec = None
            if spec is not None:
                self._specs[job.analysis] = spec
                if not self._fits(spec):
                    continue
            try:
                started = submit_job(self.services, key, actor=self.actor)
            except Exception as e:  # an executor outage: the job stays planned, tried again later
                log.error("submitting job %s failed: %s", key[:12], e)
                break
            del self._backlog[key]
            if started is not None and spec is not None:
                self._running[key] = (spec.resources.cpu, spec.resources.memory)
                submitted += 1
        return submitted

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def run(self, *, until: Callable[[], bool] | None = None, idle_sleep: float = 0.2) -> None:
        """Step until ``until()`` holds or :attr:`stopping` is set, then shut down cleanly:
        runs in progress are stopped and their jobs queued again."""
        try:
            while not self.stopping.is_set():
                if until is not None and until():
                    return
                if self.step() == 0:
                    # idle: wait for new files; while jobs run, look for their ends promptly
                    self.stopping.wait(min(idle_sleep, BUSY_SLEEP) if self.busy else idle_sleep)
        finally:
            self.shutdown()

    def run_until_idle(self, *, timeout: float = 3600.0) -> bool:
        """Step until nothing is queued or running (two idle steps in a row); False on timeout."""
        deadline, idle = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            idle = idle + 1 if self.step() == 0 else 0
            if idle >= 2 and not self.busy and not any(topic_depths(self.services).values()):
                states = {job.state for job in self.services.jobs.jobs(state="planned")}
                states |= {job.state for job in self.services.jobs.jobs(state="running")}
                if not states:
                    return True
            time.sleep(0.05)
        return False

    def shutdown(self) -> None:
        if self._running:
            self.services.executor.stop_all()
            wait = getattr(self.services.executor, "wait", None)
            if wait is not None:
                wait(60.0)
            collect(self.services)
            pump(self.services, JOBS_TOPIC, actor=self.actor)
            self._running.clear()


def topic_depths(services: Services) -> dict[str, int]:
    """Messages waiting per topic (buses that can count them)."""
    pending = getattr(services.bus, "pending", None)
    return {topic: pending(topic=topic) for topic in TOPICS} if pending is not None else {}


def requeue(services: Services, keys: list[str]) -> None:
    publish_all(services.bus, [JobQueued(k).to_message() for k in keys], topic=QUEUE_TOPIC)
