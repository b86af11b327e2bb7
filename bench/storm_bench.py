"""An event storm: ~10,000 files dropped into the bucket folder at once, taken up by the
event loop that ``rollerblade serve`` runs (bucket watcher, indexing, rule evaluation).

Prints the progress over time (time for each half of the records, the longest stretch
without a new record: steady, no stall), the peak memory of the process against its memory before the
drop (bounded: the queue holds the backlog, not the process), and, as a baseline
measured in the same run, a batch ``reindex`` of the same files.

    python3 bench/storm_bench.py [--subjects 215]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rollerblade.demo.cohort import FULL, write_cohort
from rollerblade.pipeline import automation, reindex
from rollerblade.pipeline.messages import TOPICS
from rollerblade.pipeline.worker import BucketWatcher, Worker
from rollerblade.records import Actor
from rollerblade.settings import Settings
from rollerblade.stack import open_stack

ACTOR = Actor("bench")
RULES = """rules:
  - name: mask-every-t1w
    on: scan.indexed
    when: suffix=T1w AND extension=.nii.gz AND NOT exists(analysis) AND participant.age>200
    run: brain-mask
"""


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=215, help="participants (about 46 files each: 215 make 10,000)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rb-storm-"))
    try:
        roots = write_cohort(work / "cohort", subjects=args.subjects, modalities=FULL, images="tiny", seed=5)
        files = sum(1 for root in roots.values() for p in root.rglob("*") if p.is_file())
        stack = open_stack(Settings(home=work / "home", executor="process"))
        services = stack.services
        from rollerblade.pipeline.analyses import register_analysis

        root = Path(__file__).resolve().parents[1]
        register_analysis(root / "analyses" / "brain-mask", index=stack.index, executor=services.executor, actor=ACTOR)
        (work / "rules").mkdir()
        (work / "rules" / "rules.yaml").write_text(RULES)  # evaluated on every record, plans nothing (age > 200)
        automation.apply_rules(services, work / "rules", actor=ACTOR)
        worker = Worker(services, actor=ACTOR, watcher=BucketWatcher(services))
        worker.start()
        before = rss_mib()
        for name, source in roots.items():  # dropped at once, as plain copies
            shutil.copytree(source, stack.settings.bucket_root / "datasets" / name)
        t0 = time.perf_counter()
        marks: list[tuple[float, int]] = []
        while True:
            worker.step()
            done = sum(stack.index.dataset_stats(name=n)["records"] for n in roots) if stack.index.datasets() else 0
            marks.append((time.perf_counter() - t0, done))
            pending = sum(stack.bus.pending(topic=t) for t in TOPICS)  # type: ignore[attr-defined]
            if not pending and marks[-1][1] and (len(marks) > 2 and marks[-1][1] == marks[-3][1]):
                break
        storm = time.perf_counter() - t0
        records = marks[-1][1]
        peak = rss_mib()
        print(
            f"storm: {files} files dropped at once -> {records} records in {storm:.1f} s ({files / storm:.0f} files/s)"
        )
        progress = [m for i, m in enumerate(marks) if i == 0 or m[1] != marks[i - 1][1]]
        gap = max((b[0] - a[0] for a, b in zip(progress, progress[1:], strict=False)), default=0.0)
        half = next((t for t, n in marks if n >= records / 2), storm)
        print(f"first half of the records in {half:.1f} s, second half in {storm - half:.1f} s")
        steady = gap <= max(2.0, storm / 10)
        print(f"longest stretch without a new record: {gap:.2f} s -> steady progress: {'met' if steady else 'NOT met'}")
        print(f"peak RSS {peak:.0f} MiB (before the drop {before:.0f} MiB): +{peak - before:.0f} MiB for {files} files")
        t1 = time.perf_counter()
        for name in roots:
            reindex.reindex_dataset(name, storage=stack.storage, index=stack.index, actor=ACTOR)
        batch = time.perf_counter() - t1
        print(f"baseline: batch reindex of the same files {batch:.1f} s; storm / reindex = {storm / batch:.1f}x")
        stack.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
