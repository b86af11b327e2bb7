"""The Executor port on Kubernetes: one ``batch/v1`` Job per attempt, on GKE Autopilot in the
cloud deployment (a real kube-apiserver, Job controller and kubelet in the tests). The only
module that imports the ``kubernetes`` client.

A job's pod, in order (init containers run one after the other, then the main container)::

    stage-in  (Rollerblade's image)  bucket -> emptyDir /input       (the slice's objects only)
    analysis  (the Analysis, pinned)  /input read-only -> /output     (no credentials, no token)
    store-out (Rollerblade's image)  /output -> bucket, manifest.json (outputs, refused symlinks)

so the Analysis sees exactly the ``/input``/``/output`` contract of the Docker executor, on
plain local disk. Requests equal limits and are fitted to Autopilot's table
(:mod:`~rollerblade.analyses.autopilot`); the deadline comes from the timeout; a pod failure
policy fails the Job on the Analysis's exit and ignores disruptions (eviction, Spot
preemption: the pod is replaced). Why not Cloud Storage FUSE volumes: docs/cloud.md.

Completion is read from the cluster, never waited for: :meth:`GkeExecutor.finished` lists
finished Jobs (``rollerblade run``/``serve`` with ``--executor gke``) and
:class:`JobWatcher` follows them with a resumable watch (the watcher Deployment), both
through :meth:`GkeExecutor.report`, which turns a Job into a ``job.ended`` event and stores
the Analysis's log. A reported Job is annotated, and removed by its TTL.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import urllib3.exceptions
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from rollerblade.adapters.gke_manifest import (
    ATTEMPT,
    IMAGE_ERRORS,
    KEY,
    LOG_KEY,
    PREFIX,
    REPORTED,
    ROLE,
    ROLE_LABEL,
    STORE_LABEL,
    USER,
    Cluster,
    job_manifest,
    job_name,
    label,
    manifest_key,
    pod_size,
    pod_spec_key,
)
from rollerblade.analyses.autopilot import AutopilotRefusal
from rollerblade.analyses.jobs import JobEnded, Outcome
from rollerblade.errors import InputError, TemporaryError
from rollerblade.ports import Executor, JobSpec, Storage

__all__ = ["USER", "Cluster", "GkeExecutor", "JobWatcher", "api_client", "job_manifest", "job_name", "pod_size"]

log = logging.getLogger(__name__)


def api_client(*, kubeconfig: str = "", endpoint: str = "", ca_cert: str = "") -> client.ApiClient:
    """A client for a kubeconfig file, a GKE endpoint with Google credentials, or in-cluster."""
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    configuration = client.Configuration()
    if endpoint:
        import google.auth
        import google.auth.transport.requests

        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        ca = tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False)  # noqa: SIM115 - the client reads it later
        ca.write(base64.b64decode(ca_cert))
        ca.close()
        configuration.host = endpoint if endpoint.startswith("https://") else f"https://{endpoint}"
        configuration.ssl_ca_cert = ca.name

        def refresh(conf: client.Configuration) -> None:
            if not credentials.valid:
                credentials.refresh(google.auth.transport.requests.Request())
            conf.api_key = {"authorization": f"Bearer {credentials.token}"}

        configuration.refresh_api_key_hook = refresh
        refresh(configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


class GkeExecutor(Executor):
    """See the module docstring."""

    name = "gke"
    local = False

    def __init__(
        self,
        *,
        storage: Storage,
        cluster: Cluster,
        api: client.ApiClient,
        builder: Callable[..., str] | None = None,
        log_limit: int = 1 << 20,
    ) -> None:
        """``builder``: builds an Analysis folder into an image the cluster's nodes can run
        (a cluster on this machine shares its Docker engine); None: digests only."""
        self.storage, self.cluster, self.builder = storage, cluster, builder
        self.batch, self.core = client.BatchV1Api(api), client.CoreV1Api(api)
        self.log_limit = log_limit
        self._lock = threading.Lock()
        self._ended: dict[str, JobEnded] = {}  # reported by finished(), until released
        self._names: dict[str, str] = {}  # job key -> Job name, for release
        self._stalled: dict[str, float] = {}  # Job name -> when its pull error was first seen
        self._listed = 0.0
        #: Seconds between two listings of the cluster's Jobs by :meth:`finished`.
        self.poll_every = 1.0

    @property
    def selector(self) -> str:
        return f"{ROLE_LABEL}={ROLE},{STORE_LABEL}={label(self.cluster.store)}"

    # -- the port -------------------------------------------------------------------

    def check(self, *, spec: JobSpec) -> tuple[str, ...]:
        if not self.cluster.stager_image:
            raise InputError("ROLLERBLADE_STAGER_IMAGE is not set: Rollerblade's own image (by digest) stages each job")
        try:
            return pod_size(spec).notes
        except AutopilotRefusal as e:
            raise InputError(f"GKE Autopilot would reject this pod: {e}") from None

    def prepare(self, *, folder: str, image_build: str | None, image_ref: str | None, tag: str) -> str:
        if image_ref and "@sha256:" in image_ref:
            return image_ref  # pinned by digest (Artifact Registry), as Cloud Build registers it
        if image_ref:
            raise InputError(f"image {image_ref!r} must be pinned by digest (name@sha256:...) to run on GKE")
        if self.builder is None:
            raise InputError(
                f"{folder}: on GKE an Analysis image comes from Artifact Registry pinned by digest "
                "(image.ref: REGION-docker.pkg.dev/...@sha256:...), as cloudbuild.yaml registers it"
            )
        return self.builder(folder=folder, image_build=image_build, image_ref=None, tag=tag)

    def submit(self, *, spec: JobSpec) -> None:
        size = pod_size(spec)  # check() refused what does not fit before the job was marked running
        slice_doc = dict(spec.inputs)
        for rel, data in spec.files.items():  # generated files travel through the bucket too
            key = f"jobs/{spec.job_key}/{spec.attempt}/pod/files/{rel}"
            self.storage.put_bytes(key=key, data=data)
            slice_doc[rel] = key
        self.storage.put_bytes(key=pod_spec_key(spec), data=json.dumps({"inputs": slice_doc}).encode())
        manifest = job_manifest(spec, self.cluster, size)
        try:
            self.batch.create_namespaced_job(namespace=self.cluster.namespace, body=manifest)
        except ApiException as e:
            if e.status == 409:  # submitted twice: the same attempt's Job exists, nothing to do
                return
            if e.status in (403, 429) and "quota" in str(e.body).lower() or e.status in (429, 500, 503, 504):
                raise TemporaryError(f"the cluster refused the Job for now ({e.status}: {_reason(e)})", delay=30) from e
            raise InputError(f"the cluster rejected Job {manifest['metadata']['name']}: {_reason(e)}") from e
        with self._lock:
            self._names[spec.job_key] = manifest["metadata"]["name"]

    def finished(self) -> list[JobEnded]:
        if time.monotonic() - self._listed < self.poll_every:  # an event loop asks often: list now and then
            with self._lock:
                return list(self._ended.values())
        self._listed = time.monotonic()
        jobs = [job for job in self._list() if _annotation(job, KEY) and not _annotation(job, REPORTED)]
        with self._lock:  # ended here already, waiting to be released: not read again
            jobs = [job for job in jobs if _annotation(job, KEY) not in self._ended]
        pods = self._pods() if jobs else {}  # one listing for all, not one per Job
        for job in jobs:
            ended = self.report(job, pods.get(job.metadata.name))
            if ended is not None:
                with self._lock:
                    self._ended[ended.key] = ended
                    self._names[ended.key] = job.metadata.name
        with self._lock:
            return list(self._ended.values())

    def release(self, *, keys: Sequence[str]) -> None:
        for key in keys:
            with self._lock:
                self._ended.pop(key, None)
                name = self._names.pop(key, None)
            if name:
                self.mark_reported(name)

    def active(self) -> set[str]:
        alive = {str(_annotation(job, KEY)) for job in self._list() if not _annotation(job, REPORTED)}
        with self._lock:
            return alive | set(self._ended)

    def stop_all(self) -> None:
        """Jobs in a cluster outlive this process: the next ``run``/``serve`` or the watcher
        collects them. Nothing is stopped."""

    # -- reading Jobs ---------------------------------------------------------------

    def _list(self) -> list[Any]:
        try:
            return list(
                self.batch.list_namespaced_job(namespace=self.cluster.namespace, label_selector=self.selector).items
            )
        except (ApiException, urllib3.exceptions.HTTPError) as e:
            raise TemporaryError(f"cannot list the cluster's Jobs: {e}", delay=5) from e

    def mark_reported(self, name: str) -> None:
        body = {"metadata": {"annotations": {REPORTED: "true"}}}
        try:
            self.batch.patch_namespaced_job(name=name, namespace=self.cluster.namespace, body=body)
        except ApiException as e:
            if e.status != 404:  # gone already: nothing left to mark
                raise

    def counts(self) -> dict[str, int]:
        """Jobs in the cluster by phase: submitted (not started), pending, running, finished."""
        out = {"submitted": 0, "pending": 0, "running": 0, "finished": 0}
        phase = {name: pod.status.phase for name, pod in self._pods().items()}
        for job in self._list():
            if _condition(job) is not None:
                out["finished"] += 1
            elif job.metadata.name not in phase:
                out["submitted"] += 1
            elif phase[job.metadata.name] == "Pending":
                out["pending"] += 1
            else:
                out["running"] += 1
        return out

    def report(self, job: Any, pod: Any = None) -> JobEnded | None:
        """The ``job.ended`` event of a Job that ended (None while it runs). A Job stuck on
        its image or unschedulable past the limit is deleted and ends in error. The
        Analysis's log is stored at the job's log key first. ``pod``: the Job's newest
        pod if the caller listed it already."""
        key, attempt = str(_annotation(job, KEY)), int(_annotation(job, ATTEMPT) or 0)
        condition = _condition(job)
        pod = pod or self._pod(job.metadata.name)
        analysis = _status(pod, "analysis")
        if condition is None:
            stuck = self._stuck(job, pod)
            if stuck is None:
                return None
            self._delete(job.metadata.name)
            return JobEnded(key, attempt, "error", message=stuck, started=_iso(job.metadata.creation_timestamp))
        self._store_log(job, pod)
        started = _iso(getattr(getattr(analysis, "state", None) and analysis.state.terminated, "started_at", None))
        ended = _iso(job.status.completion_time) or _iso(condition.last_transition_time)
        term = analysis.state.terminated if analysis is not None and analysis.state else None
        code = term.exit_code if term is not None else None
        outcome: Outcome
        outputs: tuple[str, ...] = ()
        problems: tuple[str, ...] = ()
        if condition.type == "Complete":
            outcome, message = "succeeded", ""
            doc = self._manifest(job)
            if doc is None:
                outcome, message = "error", "store-out finished without writing its manifest"
            else:
                outputs, problems = tuple(doc.get("outputs", ())), tuple(doc.get("problems", ()))
        elif condition.reason == "DeadlineExceeded" or pod is not None and pod.status.reason == "DeadlineExceeded":
            limit = job.spec.template.spec.active_deadline_seconds
            outcome, message = "timeout", f"killed: timed out after {limit} s (the timeout plus staging)"
        elif (
            pod is not None
            and pod.status.reason == "Evicted"
            or condition.reason == "PodFailurePolicy"
            and term is None
        ):
            outcome, message = "lost", f"the pod was evicted or preempted: {pod.status.message if pod else ''}".strip()
        elif term is not None and term.reason == "OOMKilled":
            outcome, message = "oom", f"killed: out of memory (limit {_limit(job)})"
        elif term is not None and term.exit_code != 0:
            outcome, message = "failed", f"exited with code {term.exit_code}"
        else:
            outcome, message = "error", self._why_failed(job, pod)
        return JobEnded(
            key=key,
            attempt=attempt,
            outcome=outcome,
            exit_code=code,
            started=started,
            ended=ended,
            message=message,
            outputs=outputs,
            problems=problems,
        )

    def _pods(self) -> dict[str, Any]:
        """The newest pod of each of this store's Jobs, by Job name."""
        pods = self.core.list_namespaced_pod(namespace=self.cluster.namespace, label_selector=self.selector).items
        newest: dict[str, Any] = {}
        for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp):
            newest[pod.metadata.labels.get("job-name", "")] = pod
        return newest

    def _pod(self, name: str) -> Any:
        pods = self.core.list_namespaced_pod(namespace=self.cluster.namespace, label_selector=f"job-name={name}").items
        return max(pods, key=lambda p: p.metadata.creation_timestamp) if pods else None

    def _stuck(self, job: Any, pod: Any) -> str | None:
        name = job.metadata.name
        age = time.time() - job.metadata.creation_timestamp.timestamp()
        if pod is None:
            return f"no pod was created for {age:.0f} s (quota?)" if age > self.cluster.pending_limit else None
        for status in list(pod.status.init_container_statuses or ()) + list(pod.status.container_statuses or ()):
            waiting = status.state.waiting if status.state else None
            if waiting is not None and waiting.reason in IMAGE_ERRORS:
                first = self._stalled.setdefault(name, time.monotonic())
                hopeless = waiting.reason in ("ErrImageNeverPull", "InvalidImageName")
                if hopeless or time.monotonic() - first > self.cluster.pull_grace:
                    why = f"{waiting.reason}: {waiting.message or ''}".strip()
                    return f"image of container {status.name} cannot be pulled: {why}"
        if pod.status.phase == "Pending" and age > self.cluster.pending_limit:
            why = next(
                (
                    f"{c.reason}: {c.message}"
                    for c in pod.status.conditions or ()
                    if c.type == "PodScheduled" and c.status != "True"
                ),
                "still Pending",
            )
            return f"pod Pending for {age:.0f} s (limit {self.cluster.pending_limit:g} s): {why}"
        return None

    def _delete(self, name: str) -> None:
        self._stalled.pop(name, None)
        try:
            self.batch.delete_namespaced_job(
                name=name,
                namespace=self.cluster.namespace,
                body=client.V1DeleteOptions(propagation_policy="Background"),
            )
        except ApiException as e:
            if e.status != 404:
                raise

    def _store_log(self, job: Any, pod: Any) -> None:
        log_key = _annotation(job, LOG_KEY)
        if pod is None or not log_key:
            return
        try:
            text = self.core.read_namespaced_pod_log(
                name=pod.metadata.name,
                namespace=self.cluster.namespace,
                container="analysis",
                limit_bytes=self.log_limit,
                _preload_content=False,
            ).data
        except ApiException as e:
            text = f"[rollerblade] the Analysis's log could not be read from the cluster: {_reason(e)}\n".encode()
        self.storage.put_bytes(key=str(log_key), data=text)

    def _manifest(self, job: Any) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.storage.read(key=manifest_key(str(_annotation(job, PREFIX)))))
        except Exception:  # missing or unreadable: the caller reports it
            return None
        return doc if isinstance(doc, dict) else None

    def _why_failed(self, job: Any, pod: Any) -> str:
        for name in ("stage-in", "store-out"):
            status = _status(pod, name)
            term = status.state.terminated if status is not None and status.state else None
            if term is not None and term.exit_code != 0:
                tail = self._tail(pod, name)
                return f"{name} failed (exit {term.exit_code}){': ' + tail if tail else ''}"
        condition = _condition(job)
        return f"the Job failed: {condition.reason}: {condition.message}" if condition else "the Job failed"

    def _tail(self, pod: Any, container: str) -> str:
        try:
            text = self.core.read_namespaced_pod_log(
                name=pod.metadata.name, namespace=self.cluster.namespace, container=container, tail_lines=3
            )
        except ApiException:
            return ""
        return " | ".join(line for line in str(text).splitlines() if line.strip())[-500:]


