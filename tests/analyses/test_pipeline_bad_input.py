"""Bad input to the event-driven pipeline: an Analysis that always crashes, a poison
message, a source deleted while its job runs, a rules change while jobs are in flight.
Each gets a clear message and leaves the index, the jobs and the bucket consistent.

The toolbox Analysis runs with the process executor here (its script on the host's
Python), through the same worker and handlers as the Docker executor."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from rollerblade.adapters.process_exec import ProcessExecutor
from rollerblade.analyses.jobs import JobRecord
from rollerblade.pipeline import automation, querying
from rollerblade.pipeline.messages import RERUNS_TOPIC
from rollerblade.pipeline.services import Services
from rollerblade.pipeline.worker import BucketWatcher, Worker
from rollerblade.stack import Stack
from tests.conftest import ACTOR

T1_PATTERN = "sub-{sub}[_ses-{ses}]_desc-copy_T1w.nii.gz"


def pipeline(stack: Stack, tmp_path: Path, rules: list[dict[str, object]]) -> tuple[Services, Worker]:
    services = dataclasses.replace(stack.services, executor_name="process", _executor=process(stack))
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "rules.yaml").write_text(yaml.safe_dump({"rules": rules}, sort_keys=False))
    automation.apply_rules(services, folder, actor=ACTOR)
    worker = Worker(services, actor=ACTOR, watcher=BucketWatcher(services))
    worker.start()
    return services, worker


def drop_one(stack: Stack, real_cohort: dict[str, Path], session: str = "ses-1") -> str:
    source = real_cohort["site-a"]
    target = stack.settings.bucket_root / "datasets" / "drop"
    subject = sorted(p.name for p in source.glob("sub-*"))[0]
    (target / subject / session).mkdir(parents=True, exist_ok=True)
    for name in ("dataset_description.json", "participants.tsv"):
        shutil.copyfile(source / name, target / name)
    shutil.copytree(source / subject / session / "anat", target / subject / session / "anat", dirs_exist_ok=True)
    return subject


def process(stack: Stack) -> ProcessExecutor:
    return ProcessExecutor(storage=stack.storage, workdir=stack.settings.work_root)


def first_running(stack: Stack, worker: Worker) -> JobRecord:
    """Step the worker until a job runs; that job."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not stack.index.jobs(state="running"):
        worker.step()
    (job,) = stack.index.jobs(state="running")
    return job


RUN_TOOL = {"name": "copy-t1w", "on": "scan.indexed", "when": "suffix=T1w AND NOT exists(analysis)", "run": "tool"}


