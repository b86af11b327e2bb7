"""The gke executor end to end on a real cluster: ``run`` gives the same outputs, job keys
and provenance as the Docker executor, and the pipeline rules' chain (mask -> tissue
volumes, QC snapshots, final tags) runs through it, with completion read from the cluster."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from rollerblade.abids.layout import dataset_key
from rollerblade.adapters.gke_exec import GkeExecutor
from rollerblade.adapters.local_exec import LocalExecutor
from rollerblade.pipeline import automation, querying, running
from rollerblade.pipeline.reindex import reindex_dataset
from rollerblade.pipeline.worker import BucketWatcher, Worker
from rollerblade.stack import Stack
from tests import kube
from tests.analyses.test_pipeline import EXAMPLES, drop, settle
from tests.conftest import ACTOR, ROOT


def _outputs(stack: Stack) -> dict[str, str]:
    """Derivative path -> md5 of its bytes, for every committed derivative file."""
    return {
        r.path: hashlib.md5(stack.storage.read(key=dataset_key(r.dataset, r.path))).hexdigest()
        for r in querying.find_records("exists(analysis)", index=stack.index, actor=ACTOR)
        if r.path.endswith(".nii.gz")
    }


def test_run_on_gke_matches_docker(
    gke_stack: Stack,
    gke_executor: GkeExecutor,
    stack: Stack,
    docker_executor: LocalExecutor,
    real_cohort: dict[str, Path],
    register: Callable[..., object],
    register_gke: Callable[..., object],
) -> None:
    subject = sorted(p.name for p in real_cohort["site-a"].glob("sub-*"))[0]
    for store, executor, reg in ((gke_stack, gke_executor, register_gke), (stack, docker_executor, register)):
        drop(store, real_cohort["site-a"], "site-a", subject)
        reindex_dataset("site-a", storage=store.storage, index=store.index, actor=ACTOR)
        reg(ROOT / "analyses" / "brain-mask", executor)
        report = running.run_analysis(
            "brain-mask",
            "",
            storage=store.storage,
            index=store.index,
            bus=store.bus,
            executor=executor,
            actor=ACTOR,
            workdir=store.settings.work_root,
        )
        assert len(report.succeeded) == 2 and not report.failed, report  # two sessions, one T1w each
    gke_jobs = {j.key: j for j in gke_stack.index.jobs()}
    docker_jobs = {j.key: j for j in stack.index.jobs()}
    assert set(gke_jobs) == set(docker_jobs)  # same image digest, params and inputs: the same keys
    for key, job in gke_jobs.items():
        other = docker_jobs[key]
        assert (job.image_digest, job.params, job.sources, job.outputs) == (
            other.image_digest,
            other.params,
            other.sources,
            other.outputs,
        )
        assert "Autopilot" not in job.message  # brain-mask asks 1 vCPU / 1 GiB: nothing to round
        gke_log = gke_stack.storage.read(key=job.logs_key or "")
        assert gke_log == stack.storage.read(key=other.logs_key or "") and b"brain volume" in gke_log
    assert _outputs(gke_stack) == _outputs(stack) and len(_outputs(stack)) == 2
    assert not list(gke_stack.storage.list(prefix="jobs/"))  # staged outputs and pod files cleaned up


def test_the_rules_chain_runs_on_gke(
    gke_stack: Stack, gke_executor: GkeExecutor, real_cohort: dict[str, Path], register_gke: Callable[..., object]
) -> None:
    for name in EXAMPLES:
        register_gke(ROOT / "analyses" / name, gke_executor)
    services = dataclasses.replace(gke_stack.services, executor_name="gke", _executor=gke_executor)
    automation.apply_rules(services, ROOT / "pipeline_rules", actor=ACTOR)
    worker = Worker(services, actor=ACTOR, watcher=BucketWatcher(services), slots=4)
    worker.start()
    subject = sorted(p.name for p in real_cohort["site-c"].glob("sub-*"))[0]
    drop(gke_stack, real_cohort["site-c"], "drop", subject)
    settle(worker, services, timeout=900)
    jobs = Counter((j.analysis, j.state) for j in gke_stack.index.jobs())
    # by hand, as on Docker: 2 T1w -> 2 masks -> 2 tissue-volume jobs + 2 snapshots of the masks
    assert jobs == {("brain-mask", "succeeded"): 2, ("tissue-volumes", "succeeded"): 2, ("qc-snapshot", "succeeded"): 2}
    count = lambda q: querying.count_records(q, index=gke_stack.index, actor=ACTOR)  # noqa: E731
    assert count("tag=final") == 4 and count("tag=display") == 6
    assert count("analysis=tissue-volumes AND meta.GMVolumeML>100 AND tag=final") == 2


def test_the_run_command_with_executor_gke(
    tmp_path: Path, real_cohort: dict[str, Path], kube_cluster: kube.Cluster, stager_image: str
) -> None:
    """What a user types: ``rollerblade run ANALYSIS --query Q --executor gke``, settings from the environment."""
    env = {
        **os.environ,
        "ROLLERBLADE_KUBECONFIG": str(kube_cluster.kubeconfig),
        "ROLLERBLADE_STAGER_IMAGE": stager_image,
    }
    home = tmp_path / "cli-home"

    def rb(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)

    assert rb("import", str(real_cohort["site-b"]), "--dataset", "site-b").returncode == 0
    assert rb("analysis", "register", str(ROOT / "analyses" / "brain-mask")).returncode == 0
    first = sorted(p.name.removeprefix("sub-") for p in real_cohort["site-b"].glob("sub-*"))[0]
    done = rb("run", "brain-mask", "--query", f"sub={first} AND ses=1", "--executor", "gke")
    assert done.returncode == 0, done.stderr
    assert "1 succeeded" in done.stdout + done.stderr, done.stdout + done.stderr
    found = rb("query", "analysis=brain-mask AND suffix=mask", "--count")
    assert found.stdout.strip() == "1"
    env["ROLLERBLADE_EXECUTOR"] = "gke"  # status has no --executor: the setting says where jobs run
    status = rb("status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["cluster"]["finished"] == 1  # read from the cluster: the Job ended
