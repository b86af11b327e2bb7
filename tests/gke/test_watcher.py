"""The job watcher against the real API server and the Pub/Sub emulator: each ended Job is
published once as ``job.ended``, through a watch that expires (410 Gone: relist) and an API
server restart in mid-stream; a Job deleted by hand becomes a ``lost`` end; an image that
cannot be pulled ends the job in error with the reason instead of an endless Pending."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from rollerblade.adapters.gke_exec import GkeExecutor, JobWatcher, job_name
from rollerblade.adapters.pubsub_bus import PubSubBus
from rollerblade.analyses.jobs import JobEnded, JobRecord
from rollerblade.errors import TemporaryError
from rollerblade.pipeline.events import publish_all
from rollerblade.pipeline.jobflow import reconcile
from rollerblade.pipeline.messages import JOBS_TOPIC
from rollerblade.stack import Stack
from tests import kube
from tests.conftest import GcpStack
from tests.gke.test_executor_port import ended, submit


def _ends(bus: PubSubBus, want: int, timeout: float = 180.0) -> list[JobEnded]:
    got: list[JobEnded] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        messages = bus.pull(topic=JOBS_TOPIC, max_messages=10, lease_seconds=30)
        got += [JobEnded.from_message(body) for _, body in messages]
        if messages:
            bus.ack(message_ids=[m for m, _ in messages])
    return got


def test_each_end_is_published_once_through_an_expired_watch_and_an_api_server_restart(
    gcp: GcpStack, gke_stack: Stack, gke_executor: GkeExecutor, kube_cluster: kube.Cluster, tmp_path: Path
) -> None:
    bus = PubSubBus(project=gcp.project, prefix=f"watch-{uuid.uuid4().hex[:8]}-")
    watcher = JobWatcher(
        gke_executor,
        lambda ends: publish_all(bus, [e.to_message() for e in ends], topic=JOBS_TOPIC),
        watch_seconds=5,
        sweep_every=3600,
    )
    watcher.relist()  # the watch will start from here...
    relists = watcher.relists
    # ...after changes to Jobs and a compaction: 410 Gone
    idle = submit((gke_executor, gke_stack), tmp_path / "idle", "ok", gpu=1, accelerator="nvidia-l4")  # no GPU node
    name = job_name(idle.job_key, 1)
    for i in range(12):
        gke_executor.batch.patch_namespaced_job(
            name=name, namespace=gke_executor.cluster.namespace, body={"metadata": {"labels": {"n": str(i)}}}
        )
    gke_executor.batch.delete_namespaced_job(
        name=name, namespace=gke_executor.cluster.namespace, propagation_policy="Background"
    )
    time.sleep(11)  # etcd is compacted every 5 s, up to the revision of the compaction before: gone
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        port = (gke_executor, gke_stack)
        first = submit(port, tmp_path / "a", "ok")
        (done,) = _ends(bus, 1)
        assert (done.key, done.outcome) == (first.job_key, "succeeded")
        assert watcher.relists > relists  # the expired watch was resumed from a fresh list
        second = submit(port, tmp_path / "b", "sleep", timeout=8.0)
        time.sleep(2)
        kube_cluster.restart_apiserver(down=3.0)  # the watch breaks mid-stream; the Job keeps going
        ends = _ends(bus, 1)
        ends += _ends(bus, 1, timeout=10)  # nothing more may come: each end once
    finally:
        watcher.stopping.set()
        thread.join(timeout=30)
    assert [(e.key, e.outcome) for e in ends] == [(second.job_key, "timeout")]
    assert not gke_executor.active() & {first.job_key, second.job_key}  # both marked reported


def test_a_missing_image_ends_in_error_with_the_reason(
    gke_stack: Stack, gke_executor: GkeExecutor, tmp_path: Path
) -> None:
    missing = "127.0.0.1:9/rollerblade-test/missing@sha256:" + "0" * 64  # a registry on loopback that is not there
    spec = submit((gke_executor, gke_stack), tmp_path, "ok", image=missing)
    end = ended(gke_executor, spec.job_key, timeout=120)
    assert end.outcome == "error" and "cannot be pulled" in end.message and "analysis" in end.message, end
    assert job_name(spec.job_key, 1) not in {j.metadata.name for j in gke_executor._list()}  # no Pending pod left


def test_submitting_twice_makes_one_job(gke_stack: Stack, gke_executor: GkeExecutor, tmp_path: Path) -> None:
    spec = submit((gke_executor, gke_stack), tmp_path, "ok")
    gke_executor.submit(spec=spec)  # a redelivered job.queued: the same Job name, nothing new
    names = [j.metadata.name for j in gke_executor._list() if j.metadata.name == job_name(spec.job_key, 1)]
    assert names == [job_name(spec.job_key, 1)]
    assert ended(gke_executor, spec.job_key).outcome == "succeeded"


def test_a_job_deleted_by_hand_is_reported_lost(gke_stack: Stack, gke_executor: GkeExecutor, tmp_path: Path) -> None:
    spec = submit((gke_executor, gke_stack), tmp_path, "sleep")
    record = JobRecord(
        key=spec.job_key, analysis="tool", version="1", dataset="d", slice_id="sub-01", state="running",
        image_digest=spec.image, params={}, sources=("sub-01/data.txt",), outputs=("out/result.json",), attempts=1,
        updated=time.time() - 60,
    )  # fmt: skip
    gke_stack.index.put_job(job=record)
    services = dataclasses.replace(gke_stack.services, executor_name="gke", _executor=gke_executor)
    assert reconcile(services, older_than=30) == 0  # alive in the cluster: nothing to do
    gke_executor.batch.delete_namespaced_job(
        name=job_name(spec.job_key, 1), namespace=gke_executor.cluster.namespace, propagation_policy="Background"
    )
    assert reconcile(services, older_than=30) == 1
    (message,) = [body for _, body in gke_stack.bus.pull(topic=JOBS_TOPIC, max_messages=10, lease_seconds=5)]
    lost = JobEnded.from_message(message)
    assert (lost.key, lost.attempt, lost.outcome) == (spec.job_key, 1, "lost")


def test_an_exhausted_quota_backs_off_and_loses_nothing(
    gke_stack: Stack, gke_executor: GkeExecutor, tmp_path: Path
) -> None:
    namespace = f"quota-{uuid.uuid4().hex[:8]}"
    gke_executor.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    gke_executor.core.create_namespaced_resource_quota(
        namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="jobs"), spec=client.V1ResourceQuotaSpec(hard={"count/jobs.batch": "1"})
        ),
    )
    gke_executor.cluster = dataclasses.replace(gke_executor.cluster, namespace=namespace)
    port = (gke_executor, gke_stack)
    first = submit(port, tmp_path / "a", "ok")
    with pytest.raises(TemporaryError, match="quota"):  # the real ResourceQuota admission refuses
        submit(port, tmp_path / "b", "ok")
    assert ended(gke_executor, first.job_key).outcome == "succeeded"
    gke_executor._delete(job_name(first.job_key, 1))  # its TTL would, later; the quota frees up
    deadline = time.monotonic() + 60
    while True:  # what the bus does with the nacked job.queued: deliver it again later
        try:
            second = submit(port, tmp_path / "b", "ok")
            break
        except TemporaryError:
            assert time.monotonic() < deadline, "the quota never freed up"
            time.sleep(1)
    assert ended(gke_executor, second.job_key).outcome == "succeeded"


def test_a_pod_that_cannot_be_scheduled_ends_in_error_after_the_limit(
    gke_stack: Stack, gke_executor: GkeExecutor, tmp_path: Path
) -> None:
    gke_executor.cluster = dataclasses.replace(gke_executor.cluster, pending_limit=5.0)
    spec = submit((gke_executor, gke_stack), tmp_path, "ok", gpu=1, accelerator="nvidia-l4")  # no GPU node here
    end = ended(gke_executor, spec.job_key, timeout=120)
    assert end.outcome == "error" and "Pending" in end.message and "Unschedulable" in end.message, end
    assert job_name(spec.job_key, 1) not in {j.metadata.name for j in gke_executor._list()}  # deleted: no pod waits