def test_an_analysis_that_always_crashes_is_retried_then_stays_failed(
    stack: Stack,
    toolbox: Callable[..., Path],
    register: Callable[..., object],
    real_cohort: dict[str, Path],
    tmp_path: Path,
) -> None:
    executor = ProcessExecutor(storage=stack.storage, workdir=stack.settings.work_root)
    register(toolbox("tool", outputs=[T1_PATTERN], params={"mode": "crash"}, retries=2), executor)
    services, worker = pipeline(stack, tmp_path, [RUN_TOOL])
    drop_one(stack, real_cohort)
    assert worker.run_until_idle(timeout=120)
    (job,) = stack.index.jobs()
    assert job.state == "failed" and job.attempts == 3  # 1 try + 2 retries, then it stays failed
    assert "exited with code 3" in job.message and f"rollerblade logs {job.key[:12]}" in job.message
    assert querying.count_records("analysis=tool", index=stack.index, actor=ACTOR) == 0
    assert not list(stack.storage.list(prefix="jobs/"))  # no staged outputs left
    for _ in range(20):  # the failure re-enters the rules as job.failed: nothing loops
        worker.step()
    assert [j.attempts for j in stack.index.jobs()] == [3]
    home = stack.settings.home
    status = subprocess.run(
        [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    doc = json.loads(status.stdout)
    assert doc["jobs"] == {"failed": 1} and "exited with code 3" in doc["last_failures"][0]["message"]
    worker.shutdown()


def test_a_poison_message_is_dead_lettered_visible_and_retryable(stack: Stack, tmp_path: Path) -> None:
    services = dataclasses.replace(stack.services, executor_name="process", _executor=process(stack))
    worker = Worker(services, actor=ACTOR)
    poison = {"type": "rerun.requested", "v": 1, "query": "", "analysis": "no-such-analysis"}
    stack.bus.publish(topic=RERUNS_TOPIC, message=poison)
    stack.bus.publish(topic=RERUNS_TOPIC, message={"type": "rerun.requested", "v": 7, "query": ""})  # undecodable
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not stack.bus.dead_letters(topic=RERUNS_TOPIC):  # type: ignore[attr-defined]
        worker.step()
        time.sleep(0.2)
    (letter,) = stack.bus.dead_letters(topic=RERUNS_TOPIC)  # type: ignore[attr-defined]
    assert letter[1] == poison and "no-such-analysis" in letter[2]
    assert stack.bus.pending(topic=RERUNS_TOPIC) == 0  # type: ignore[attr-defined]  # the undecodable one was dropped
    cli = [sys.executable, "-m", "rollerblade.cli.main", "--home", str(stack.settings.home)]
    shown = subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=60).stdout
    assert "dead:    reruns" in shown and "no-such-analysis" in shown
    retried = subprocess.run([*cli, "events", "retry", "--topic", "reruns"], capture_output=True, text=True, timeout=60)
    assert "1 dead-lettered messages queued again" in retried.stdout
    assert stack.bus.pending(topic=RERUNS_TOPIC) == 1  # type: ignore[attr-defined]


def test_a_source_deleted_while_its_job_runs_commits_nothing(
    stack: Stack,
    toolbox: Callable[..., Path],
    register: Callable[..., object],
    real_cohort: dict[str, Path],
    tmp_path: Path,
) -> None:
    register(toolbox("tool", outputs=[T1_PATTERN], params={"mode": "sleep", "seconds": 3}), process(stack))
    services, worker = pipeline(stack, tmp_path, [RUN_TOOL])
    subject = drop_one(stack, real_cohort)
    job = first_running(stack, worker)
    time.sleep(1.0)  # staged and started: the tool sleeps 3 s
    (stack.settings.bucket_root / "datasets" / "drop" / job.sources[0]).unlink()  # removed by hand, mid-job
    assert worker.run_until_idle(timeout=120)
    (job,) = stack.index.jobs()
    assert job.state == "failed" and "was deleted while the job ran; outputs discarded" in job.message
    assert not list(stack.storage.list(prefix="derivatives/tool/"))  # no derivative of a deleted scan
    assert (
        querying.count_records(f"dataset=drop AND sub={subject[4:]} AND suffix=T1w", index=stack.index, actor=ACTOR)
        == 0
    )
    worker.shutdown()


def test_a_rules_change_while_jobs_are_in_flight(
    stack: Stack,
    toolbox: Callable[..., Path],
    register: Callable[..., object],
    real_cohort: dict[str, Path],
    tmp_path: Path,
) -> None:
    register(toolbox("tool", outputs=[T1_PATTERN], params={"mode": "sleep", "seconds": 2}), process(stack))
    tag = {"name": "final-copy", "on": "job.succeeded", "of": "tool", "tag": {"tags": ["final"]}}
    services, worker = pipeline(stack, tmp_path, [RUN_TOOL])
    drop_one(stack, real_cohort)
    first_running(stack, worker)
    # while the job runs: the run rule goes, a tag rule comes
    (tmp_path / "rules" / "rules.yaml").write_text(yaml.safe_dump({"rules": [tag]}))
    automation.apply_rules(services, tmp_path / "rules", actor=ACTOR)
    drop_one(stack, real_cohort, session="ses-2")  # a new scan after the change: no rule runs it
    assert worker.run_until_idle(timeout=120)
    (job,) = stack.index.jobs()
    assert job.state == "succeeded" and job.rule == "copy-t1w"  # in flight: finished under its rule
    assert job.tags == ("final",)  # tagged with the rules in force when it ended
    assert querying.count_records("analysis=tool AND tag=final", index=stack.index, actor=ACTOR) == 1
    worker.shutdown()


def test_a_job_end_delivered_again_after_a_crash_cleans_up_the_staged_outputs(stack: Stack) -> None:
    """A crash between recording a job's result and removing its staged outputs leaves them
    in the bucket; the redelivered job.ended (stale by then) removes them."""
    from rollerblade.analyses.jobs import JobEnded, output_prefix
    from rollerblade.pipeline.completion import on_job_ended

    services = dataclasses.replace(stack.services, executor_name="process", _executor=process(stack))
    job = JobRecord(
        key="c" * 64, analysis="tool", version="1", dataset="drop", slice_id="x", state="succeeded",
        image_digest="sha256:x", params={}, sources=(), outputs=("o.nii.gz",), attempts=2,
    )  # fmt: skip
    stack.index.put_job(job=job)
    for attempt in (1, 2):  # attempt 1 lost by a killed serve, attempt 2 committed, then the crash
        stack.storage.put_bytes(key=output_prefix(job.key, attempt) + "o.nii.gz", data=b"x")
    assert on_job_ended(services, JobEnded(job.key, 2, "succeeded"), actor=ACTOR) == "stale"
    assert on_job_ended(services, JobEnded(job.key, 1, "lost"), actor=ACTOR) == "stale"
    assert not list(stack.storage.list(prefix=f"jobs/{job.key}/"))
    assert stack.index.get_job(key=job.key) == job  # a stale end changes no state
