"""Throttling on the cloud path: more jobs than the in-flight limit go through the real
dispatcher (as the job_events function receives them); at no time are more than the
limit submitted to the cluster, every job runs exactly once, and none is dead-lettered
(a job over the limit waits as a planned record, not as a redelivered message)."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from rollerblade.adapters.gke_exec import GkeExecutor
from rollerblade.demo.cohort import write_cohort
from rollerblade.pipeline import analyses, dispatch, jobflow
from rollerblade.pipeline.messages import JOBS_TOPIC, QUEUE_TOPIC, TOPICS
from rollerblade.pipeline.reindex import reindex_dataset
from rollerblade.stack import Stack
from tests.analyses.conftest import TOOLBOX
from tests.conftest import ACTOR

JOBS, LIMIT = 6, 2


def test_no_more_than_the_limit_runs_and_every_job_runs_once(
    gke_stack: Stack, gke_executor: GkeExecutor, tmp_path: Path
) -> None:
    cohort = write_cohort(tmp_path / "cohort", subjects=JOBS, sessions=1, modalities=("T1w",), images="tiny", seed=5)
    for site, root in cohort.items():
        for path in (p for p in root.rglob("*") if p.is_file()):
            gke_stack.storage.put_file(key=f"datasets/{site}/{path.relative_to(root).as_posix()}", source=str(path))
        reindex_dataset(site, storage=gke_stack.storage, index=gke_stack.index, actor=ACTOR)
    folder = tmp_path / "tool"
    shutil.copytree(TOOLBOX, folder)
    (folder / "analysis.yaml").write_text(
        "name: tool\nversion: '1'\nimage: {build: .}\ncommand: [python3, tool.py]\n"
        "input: suffix=T1w AND extension=.nii.gz AND NOT exists(analysis)\n"
        "resources: {cpu: 0.25, memory: 512m, timeout: 120}\n"
        "outputs: ['sub-{sub}_desc-tool.json']\nparams: {mode: ok}\n"
    )
    services = dataclasses.replace(gke_stack.services, max_jobs=LIMIT, _executor=gke_executor)
    analyses.register_analysis(folder, index=gke_stack.index, executor=gke_executor, actor=ACTOR)
    _, report = jobflow.queue_run(services, "tool", "", actor=ACTOR)
    assert len(report.queued) == JOBS  # by hand: one T1w per participant
    dispatch.pump(services, QUEUE_TOPIC, actor=ACTOR)
    # the jobs over the limit wait as planned records; their messages are acknowledged, not
    # redelivered until Pub/Sub's dead-letter policy gives up on them
    assert gke_stack.bus.pending(topic=QUEUE_TOPIC) == 0  # type: ignore[attr-defined]
    assert len(gke_stack.index.jobs(state="planned")) == JOBS - LIMIT
    most = 0
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        dispatch.pump(services, QUEUE_TOPIC, actor=ACTOR)
        most = max(most, len(gke_executor.active()))  # what the cluster holds, not what the index says
        jobflow.collect(services)
        dispatch.pump(services, JOBS_TOPIC, actor=ACTOR)
        states = [j.state for j in gke_stack.index.jobs()]
        if states.count("succeeded") == JOBS:
            break
        time.sleep(0.2)
    jobs = gke_stack.index.jobs()
    assert [j.state for j in jobs] == ["succeeded"] * JOBS
    assert [j.attempts for j in jobs] == [1] * JOBS  # none ran twice, none was lost
    assert 1 <= most <= LIMIT, most
    bus = gke_stack.bus
    assert not any(bus.dead_letters(topic=t) for t in TOPICS)  # type: ignore[attr-defined]
