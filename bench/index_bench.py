"""Index and query benchmark: Rollerblade against pybids and bids2table on the same tree.

Generates one realistic BIDS dataset (``--subjects`` x 2 sessions with anat, func with
events, dwi and fmap; sidecars at dataset, subject and file level; participants.tsv;
sessions.tsv; tiny NIfTI files with real headers) and, in the same run:

* full index with metadata (each tool in a fresh subprocess: wall time and peak RSS);
* five queries, median of ``--repeats`` runs each, results materialised;
* Rollerblade only: re-index after one added scan, one changed top-level sidecar and one
  changed participants row; the index's size against the dataset's text files;
  ``rollerblade import`` (copy plus every file through the object events) against reindex;
* the issue's targets, each printed as met or not met with its figure.

Prints a table with ratios. ~500 subjects give ~25k files, ~2,500 give ~128k.
Usage: python bench/index_bench.py --subjects 500 [--skip pybids]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUERIES = {
    # name: (aBIDS query, pybids get() kwargs, pandas filter over bids2table + metadata)
    "T1w 3T aged 60-70": (
        "suffix=T1w AND meta.MagneticFieldStrength=3 AND participant.age>=60 AND participant.age<=70",
        {"suffix": "T1w", "MagneticFieldStrength": 3.0, "extension": ".nii.gz"},
        "(df.suffix == 'T1w') & (df.meta_MagneticFieldStrength == 3) & (df.ext == '.nii.gz')"
        " & (df.p_age >= 60) & (df.p_age <= 70)",
    ),
    "rest, TR 2.0": (
        "task=rest AND meta.RepetitionTime=2.0 AND extension=.nii.gz",
        {"task": "rest", "RepetitionTime": 2.0, "extension": ".nii.gz"},
        "(df.task == 'rest') & (df.meta_RepetitionTime == 2.0) & (df.ext == '.nii.gz')",
    ),
    "sub IN (001, 002)": (
        "sub IN (001, 002)",
        {"subject": ["001", "002"]},
        "df['sub'].isin(['001', '002'])",
    ),
    "rest with overridden TE": (  # a subject-level sidecar overrides EchoTime (inheritance)
        "task=rest AND extension=.nii.gz AND NOT meta.EchoTime=0.03",
        {"task": "rest", "extension": ".nii.gz", "EchoTime": 0.035},
        "(df.task == 'rest') & (df.ext == '.nii.gz') & (df.meta_EchoTime != 0.03)",
    ),
    "fmap dir-AP": (
        "datatype=fmap AND dir=AP",
        {"datatype": "fmap", "direction": "AP"},
        "(df.datatype == 'fmap') & (df['dir'] == 'AP')",
    ),
}


def _sqlite_bytes(path: Path) -> int:
    """The bytes an SQLite database uses (its pages, once the WAL is checkpointed)."""
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pragmas = ("page_count", "freelist_count", "page_size")
        pages, free, size = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in pragmas)
    return int((pages - free) * size)


def median_ms(fn: Any, repeats: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), n


# -- workers (each runs in its own process) ------------------------------------------------
def work_rollerblade(root: Path, repeats: int) -> dict[str, Any]:
    from rollerblade.adapters import local_dir, sqlite_index
    from rollerblade.pipeline import querying, reindex
    from rollerblade.pipeline.indexing import index_object
    from rollerblade.records import Actor, ObjectEvent

    bucket = root.parent.parent  # root is BUCKET/datasets/bench
    storage = local_dir.LocalDirStorage(bucket)
    index_path = Path(tempfile.mkdtemp()) / "index.sqlite"
    index = sqlite_index.SqliteIndex(index_path)
    t0 = time.perf_counter()
    report = reindex.reindex_dataset(
        "bench", storage=storage, index=index, actor=Actor("bench"), workers=int(os.environ.get("BENCH_WORKERS", "4"))
    )
    out: dict[str, Any] = {"index_s": time.perf_counter() - t0, "records": report.records}
    out["index_mb"] = _sqlite_bytes(index_path) / 2**20
    out["text_mb"] = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".nii" not in p.name) / 2**20
    out["queries"] = {
        name: median_ms(lambda q=q: len(list(querying.find_records(q, index=index, actor=Actor("b")))), repeats)
        for name, (q, _, _) in QUERIES.items()
    }
    out["queries"]["10k-record result"] = median_ms(
        lambda: len(list(querying.find_records("", index=index, actor=Actor("b"), limit=10_000))), 3
    )
    # one added scan
    t1 = next(root.glob("sub-*/ses-1/anat/*_T1w.nii.gz"))
    key = "datasets/bench/" + t1.relative_to(root).as_posix().replace("_T1w", "_acq-new_T1w")
    t0 = time.perf_counter()
    info = storage.put_file(key=key, source=str(t1))
    index_object(ObjectEvent("created", key, info.generation), storage=storage, index=index, actor=Actor("b"))
    out["add_scan_ms"] = (time.perf_counter() - t0) * 1000
    # one changed top-level sidecar (every T1w record inherits it)
    original = (root / "T1w.json").read_bytes()
    sidecar = json.loads(original)
    sidecar["FlipAngle"] = 8
    t0 = time.perf_counter()
    info = storage.put_bytes(key="datasets/bench/T1w.json", data=json.dumps(sidecar).encode())
    outcome = index_object(
        ObjectEvent("created", info.key, info.generation), storage=storage, index=index, actor=Actor("b")
    )
    out["sidecar_ms"] = (time.perf_counter() - t0) * 1000
    out["sidecar_records"] = outcome.refreshed
    # one changed participants row (an age corrected)
    table = (root / "participants.tsv").read_bytes()
    lines = table.decode().split("\n")
    first = lines[1].split("\t")
    first[lines[0].split("\t").index("age")] = "99"
    changed = "\n".join([lines[0], "\t".join(first), *lines[2:]]).encode()
    t0 = time.perf_counter()
    info = storage.put_bytes(key="datasets/bench/participants.tsv", data=changed)
    index_object(ObjectEvent("created", info.key, info.generation), storage=storage, index=index, actor=Actor("b"))
    out["participant_ms"] = (time.perf_counter() - t0) * 1000
    storage.put_bytes(key="datasets/bench/participants.tsv", data=table)
    # the tree is shared with the other tools: put it back as it was
    storage.delete(key=key)
    storage.put_bytes(key="datasets/bench/T1w.json", data=original)
    return out


def work_import(root: Path, repeats: int) -> dict[str, Any]:
    """``rollerblade import``: every file copied into a new store and indexed through the
    object events (the path a dataset dropped into the bucket takes)."""
    from rollerblade.adapters import local_bus, local_dir, sqlite_index
    from rollerblade.pipeline import importing
    from rollerblade.records import Actor

    work = Path(tempfile.mkdtemp())
    storage = local_dir.LocalDirStorage(work / "bucket")
    index = sqlite_index.SqliteIndex(work / "index.sqlite")
    bus = local_bus.LocalBus(work / "events.sqlite")
    t0 = time.perf_counter()
    report = importing.import_dataset(root, dataset="bench", storage=storage, index=index, bus=bus, actor=Actor("b"))
    out = {"index_s": time.perf_counter() - t0, "records": report.records, "queries": {}}
    shutil.rmtree(work)
    return out


def work_pybids(root: Path, repeats: int) -> dict[str, Any]:
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer

    t0 = time.perf_counter()
    layout = BIDSLayout(root, validate=False, indexer=BIDSLayoutIndexer(validate=False, index_metadata=True))
    out: dict[str, Any] = {"index_s": time.perf_counter() - t0, "records": len(layout.get())}
    queries = {}
    for name, (_, kwargs, _) in QUERIES.items():
        queries[name] = median_ms(lambda kw=kwargs: len(layout.get(**kw)), repeats)
    out["queries"] = queries
    return out


def work_bids2table(root: Path, repeats: int) -> dict[str, Any]:
    import bids2table as b2t
    import pandas as pd

    t0 = time.perf_counter()
    table = b2t.index_dataset(root)
    meta = [
        b2t.load_bids_metadata(os.path.join(r, p))
        for r, p in zip(table["root"].to_pylist(), table["path"].to_pylist(), strict=True)
    ]
    df = table.to_pandas()
    df = pd.concat([df, pd.DataFrame.from_records(meta, index=df.index).add_prefix("meta_")], axis=1)
    # participants are not indexed by bids2table: join participants.tsv by hand, as its users do
    people = pd.read_csv(root / "participants.tsv", sep="\t", na_values="n/a")
    people["sub"] = people.participant_id.str[4:]
    df = df.merge(people.add_prefix("p_").rename(columns={"p_sub": "sub"}), on="sub", how="left")
    out: dict[str, Any] = {"index_s": time.perf_counter() - t0, "records": len(df)}
    out["queries"] = {
        name: median_ms(lambda expr=expr: len(df[eval(expr, {"df": df})]), repeats)  # noqa: S307
        for name, (_, _, expr) in QUERIES.items()
    }
    return out


WORKERS = {
    "rollerblade": work_rollerblade,
    "import": work_import,
    "pybids": work_pybids,
    "bids2table": work_bids2table,
}


def run_worker(tool: str, root: Path, repeats: int) -> dict[str, Any]:
    """Run one tool in a fresh process; its peak RSS is the largest sum over the process and
    all its children (forked index workers included), sampled every 20 ms. The sum counts
    the pages forked workers share with their parent once per process; the peak PSS
    (proportional set size, sampled every 200 ms: reading it costs more) counts them once."""
    import psutil

    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", tool, "--root", str(root), "--repeats", str(repeats)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = peak_pss = 0
    parent = psutil.Process(proc.pid)
    samples = 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            if samples % 10 == 0:
                peak_pss = max(peak_pss, sum(p.memory_full_info().pss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        samples += 1
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{stderr[-3000:]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = max(result["peak_rss_mb"], peak / 2**20)
    result["peak_pss_mb"] = peak_pss / 2**20
    return result


def generate(workdir: Path, subjects: int) -> Path:
    import numpy as np

    from rollerblade.demo.cohort import FULL, SITES, make_participants, write_dataset

    root = workdir / "bucket" / "datasets" / "bench"
    if root.exists():
        shutil.rmtree(root)
    people = make_participants(subjects, np.random.default_rng(0))
    write_dataset(root, SITES[0], people, sessions=2, modalities=FULL, images="tiny")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip", action="append", default=[], choices=sorted(WORKERS))
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = WORKERS[args.worker](args.root, args.repeats)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rollerblade-bench-"))
    t0 = time.perf_counter()
    root = generate(workdir, args.subjects)
    files = sum(len(f) for _, _, f in os.walk(root))
    print(
        f"tree: {root} — {args.subjects} subjects x 2 sessions, {files} files "
        f"(generated in {time.perf_counter() - t0:.1f} s)\n"
    )
    results = {}
    for tool in WORKERS:
        if tool not in args.skip:
            print(f"running {tool} ...", file=sys.stderr)
            results[tool] = run_worker(tool, root, args.repeats)
    report(results)


def report(results: dict[str, dict[str, Any]]) -> None:
    ours = results["rollerblade"]
    others = [t for t in results if t not in ("rollerblade", "import")]
    header = f"{'':32}{'rollerblade':>14}" + "".join(f"{t:>14}{'ratio':>8}" for t in others)
    print(header)

    def row(label: str, get: Any, fmt: str) -> None:
        line = f"{label:32}{format(get(ours), fmt):>14}"
        for tool in others:
            try:
                value = get(results[tool])
            except KeyError:
                line += f"{'-':>14}{'':>8}"
                continue
            ratio = value / get(ours) if get(ours) else float("nan")
            line += f"{format(value, fmt):>14}{ratio:>7.1f}x"
        print(line)

    row("full index (s)", lambda r: r["index_s"], ".2f")
    row("peak RSS, all processes (MB)", lambda r: r["peak_rss_mb"], ".0f")
    row("peak PSS, all processes (MB)", lambda r: r["peak_pss_mb"], ".0f")
    for name in [*QUERIES, "10k-record result"]:
        row(f"query {name} (ms)", lambda r, n=name: r["queries"][n][0], ".2f")
    print("\nrecords:", {t: r["records"] for t, r in results.items()})
    print("query hits:", {t: {n: h for n, (_, h) in r["queries"].items()} for t, r in results.items()})
    print(
        f"\nrollerblade incremental: one added scan {ours['add_scan_ms']:.1f} ms; one changed top-level "
        f"sidecar {ours['sidecar_ms']:.1f} ms ({ours['sidecar_records']} records refreshed); one changed "
        f"participants row {ours['participant_ms']:.1f} ms"
    )
    print(f"rollerblade index: {ours['index_mb']:.1f} MB for {ours['text_mb']:.1f} MB of text files in the dataset")
    if "import" in results:
        imp = results["import"]
        print(
            f"rollerblade import (copy + every file through the object events): {imp['index_s']:.2f} s, "
            f"peak RSS {imp['peak_rss_mb']:.0f} MB; reindex of the same tree {ours['index_s']:.2f} s"
        )
    print("ratio = other tool / rollerblade (above 1: rollerblade is faster or smaller).")
    print(
        "Notes: pybids and bids2table cannot filter on participant age; their first query filters on suffix\n"
        "and field strength only (pybids) or on a participants.tsv join made by hand (bids2table)."
    )
    print("\nTargets (issue 7):")
    for label, met, figure in targets(results):
        print(f"  [{'met' if met else 'NOT met'}] {label}: {figure}")


def targets(results: dict[str, dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """(target, met?, measured figure) for each target that this run measured."""
    ours = results["rollerblade"]
    out: list[tuple[str, bool, str]] = []
    if "import" in results:
        ratio = results["import"]["index_s"] / ours["index_s"]
        out.append(("import within 2x of reindex", ratio <= 2, f"{ratio:.1f}x"))
    if "pybids" in results:
        speed = results["pybids"]["index_s"] / ours["index_s"]
        out.append(("full index >= 25x faster than pybids", speed >= 25, f"{speed:.1f}x"))
        rss = ours["peak_rss_mb"] / results["pybids"]["peak_rss_mb"]
        out.append(("peak RSS <= 1/10 of pybids", rss <= 0.1, f"{rss:.2f} of pybids"))
    if "bids2table" in results:
        b2t = results["bids2table"]
        speed = b2t["index_s"] / ours["index_s"]
        out.append(("full index >= 1.5x faster than bids2table with metadata", speed >= 1.5, f"{speed:.1f}x"))
        for name in QUERIES:
            mine, theirs = ours["queries"][name][0], b2t["queries"][name][0]
            out.append((f"query '{name}' median <= bids2table's", mine <= theirs, f"{mine:.1f} vs {theirs:.1f} ms"))
    out.append(("one added scan <= 20 ms", ours["add_scan_ms"] <= 20, f"{ours['add_scan_ms']:.1f} ms"))
    out.append(("one changed top-level sidecar <= 50 ms", ours["sidecar_ms"] <= 50, f"{ours['sidecar_ms']:.1f} ms"))
    row_ms = ours["participant_ms"]
    out.append(("one changed participants row <= 50 ms", row_ms <= 50, f"{row_ms:.1f} ms"))
    size = ours["index_mb"] / ours["text_mb"]
    out.append(("index size <= 2x the dataset's text files", size <= 2, f"{size:.1f}x"))
    return out


if __name__ == "__main__":
    main()
