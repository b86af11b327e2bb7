"""Running Analyses over a query with real containers: derivatives, provenance, skip and
force, and every way a job can fail without losing other work."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rollerblade.errors import InputError
from rollerblade.pipeline import querying, running, store_lock
from rollerblade.ports import Executor
from rollerblade.stack import Stack
from tests.conftest import ACTOR
from tests.integration.conftest import import_into

T1_PATTERN = "sub-{sub}[_ses-{ses}]_desc-copy_T1w.nii.gz"
JSON_PATTERN = "sub-{sub}[_ses-{ses}]_desc-copy_T1w.json"


@pytest.fixture
def cohort(stack: Stack, real_cohort: dict[str, Path]) -> Stack:
    import_into(stack, real_cohort["site-a"], "site-a")  # 3 participants x 2 sessions
    return stack


def run(stack: Stack, executor: Executor, name: str, query: str = "", **kwargs: object) -> running.RunReport:
    return running.run_analysis(
        name,
        query,
        storage=stack.storage,
        index=stack.index,
        bus=stack.bus,
        executor=executor,
        actor=ACTOR,
        workdir=stack.settings.work_root,
        **kwargs,
    )  # type: ignore[arg-type]


def test_run_commits_indexed_derivatives_with_provenance(
    cohort: Stack, executor: Executor, toolbox: Callable[..., Path], register: Callable[..., dict[str, object]]
) -> None:
    doc = register(toolbox("copy", outputs=[T1_PATTERN, JSON_PATTERN], params={"mode": "ok"}), executor)
    report = run(cohort, executor, "copy", "participant.age>0")
    assert len(report.planned) == 6 and len(report.succeeded) == 6 and not report.failed
    found = list(querying.find_records("analysis=copy AND desc=copy AND suffix=T1w", index=cohort.index, actor=ACTOR))
    assert len(found) == 6
    record = found[0]
    assert record.path == "derivatives/copy/sub-001/ses-1/anat/sub-001_ses-1_desc-copy_T1w.nii.gz"
    assert record.meta["Mode"] == "ok" and record.meta["Sources"] == [
        "bids:site-a:sub-001/ses-1/anat/sub-001_ses-1_T1w.nii.gz"
    ]
    assert record.meta["ImageDigest"] == doc["image_digest"] and record.meta["ExitCode"] == 0
    assert record.participant["participant_id"] == "sub-001"  # participant attributes reach derivatives
    job = cohort.index.get_job(key=record.meta["RollerbladeJob"])
    assert job is not None and job.state == "succeeded" and job.logs_key == record.meta["Logs"]
    assert b"mode=ok" in cohort.storage.read(key=job.logs_key)
    description = json.loads(cohort.storage.read(key="derivatives/copy/site-a/dataset_description.json"))
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Container"]["Tag"] == doc["image_digest"]


def test_succeeded_jobs_are_skipped_unless_forced(
    cohort: Stack, docker_executor: Executor, toolbox: Callable[..., Path], register: Callable[..., dict[str, object]]
) -> None:
    register(toolbox("copy", outputs=[T1_PATTERN]), docker_executor)
    first = run(cohort, docker_executor, "copy", "ses=1")
    assert len(first.succeeded) == 3
    again = run(cohort, docker_executor, "copy")
    assert len(again.skipped) == 3 and len(again.succeeded) == 3  # only the new slices ran
    assert len(run(cohort, docker_executor, "copy").skipped) == 6
    forced = run(cohort, docker_executor, "copy", "sub=001", force=True)
    assert len(forced.succeeded) == 2 and not forced.skipped
    dry = run(cohort, docker_executor, "copy", dry_run=True)
    assert len(dry.planned) == 6 and len(dry.skipped) == 6 and not dry.succeeded


def test_changed_params_or_inputs_change_the_job_key(
    cohort: Stack, docker_executor: Executor, toolbox: Callable[..., Path], register: Callable[..., dict[str, object]]
) -> None:
    register(toolbox("copy", outputs=[T1_PATTERN], params={"mode": "ok"}), docker_executor)
    keys = {job.key for job in run(cohort, docker_executor, "copy", dry_run=True).planned}
    register(toolbox("copy", outputs=[T1_PATTERN], params={"mode": "ok", "level": 2}), docker_executor)
    assert keys.isdisjoint(job.key for job in run(cohort, docker_executor, "copy", dry_run=True).planned)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("crash", "exited with code 3"),
        ("oom", "killed: out of memory (limit 512 MiB)"),
        ("missing", "declared output(s) missing: sub-001/ses-1/anat/sub-001_ses-1_desc-copy_T1w.json"),
        ("extra", "undeclared output(s): stray.txt"),
        ("symlink", "output link.txt is a symlink"),
        ("read", "exited with code 1"),  # a corrupt input NIfTI whose header looks fine
    ],
)
def test_failing_jobs_commit_nothing_and_others_continue(
    cohort: Stack,
    docker_executor: Executor,
    toolbox: Callable[..., Path],
    register: Callable[..., dict[str, object]],
    mode: str,
    message: str,
) -> None:
    if mode == "read":  # damage the voxel data of one scan but keep its header and gzip trailer
        key = "datasets/site-a/sub-001/ses-1/anat/sub-001_ses-1_T1w.nii.gz"
        data = bytearray(cohort.storage.read(key=key))
        data[len(data) // 2 : len(data) // 2 + 4096] = b"\0" * 4096
        from rollerblade.pipeline.indexing import index_object
        from rollerblade.records import ObjectEvent

        info = cohort.storage.put_bytes(key=key, data=bytes(data))
        index_object(
            ObjectEvent("created", key, info.generation), storage=cohort.storage, index=cohort.index, actor=ACTOR
        )
    register(toolbox("tool", outputs=[T1_PATTERN, JSON_PATTERN], params={"mode": "ok"}), docker_executor)
    good = run(cohort, docker_executor, "tool", "sub=004")
    assert len(good.succeeded) == 2
    register(toolbox("tool", outputs=[T1_PATTERN, JSON_PATTERN], params={"mode": mode}), docker_executor)
    report = run(cohort, docker_executor, "tool", "sub=001 AND ses=1")
    assert len(report.failed) == 1
    failed = report.failed[0]
    assert failed.state == "failed" and message in failed.message
    assert f"rollerblade logs {failed.key[:12]}" in failed.message
    assert cohort.storage.read(key=failed.logs_key or "")  # logs are stored
    outputs = [o.key for o in cohort.storage.list(prefix="derivatives/tool/site-a/sub-001/ses-1/")]
    assert outputs == []  # nothing half-written is visible
    assert querying.count_records("analysis=tool", index=cohort.index, actor=ACTOR) == 2  # earlier work intact
    assert [j.key for j in cohort.index.jobs(analysis="tool", state="failed")] == [failed.key]


def test_timeout(
    cohort: Stack, docker_executor: Executor, toolbox: Callable[..., Path], register: Callable[..., dict[str, object]]
) -> None:
    register(
        toolbox(
            "slow",
            outputs=[T1_PATTERN],
            params={"mode": "sleep", "seconds": 30},
            resources={"cpu": 0.5, "memory": "256m", "timeout": 2},
        ),
        docker_executor,
    )
    report = run(cohort, docker_executor, "slow", "sub=001 AND ses=1")
    assert "killed: timed out after 2 s" in report.failed[0].message


def test_retries(
    cohort: Stack, docker_executor: Executor, toolbox: Callable[..., Path], register: Callable[..., dict[str, object]]
) -> None:
    register(toolbox("flaky", outputs=[T1_PATTERN], params={"mode": "crash"}, retries=2), docker_executor)
    report = run(cohort, docker_executor, "flaky", "sub=001 AND ses=1")
    assert report.failed[0].attempts == 3


def test_output_pattern_that_cannot_be_filled(
    cohort: Stack, docker_executor: Executor, toolbox: Callable[..., Path], register: Callable[..., dict[str, object]]
) -> None:
    register(toolbox("needs-task", outputs=["sub-{sub}_task-{task}_bold.nii.gz"]), docker_executor)
    report = run(cohort, docker_executor, "needs-task", "sub=001 AND ses=1")
    assert "needs {task}, which the source does not have" in report.failed[0].message


def test_a_job_larger_than_the_machine_is_refused_up_front(
    cohort: Stack, docker_executor: Executor, toolbox: Callable[..., Path], register: Callable[..., dict[str, object]]
) -> None:
    register(toolbox("huge", outputs=[T1_PATTERN], resources={"memory": "4t"}), docker_executor)
    with pytest.raises(InputError, match=r"declares 4096.0 GiB of memory per job but this machine has"):
        run(cohort, docker_executor, "huge")
    assert cohort.index.jobs(analysis="huge") == []


def test_parallelism_fits_the_machine() -> None:
    from rollerblade.analyses.spec import parse_spec

    spec = parse_spec("name: a\nversion: 1\nimage: x\ncommand: x\noutputs: [a.txt]\nresources: {cpu: 1, memory: 4g}\n")
    assert running.budget(spec, None, running.Machine(cpus=2, memory=24 << 30)) == 2
    assert running.budget(spec, 8, running.Machine(cpus=16, memory=10 << 30)) == 2  # memory-bound
    assert running.budget(spec, 1, running.Machine(cpus=16, memory=64 << 30)) == 1


def test_one_run_at_a_time_per_store(tmp_path: Path) -> None:
    from rollerblade.errors import InputError as Refused

    held = store_lock.exclusive_run(tmp_path)
    held.__enter__()
    try:
        with pytest.raises(Refused, match="another rollerblade run is in progress"), store_lock.exclusive_run(tmp_path):
            pass
    finally:
        held.__exit__(None, None, None)
    with store_lock.exclusive_run(tmp_path):  # released afterwards
        pass
