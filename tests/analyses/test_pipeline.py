"""The event-driven pipeline on the embedded default, with the real example Analyses in
Docker: scans copied into the bucket folder become brain masks, tissue volumes and QC
snapshots, with the final files tagged, and no ``run`` command."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from rollerblade.adapters.local_exec import LocalExecutor
from rollerblade.pipeline import automation, querying
from rollerblade.pipeline.messages import RESULTS_TOPIC, SCANS_TOPIC, TOPICS, JobResult, ScanIndexed
from rollerblade.pipeline.services import Services
from rollerblade.pipeline.worker import BucketWatcher, Worker
from rollerblade.stack import Stack
from tests.analyses.conftest import ROOT
from tests.conftest import ACTOR

EXAMPLES = ("brain-mask", "tissue-volumes", "qc-snapshot")


def settle(worker: Worker, services: Services, timeout: float = 600) -> None:
    """Step until nothing is queued, nothing runs and two steps in a row found nothing."""
    deadline, idle = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        idle = idle + 1 if worker.step() == 0 else 0
        states = {j.state for j in services.index.jobs()}
        pending = sum(services.bus.pending(topic=t) for t in TOPICS)  # type: ignore[attr-defined]
        if idle >= 2 and not worker.busy and not pending and states <= {"succeeded", "failed"}:
            return
        time.sleep(0.05)
    raise AssertionError(f"the pipeline did not settle: {Counter(j.state for j in services.index.jobs())}")


def drop(stack: Stack, source: Path, dataset: str, subject: str) -> None:
    """Copy a subject's folder into the bucket folder as plain files (not through Rollerblade)."""
    target = stack.settings.bucket_root / "datasets" / dataset
    target.mkdir(parents=True, exist_ok=True)
    for name in ("dataset_description.json", "participants.tsv"):
        shutil.copyfile(source / name, target / name)
    shutil.copytree(source / subject, target / subject, dirs_exist_ok=True)


def test_scans_dropped_in_the_bucket_run_the_whole_chain_and_are_tagged(
    stack: Stack,
    docker_executor: LocalExecutor,
    real_cohort: dict[str, Path],
    register: Callable[..., object],
) -> None:
    for name in EXAMPLES:
        register(ROOT / "analyses" / name, docker_executor)
    services = dataclasses.replace(stack.services, executor_name="docker", _executor=docker_executor)
    automation.apply_rules(services, ROOT / "pipeline_rules", actor=ACTOR)
    worker = Worker(services, actor=ACTOR, watcher=BucketWatcher(services))
    worker.start()
    subject = sorted(p.name for p in real_cohort["site-c"].glob("sub-*"))[0]
    drop(stack, real_cohort["site-c"], "drop", subject)  # one participant, two sessions: two T1w images
    settle(worker, services)

    jobs = Counter((j.analysis, j.state) for j in stack.index.jobs())
    # by hand: 2 T1w -> 2 masks -> 2 tissue-volume jobs (one per session) + 2 snapshots of the masks
    assert jobs == {("brain-mask", "succeeded"): 2, ("tissue-volumes", "succeeded"): 2, ("qc-snapshot", "succeeded"): 2}
    count = lambda q: querying.count_records(q, index=stack.index, actor=ACTOR)  # noqa: E731
    assert count("tag=final") == 4  # the two masks and the two tissue segmentations
    assert count("tag=final AND analysis=brain-mask AND suffix=mask") == 2
    assert count("tag=display") == 6  # and the two PNG snapshots
    assert count("analysis=tissue-volumes AND meta.GMVolumeML>100 AND tag=final") == 2
    assert count("tag=final AND NOT exists(analysis)") == 0
    masks = [j for j in stack.index.jobs(analysis="brain-mask")]
    assert all(j.rule == "mask-every-t1w" and j.tags == ("display", "final") for j in masks)

    # Every event delivered again, late: nothing is planned or run twice.
    for record in querying.find_records("", index=stack.index, actor=ACTOR):
        stack.bus.publish(topic=SCANS_TOPIC, message=ScanIndexed(record.dataset, record.path).to_message())
    for job in stack.index.jobs():
        stack.bus.publish(topic=RESULTS_TOPIC, message=JobResult(job.key, job.analysis, job.dataset, True).to_message())
    settle(worker, services)
    assert Counter((j.analysis, j.state) for j in stack.index.jobs()) == jobs

    # New content for one scan: only its own chain runs again, and its tags move.
    first = sorted(
        r.path for r in querying.find_records("suffix=T1w AND NOT exists(analysis)", index=stack.index, actor=ACTOR)
    )[0]
    image = stack.settings.bucket_root / "datasets" / "drop" / first
    other = sorted(
        r.path for r in querying.find_records("suffix=T1w AND NOT exists(analysis)", index=stack.index, actor=ACTOR)
    )[1]
    shutil.copyfile(stack.settings.bucket_root / "datasets" / "drop" / other, image)
    settle(worker, services)
    after = Counter(j.analysis for j in stack.index.jobs())
    assert after == {"brain-mask": 3, "tissue-volumes": 3, "qc-snapshot": 3}
    assert count("tag=final") == 4  # still one final mask and one final segmentation per session
    worker.shutdown()
