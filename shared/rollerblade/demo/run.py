"""``rollerblade demo``: build the cohort, import it, run example queries and a download.

Prints what it did and how long each step took. One scan is deliberately truncated to
show how a corrupt file is reported without stopping the import.

The demo writes ``WORKDIR/cohort`` and ``WORKDIR/download`` and puts a ``.rollerblade-demo``
marker file in each. A later run empties only folders that carry the marker (or are empty);
it refuses to start when either folder holds anything else, so a user's files are never
deleted (:func:`prepare_workdir`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from rollerblade.access.model import Principal
from rollerblade.demo import sources
from rollerblade.demo.cohort import DEMO, file_count, write_cohort
from rollerblade.errors import AlreadyExists, InputError, TemporaryError
from rollerblade.pipeline import usecases_data, usecases_work
from rollerblade.pipeline.worker import BucketWatcher, Worker
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
#: The file that marks a folder as made by the demo, so that a later run may empty it.
MARKER = ".rollerblade-demo"


def prepare_workdir(workdir: Path) -> tuple[Path, Path]:
    """Make ``workdir/cohort`` and ``workdir/download`` new, empty and marked as the demo's.

    A folder that exists is emptied only if it carries :data:`MARKER` (a previous demo
    made it) or is empty already. Both folders are checked before either is touched: if
    one is a file, a symbolic link, or a folder with content and no marker, this raises
    :class:`InputError` naming it and deletes nothing.
    """
    if workdir.exists() and not workdir.is_dir():
        raise InputError(f"{workdir} is not a folder; pass --workdir with a folder (new or existing)")
    folders = (workdir / "cohort", workdir / "download")
    for folder in folders:
        _check_demo_folder(folder)
    for folder in folders:
        _reset_demo_folder(folder)
    return folders


def _has_marker(folder: Path) -> bool:
    marker = folder / MARKER
    return marker.is_file() and not marker.is_symlink()


def _check_demo_folder(folder: Path) -> None:
    advice = "move it away, or pass --workdir with another folder"
    if folder.is_symlink():
        raise InputError(f"{folder} is a symbolic link; the demo writes only into folders it made itself: {advice}")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file and is in the way of the demo: {advice}")
    if folder.is_dir() and not _has_marker(folder) and any(folder.iterdir()):
        raise InputError(
            f"{folder} is not empty and was not made by the demo (it has no {MARKER} file); "
            f"the demo will not delete it: {advice}"
        )


def _reset_demo_folder(folder: Path) -> None:
    """Empty a checked folder (the marker goes last, so an interrupted run can still clear it) and mark it."""
    folder.mkdir(parents=True, exist_ok=True)
    for child in folder.iterdir():
        if child.name == MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    (folder / MARKER).write_text(
        "Made by `rollerblade demo`. The next demo run with this workdir empties this folder.\n"
    )


def run_demo(
    stack: Stack,
    *,
    principal: Principal,
    subjects: int,
    workdir: Path,
    echo: Callable[[str], None],
    analyses_dir: Path | None = None,
) -> None:
    started = time.perf_counter()
    cohort_dir, target = prepare_workdir(workdir)
    echo(f"1. Building a {subjects}-participant, 3-site cohort from real brain images in {cohort_dir}")
    roots = write_cohort(cohort_dir, subjects=subjects, modalities=DEMO)
    roots["colin27"] = colin27_dataset(cohort_dir / "colin27")
    broken = next(iter(sorted(roots["site-b"].rglob("*_T1w.nii.gz"))))
    broken.write_bytes(broken.read_bytes()[:3000])  # a transfer that died halfway
    echo(
        f"   {sum(file_count(r) for r in roots.values())} files; {broken.name} truncated on purpose "
        f"({time.perf_counter() - started:.1f} s)"
    )
    echo("2. Importing each site as a dataset (every file goes through the object-event handler)")
    for name, root in roots.items():
        t0 = time.perf_counter()
        try:
            report = usecases_data.import_dataset(stack.services, principal, root, name)
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
        count = usecases_data.count(stack.services, principal, text)
        ms = (time.perf_counter() - t0) * 1000
        echo(f"   {count:4d} records  {title}\n          rollerblade query '{text}'  ({ms:.1f} ms)")
    echo(f"4. Downloading '{DOWNLOAD_QUERY}' as BIDS to {target}")
    result = usecases_data.download(stack.services, principal, DOWNLOAD_QUERY, target)
    for dataset, files in result.datasets.items():
        echo(f"   {target / dataset}: {files} files (a valid BIDS dataset)")
    if analyses_dir is not None:
        run_analyses(stack, principal=principal, workdir=workdir, analyses_dir=analyses_dir, echo=echo)
        rules_dir = analyses_dir.parent / "pipeline_rules"
        if rules_dir.is_dir() and stack.settings.backend == "local":
            automate(stack, principal=principal, rules_dir=rules_dir, echo=echo)
    echo(f"Done in {time.perf_counter() - started:.1f} s. Store: {stack.settings.home}")
    echo(f"Try: rollerblade --home {stack.settings.home} query 'participant.sex=F AND suffix=bold' --json")
    home = stack.settings.home
    echo(
        f"The web page: rollerblade --home {home} serve --http 127.0.0.1:8080, then open {WEB_ADDRESS} and log in\n"
        f"     with a token from: rollerblade --home {home} token create --label web"
    )


#: Where ``rollerblade serve --http 127.0.0.1:8080`` serves the web page.
WEB_ADDRESS = "http://127.0.0.1:8080/"


def colin27_dataset(root: Path) -> Path:
    """One participant: the real Colin27 T1 with skull, whose brain-extracted twin is the
    ground truth the brain-mask Analysis is scored against."""
    anat = root / "sub-colin" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sources.colin27(), anat / "sub-colin_T1w.nii.gz")
    (anat / "sub-colin_T1w.json").write_text(json.dumps({"MagneticFieldStrength": 1.5, "Manufacturer": "Philips"}))
    (root / "dataset_description.json").write_text(json.dumps({"Name": "Colin27", "BIDSVersion": "1.10.0"}))
    (root / "participants.tsv").write_text("participant_id\tage\tsex\nsub-colin\t33\tM\n")
    (root / "README.md").write_text("# Colin27\n\nThe Colin27 single-subject T1 (Debian mricron-data).\n")
    return root


EXAMPLES = (
    ("brain-mask", ""),
    ("tissue-volumes", ""),
    ("mean-anat", ""),
    ("qc-snapshot", "suffix=T1w AND NOT exists(analysis) AND (dataset=site-c OR dataset=colin27)"),
)


def run_analyses(
    stack: Stack, *, principal: Principal, workdir: Path, analyses_dir: Path, echo: Callable[[str], None]
) -> None:
    """Register the example Analyses, run them over the cohort, score brain-mask on Colin27."""
    try:
        executor = stack.executor
    except TemporaryError as e:
        echo(f"5. Skipping the Analyses: {e}")
        return
    echo(f"5. Registering and running the example Analyses with the {executor.name} executor")
    for name, query in EXAMPLES:
        t0 = time.perf_counter()
        doc = usecases_work.register_analysis(stack.services, principal, analyses_dir / name)
        report = usecases_work.run_analysis(stack.services, principal, name, query, workdir=stack.settings.work_root)
        echo(
            f"   {name} ({doc['image_digest'][:19]}): {len(report.planned)} jobs, {len(report.succeeded)} ran, "
            f"{len(report.skipped)} already done, {len(report.failed)} failed ({time.perf_counter() - t0:.1f} s)"
        )
        for job in report.failed[:3]:
            echo(f"     failed {job.dataset}/{job.slice_id}: {job.message}")
    dice = colin27_dice(stack, principal=principal, workdir=workdir)
    if dice is not None:
        echo(f"   brain-mask on Colin27 vs its brain-extracted twin ch2bet: Dice = {dice:.3f}")
    for title, text in (
        ("brain masks of female participants", "analysis=brain-mask AND participant.sex=F"),
        ("grey matter volumes of participants over 60", "analysis=tissue-volumes AND participant.age>60"),
    ):
        count = usecases_data.count(stack.services, principal, text)
        echo(f"   {count:4d} records  {title}\n          rollerblade query '{text}'")


def automate(stack: Stack, *, principal: Principal, rules_dir: Path, echo: Callable[[str], None]) -> None:
    """Apply the pipeline rules, copy a new scan into the bucket folder and let the event
    loop (what ``rollerblade serve`` runs) take it from there: no ``run`` command."""
    try:
        services = stack.services
        _ = services.executor
    except TemporaryError as e:
        echo(f"6. Skipping the pipeline rules: {e}")
        return
    t0 = time.perf_counter()
    rules, _ = usecases_work.apply_rules(services, principal, rules_dir)
    echo(f"6. Automating with {len(rules)} pipeline rules ({rules_dir}): rollerblade rules apply {rules_dir}")
    drop = stack.settings.bucket_root / "datasets" / "dropzone"
    anat = drop / "sub-new" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    (drop / "dataset_description.json").write_text(json.dumps({"Name": "Drop zone", "BIDSVersion": "1.10.0"}))
    (drop / "participants.tsv").write_text("participant_id\tage\tsex\nsub-new\t41\tF\n")
    shutil.copyfile(sources.mni_t1(), anat / "sub-new_T1w.nii.gz")  # a plain copy, as a scanner's export
    echo(f"   copied a new T1w into the bucket folder: {anat / 'sub-new_T1w.nii.gz'}")
    worker = Worker(services, actor=Actor(principal.name), watcher=BucketWatcher(services))
    worker.start()
    settled = worker.run_until_idle(timeout=900)
    worker.shutdown()
    for job in sorted(usecases_work.list_jobs(services, principal), key=lambda j: j.started or ""):
        if job.dataset == "dropzone":
            echo(f"   {job.state:9s} {job.analysis:15s} {job.slice_id}  (rule {job.rule})")
    echo(f"   {'settled' if settled else 'still busy'} in {time.perf_counter() - t0:.1f} s; the files tagged final:")
    for record in usecases_data.find(services, principal, "dataset=dropzone AND tag=final"):
        echo(f"     {record.path}  tags {', '.join(record.meta.get('RollerbladeTags', []))}")
    echo("   The same loop runs as a service: rollerblade serve (then drop files under datasets/<name>/)")


def colin27_dice(stack: Stack, *, principal: Principal, workdir: Path) -> float | None:
    import nibabel as nib
    import numpy as np

    found = list(
        usecases_data.find(stack.services, principal, "dataset=colin27 AND analysis=brain-mask AND suffix=mask")
    )
    if not found:
        return None
    target = workdir / "colin27_mask.nii.gz"
    stack.storage.download(key=found[0].file["key"], destination=str(target))
    mask = np.asarray(nib.load(target).dataobj) > 0
    truth = np.asarray(nib.load(sources.colin27(brain_only=True)).dataobj) > 0
    return float(2 * (mask & truth).sum() / (mask.sum() + truth.sum()))
