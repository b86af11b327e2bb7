"""Cloud path benchmark on the local emulators (Firestore, Pub/Sub, fake-gcs-server).

In one run, on the same generated dataset:
* indexing throughput: batch index of the dataset from fake-gcs into Firestore (writes
  batched by 500) against the same from a local directory into SQLite (files/s, and
  Firestore documents/s);
* upload -> indexed latency of single drops through the whole chain (fake-gcs
  notification -> Pub/Sub push -> functions-framework index_object -> Firestore):
  median and p95;
* query latency on both backends for the same queries (median of repeats).

Usage: python bench/cloud_bench.py [--subjects 500] [--drops 40] [--repeats 9]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = (
    "suffix=T1w AND meta.MagneticFieldStrength=3 AND participant.age>=60 AND participant.age<=70",
    "task=rest AND meta.RepetitionTime=2.0",
    "sub IN (001, 002)",
    "datatype=fmap AND dir=AP",
    "suffix=bold AND NOT exists(meta.SliceTiming)",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=500)
    parser.add_argument("--drops", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    import os

    import numpy as np
    from google.cloud import pubsub_v1
    from tests import emulators

    from rollerblade.adapters import firestore_index, gcs, local_dir, sqlite_index
    from rollerblade.demo.cohort import FULL, SITES, make_participants, write_dataset
    from rollerblade.pipeline import reindex
    from rollerblade.query.parser import parse_query
    from rollerblade.records import Actor

    work = Path(tempfile.mkdtemp(prefix="rollerblade-cloud-bench-"))
    services: list[emulators.Service] = []
    actor = Actor("bench")
    try:
        services.append(emulators.pubsub(work))
        services.append(emulators.firestore(work))
        os.environ.update(
            PUBSUB_EMULATOR_HOST=services[0].host,
            FIRESTORE_EMULATOR_HOST=services[1].host,
            GOOGLE_CLOUD_PROJECT=emulators.PROJECT,
        )
        publisher = pubsub_v1.PublisherClient()
        topic = publisher.topic_path(emulators.PROJECT, "bench-notifications")
        publisher.create_topic(name=topic)
        services.append(emulators.fake_gcs(work, pubsub_host=services[0].host, topic="bench-notifications"))
        storage_url = f"http://{services[2].host}"
        os.environ["STORAGE_EMULATOR_HOST"] = storage_url

        root = work / "bucket" / "datasets" / "bench"
        write_dataset(
            root,
            SITES[0],
            make_participants(args.subjects, np.random.default_rng(0)),
            sessions=2,
            modalities=FULL,
            images="tiny",
        )
        files = sorted(p for p in root.rglob("*") if p.is_file())
        print(f"dataset: {args.subjects} subjects x 2 sessions, {len(files)} files")

        # SQLite from the local directory
        local = local_dir.LocalDirStorage(work / "bucket")
        lite = sqlite_index.SqliteIndex(work / "index.sqlite")
        t0 = time.perf_counter()
        report = reindex.reindex_dataset("bench", storage=local, index=lite, actor=actor)
        sqlite_s = time.perf_counter() - t0

        # Firestore from the bucket (upload first, not timed as indexing)
        bucket = gcs.GcsStorage(bucket="bench-abids", project=emulators.PROJECT, emulator_host=storage_url)
        bucket.ensure_bucket()
        t0 = time.perf_counter()
        for path in files:
            bucket.put_file(key=f"datasets/bench/{path.relative_to(root).as_posix()}", source=str(path))
        upload_s = time.perf_counter() - t0
        store = firestore_index.FirestoreIndex(project=emulators.PROJECT, prefix="bench_", emulator=True)
        t0 = time.perf_counter()
        reindex.reindex_dataset("bench", storage=bucket, index=store, actor=actor, workers=8)
        firestore_s = time.perf_counter() - t0
        records = report.records
        print(f"upload of {len(files)} files to fake-gcs: {upload_s:.1f} s ({len(files) / upload_s:.0f} files/s)")
        print(f"batch index  SQLite    <- local dir: {sqlite_s:6.1f} s  {len(files) / sqlite_s:7.0f} files/s")
        print(
            f"batch index  Firestore <- fake-gcs : {firestore_s:6.1f} s  {len(files) / firestore_s:7.0f} files/s "
            f"({records + report.metadata} documents, {(records + report.metadata) / firestore_s:.0f} docs/s "
            f"including reads from the bucket)"
        )
        rows = [[r for r in lite.records(dataset="bench")]][0]
        t0 = time.perf_counter()
        store.put_records(records=rows)
        write_s = time.perf_counter() - t0
        print(
            f"Firestore batched writes alone: {len(rows)} records in {write_s:.1f} s = {len(rows) / write_s:.0f} docs/s"
        )

        # queries on both
        print(f"\n{'query':70}{'SQLite ms':>10}{'Firestore ms':>14}{'hits':>7}")
        for text in QUERIES:
            node = parse_query(text)
            times = {}
            for name, index in (("sqlite", lite), ("firestore", store)):
                samples = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    hits = len(list(index.query(node=node)))
                    samples.append((time.perf_counter() - t0) * 1000)
                times[name] = statistics.median(samples)
            print(f"{text[:69]:70}{times['sqlite']:10.1f}{times['firestore']:14.1f}{hits:7d}")

        # single drops through the whole chain
        prefix = f"drop{uuid.uuid4().hex[:6]}_"
        env = {
            "ROLLERBLADE_BACKEND": "gcp",
            "ROLLERBLADE_GCP_PROJECT": emulators.PROJECT,
            "ROLLERBLADE_BUCKET": "bench-abids",
            "ROLLERBLADE_COLLECTION_PREFIX": prefix,
            "ROLLERBLADE_HOME": str(work / "fn"),
            "FIRESTORE_EMULATOR_HOST": services[1].host,
            "STORAGE_EMULATOR_HOST": storage_url,
            "PUBSUB_EMULATOR_HOST": services[0].host,
        }
        function = emulators.functions(
            work, source=ROOT / "functions" / "main.py", target="index_object", signature="cloudevent", env=env
        )
        services.append(function)
        subscriber = pubsub_v1.SubscriberClient()
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(emulators.PROJECT, "bench-push"),
                "topic": topic,
                "push_config": {"push_endpoint": f"http://127.0.0.1:{function.port}/{topic}"},
            }
        )
        drops = firestore_index.FirestoreIndex(project=emulators.PROJECT, prefix=prefix, emulator=True)
        latencies = []
        t1 = next(p for p in files if p.name.endswith("_T1w.nii.gz"))
        for i in range(args.drops):
            path = f"sub-999/ses-1/anat/sub-999_ses-1_acq-drop{i}_T1w.nii.gz"
            t0 = time.perf_counter()
            bucket.put_file(key=f"datasets/bench/{path}", source=str(t1))
            while drops.get_record(dataset="bench", path=path) is None:
                if time.perf_counter() - t0 > 30:
                    raise SystemExit(f"drop {i} not indexed after 30 s")
                time.sleep(0.005)
            latencies.append((time.perf_counter() - t0) * 1000)
        latencies.sort()
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(
            f"\nupload -> indexed (fake-gcs -> Pub/Sub push -> index_object -> Firestore), {args.drops} drops: "
            f"median {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms"
        )
        subscriber.close()
    finally:
        for service in reversed(services):
            service.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
