"""``rollerblade demo``: build the cohort, import it, run example queries and a download.

Prints what it did and how long each step took. One scan is deliberately truncated to
show how a corrupt file is reported without stopping the import.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from rollerblade.demo.cohort import DEMO, file_count, write_cohort
from rollerblade.errors import AlreadyExists
from rollerblade.pipeline import download, importing, querying
from rollerblade.records import Actor
from rollerblade.stack import Stack

EXAMPLE_QUERIES = (
    (
        "T1w at 3T of participants aged 60-70",
        "suffix=T1w AND meta.MagneticFieldStrength=3 AND participant.age>=60 AND participant.age<=70",
    ),
    ("resting-state BOLD with a 2 s TR", "task=rest AND meta.RepetitionTime=2.0"),
    ("everything of two participants", "sub IN (001, 002)"),
    ("BOLD runs without slice timing", "suffix=bold AND NOT exists(meta.SliceTiming)"),
    ("scans the index flagged as broken", "exists(error)"),
    (
        "follow-up sessions of patients over 70",
        "session.visit=followup AND participant.group=patient AND session.age>70",
    ),
)
DOWNLOAD_QUERY = EXAMPLE_QUERIES[0][1]


def run_demo(stack: Stack, *, actor: Actor, subjects: int, workdir: Path, echo: Callable[[str], None]) -> None:
    started = time.perf_counter()
    cohort_dir = workdir / "cohort"
    shutil.rmtree(cohort_dir, ignore_errors=True)
    echo(f"1. Building a {subjects}-participant, 3-site cohort from real brain images in {cohort_dir}")
    roots = write_cohort(cohort_dir, subjects=subjects, modalities=DEMO)
    broken = next(iter(sorted((roots["site-b"]).rglob("*_T1w.nii.gz"))))
    broken.write_bytes(broken.read_bytes()[:3000])  # a transfer that died halfway
    echo(
        f"   {sum(file_count(r) for r in roots.values())} files; {broken.name} truncated on purpose "
        f"({time.perf_counter() - started:.1f} s)"
    )
    echo("2. Importing each site as a dataset (every file goes through the object-event handler)")
    for name, root in roots.items():
        t0 = time.perf_counter()
        try:
            report = importing.import_dataset(
                root,
                dataset=name,
                storage=stack.storage,
                index=stack.index,
                bus=stack.bus,
                actor=actor,
            )
        except AlreadyExists:
            echo(f"   {name}: already imported in this home, kept as it is")
            continue
        echo(
            f"   {name}: {report.files} files -> {report.records} records, "
            f"{len(report.errors)} with errors ({time.perf_counter() - t0:.1f} s)"
        )
        for _, error in report.errors:
            echo(f"     {name}/{error}")
    echo("3. Example aBIDS queries across all datasets")
    for title, text in EXAMPLE_QUERIES:
        t0 = time.perf_counter()
        count = querying.count_records(text, index=stack.index, actor=actor)
        ms = (time.perf_counter() - t0) * 1000
        echo(f"   {count:4d} records  {title}\n          rollerblade query '{text}'  ({ms:.1f} ms)")
    target = workdir / "download"
    shutil.rmtree(target, ignore_errors=True)
    echo(f"4. Downloading '{DOWNLOAD_QUERY}' as BIDS to {target}")
    result = download.download_query(DOWNLOAD_QUERY, target, storage=stack.storage, index=stack.index, actor=actor)
    for dataset, files in result.datasets.items():
        echo(f"   {target / dataset}: {files} files (a valid BIDS dataset)")
    echo(f"Done in {time.perf_counter() - started:.1f} s. Store: {stack.settings.home}")
    echo(f"Try: rollerblade --home {stack.settings.home} query 'participant.sex=F AND suffix=bold' --json")