class JobWatcher:
    """Follows the executor's Jobs and hands each ended one to ``publish`` (then marks it
    reported): a resumable watch from the last resourceVersion, a relist when the server
    says it expired (410), and a retry with backoff when the server goes away. Running
    twice, or publishing an end twice, is harmless: ``job.ended`` is idempotent."""

    def __init__(
        self,
        executor: GkeExecutor,
        publish: Callable[[list[JobEnded]], None],
        *,
        watch_seconds: int = 60,
        sweep_every: float = 30.0,
    ) -> None:
        self.executor, self.publish = executor, publish
        self.watch_seconds, self.sweep_every = watch_seconds, sweep_every
        self.stopping = threading.Event()
        self.resource_version: str | None = None
        self.relists = 0
        self._next_sweep = 0.0

    def relist(self) -> int:
        """Handle every Job as listed now; remember where the list stands."""
        listed = self.executor.batch.list_namespaced_job(
            namespace=self.executor.cluster.namespace, label_selector=self.executor.selector
        )
        self.relists += 1
        self.resource_version = listed.metadata.resource_version
        self._next_sweep = time.monotonic() + self.sweep_every
        return sum(self.consider(job) for job in listed.items)

    def consider(self, job: Any) -> int:
        if _annotation(job, REPORTED) or not _annotation(job, KEY):
            return 0
        ended = self.executor.report(job)
        if ended is None:
            return 0
        self.publish([ended])
        self.executor.mark_reported(job.metadata.name)
        return 1

    def step(self) -> int:
        """One watch call (up to ``watch_seconds``); returns how many ends it published."""
        done = 0
        if self.resource_version is None or time.monotonic() >= self._next_sweep:
            return self.relist()  # also the sweep: Pending pods and image errors show no Job event
        stream = watch.Watch()
        try:
            for event in stream.stream(
                self.executor.batch.list_namespaced_job,
                namespace=self.executor.cluster.namespace,
                label_selector=self.executor.selector,
                resource_version=self.resource_version,
                timeout_seconds=self.watch_seconds,
                allow_watch_bookmarks=True,
            ):
                if stream.resource_version:  # kept current by every event, bookmarks included
                    self.resource_version = stream.resource_version
                if event["type"] in ("ADDED", "MODIFIED"):
                    done += self.consider(event["object"])
                if self.stopping.is_set() or time.monotonic() >= self._next_sweep:
                    stream.stop()
        except ApiException as e:
            if e.status == 410:  # expired: start again from a fresh list
                log.info("watch expired (%s); relisting", e.reason)
                self.resource_version = None
            else:
                raise TemporaryError(f"watching Jobs failed: {_reason(e)}", delay=2) from e
        except (urllib3.exceptions.HTTPError, ConnectionError) as e:  # the API server restarted
            raise TemporaryError(f"watching Jobs failed: {e}", delay=2) from e
        return done

    def run(self) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            try:
                self.step()
                delay = 1.0
            except TemporaryError as e:
                log.warning("%s; retrying in %.0f s", e, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
            except Exception:  # the watcher must outlive any one bad event: relist after a pause
                log.exception("the job watcher failed; relisting in %.0f s", delay)
                self.resource_version = None
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)


def _annotation(job: Any, name: str) -> str | None:
    annotations = job.metadata.annotations or {}
    value = annotations.get(name)
    return str(value) if value is not None else None


def _condition(job: Any) -> Any:
    for condition in job.status.conditions or ():
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition
    return None


def _status(pod: Any, container: str) -> Any:
    if pod is None:
        return None
    for status in list(pod.status.init_container_statuses or ()) + list(pod.status.container_statuses or ()):
        if status.name == container:
            return status
    return None


def _limit(job: Any) -> str:
    for container in job.spec.template.spec.init_containers or ():
        if container.name == "analysis":
            memory = (container.resources.limits or {}).get("memory", "?")
            try:
                return f"{int(memory) >> 20} MiB"
            except ValueError:
                return str(memory)
    return "?"


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat(timespec="seconds")
    return None


def _reason(e: ApiException) -> str:
    try:
        return str(json.loads(e.body).get("message") or e.reason)
    except (TypeError, ValueError):
        return str(e.reason)
