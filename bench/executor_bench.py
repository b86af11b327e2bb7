"""Analysis execution benchmark: executor overhead, throughput and planning time.

In one run:
* per-job overhead: DockerExecutor.run (create, start, wait, logs, remove) against a bare
  ``docker run --rm --network none`` of the same image and command (median of N);
* throughput: a trivial Analysis run with ``rollerblade run`` machinery over ``--scans``
  scans with 2 workers (containers/minute, staging and commit included) against a bare
  two-worker loop of ``docker run``;
* planning: job keys and the skip check for ``--candidates`` synthetic records.

Usage: python bench/executor_bench.py [--repeats 15] [--scans 200] [--candidates 100000]
Needs a running Docker engine and the base image (scripts/dockerd.sh; docker/base/build.sh).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

IMAGE = "rollerblade/base:py311"
COMMAND = ("python3", "-c", "pass")


def bare_run() -> float:
    t0 = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, *COMMAND], check=True, capture_output=True)
    return time.perf_counter() - t0


def executor_run(executor: object, work: Path, i: int) -> float:
    from rollerblade.ports import ExecSpec

    folder = work / f"run{i}"
    (folder / "in").mkdir(parents=True)
    (folder / "out").mkdir()
    spec = ExecSpec(
        job_key=f"bench-{i}",
        image=IMAGE,
        command=COMMAND,
        input_dir=str(folder / "in"),
        output_dir=str(folder / "out"),
        env={},
        cpu=1.0,
        memory=256 << 20,
        timeout=60,
        log_path=str(folder / "log.txt"),
    )
    t0 = time.perf_counter()
    result = executor.run(spec=spec)  # type: ignore[attr-defined]
    assert result.exit_code == 0, result
    return time.perf_counter() - t0


def throughput(scans: int, work: Path) -> tuple[float, float]:
    """(bare containers/minute, rollerblade jobs/minute) with 2 workers."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda _: bare_run(), range(scans)))
        bare = scans / (time.perf_counter() - t0) * 60

    from rollerblade.pipeline import analyses, running
    from rollerblade.records import Actor
    from rollerblade.settings import Settings
    from rollerblade.stack import open_stack

    home = work / "home"
    stack = open_stack(Settings(home=home))
    import numpy as np

    from rollerblade.demo.cohort import FULL, SITES, make_participants, write_dataset
    from rollerblade.pipeline import importing

    source = write_dataset(
        work / "tree",
        SITES[0],
        make_participants(scans // 2, np.random.default_rng(0)),
        sessions=2,
        modalities=FULL,
        images="tiny",
    )
    importing.import_dataset(
        source, dataset="bench", storage=stack.storage, index=stack.index, bus=stack.bus, actor=Actor("bench")
    )
    folder = work / "trivial"
    folder.mkdir()
    (folder / "Dockerfile").write_text(f"FROM {IMAGE}\n")
    (folder / "analysis.yaml").write_text(
        "name: trivial\nversion: '1'\nimage: {build: .}\n"
        "command: [python3, -c, \"import json,os,pathlib; j=json.loads(os.environ['ROLLERBLADE_SLICE']); "
        "p=pathlib.Path('/output', j['outputs'][0]); p.parent.mkdir(parents=True); p.write_text('{}')\"]\n"
        "input: suffix=T1w AND extension=.nii.gz\nresources: {cpu: 1, memory: 256m}\n"
        "outputs: ['sub-{sub}[_ses-{ses}]_desc-trivial_T1w.json']\n"
    )
    analyses.register_analysis(folder, index=stack.index, executor=stack.executor, actor=Actor("bench"))
    t0 = time.perf_counter()
    report = running.run_analysis(
        "trivial",
        "",
        storage=stack.storage,
        index=stack.index,
        bus=stack.bus,
        executor=stack.executor,
        actor=Actor("bench"),
        workdir=home / "work",
        parallel=2,
    )
    elapsed = time.perf_counter() - t0
    assert not report.failed, report.failed[0].message
    stack.close()
    return bare, len(report.succeeded) / elapsed * 60


def planning(candidates: int, work: Path) -> tuple[float, float]:
    """(seconds to plan job keys, seconds for the skip check) for synthetic records."""
    from rollerblade.adapters.sqlite_index import SqliteIndex
    from rollerblade.analyses.jobs import plan_jobs
    from rollerblade.analyses.spec import parse_spec
    from rollerblade.records import ScanRecord

    spec = parse_spec("name: a\nversion: '1'\nimage: x\ncommand: x\noutputs: ['sub-{sub}[_ses-{ses}]_x_T1w.json']\n")
    records = [
        ScanRecord(
            "ds",
            f"sub-{i:06d}/ses-1/anat/sub-{i:06d}_ses-1_T1w.nii.gz",
            {"sub": f"{i:06d}", "ses": "1", "datatype": "anat", "suffix": "T1w", "extension": ".nii.gz"},
            {},
            {},
            {},
            {},
            {"md5": f"{i:032x}"},
        )
        for i in range(candidates)
    ]
    t0 = time.perf_counter()
    jobs = plan_jobs(spec, "sha256:" + "0" * 64, records)
    plan_s = time.perf_counter() - t0
    index = SqliteIndex(work / "plan.sqlite")
    t0 = time.perf_counter()
    done = sum(1 for job in jobs if (j := index.get_job(key=job.key)) is not None and j.state == "succeeded")
    skip_s = time.perf_counter() - t0
    assert done == 0
    index.close()
    return plan_s, skip_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--scans", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=100_000)
    args = parser.parse_args()
    from rollerblade.adapters.docker_exec import DockerExecutor

    work = Path(tempfile.mkdtemp(prefix="rollerblade-exec-bench-"))
    try:
        executor = DockerExecutor(store_id="bench")
        bare_run()  # warm up
        bare = statistics.median(bare_run() for _ in range(args.repeats))
        ours = statistics.median(executor_run(executor, work, i) for i in range(args.repeats))
        print(
            f"per-job overhead: docker run {bare * 1000:.0f} ms, DockerExecutor.run {ours * 1000:.0f} ms "
            f"-> ratio {ours / bare:.2f}x (target <= 1.2x)"
        )
        plan_s, skip_s = planning(args.candidates, work)
        print(
            f"planning {args.candidates} candidates: job keys {plan_s:.2f} s + skip check {skip_s:.2f} s "
            f"= {plan_s + skip_s:.2f} s (target < 5 s)"
        )
        bare_rate, our_rate = throughput(args.scans, work)
        print(
            f"throughput with 2 workers over {args.scans} scans: bare docker run {bare_rate:.0f}/min, "
            f"rollerblade run {our_rate:.0f} jobs/min (staging, commit, indexing included) "
            f"-> ratio {our_rate / bare_rate:.2f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
