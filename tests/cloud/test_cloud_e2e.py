"""The cloud data plane end to end on the real emulators: fake-gcs-server publishes bucket
notifications to the Pub/Sub emulator, a push subscription delivers them to
functions-framework serving functions/main.py:index_object, which indexes into the
Firestore emulator. The answers must equal the embedded default's for the same files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import pubsub_v1

from rollerblade.adapters import firestore_index, gcs
from rollerblade.pipeline import importing
from rollerblade.ports import Index
from rollerblade.query.parser import parse_query
from rollerblade.settings import Settings
from rollerblade.stack import open_stack
from tests import emulators
from tests.conftest import ACTOR, ROOT, GcpStack
from tests.query_corpus import CORPUS


def deployment_env(gcp: GcpStack, *, bucket: str, prefix: str, home: Path, **settings: str) -> dict[str, str]:
    """The environment of a deployment's functions (and of the CLI pointed at it) on the
    emulators; ``settings`` adds ``ROLLERBLADE_<NAME>`` variables."""
    return {
        "ROLLERBLADE_BACKEND": "gcp",
        "ROLLERBLADE_GCP_PROJECT": gcp.project,
        "ROLLERBLADE_BUCKET": bucket,
        "ROLLERBLADE_COLLECTION_PREFIX": prefix,
        "ROLLERBLADE_HOME": str(home),
        "FIRESTORE_EMULATOR_HOST": gcp.firestore_host,
        "STORAGE_EMULATOR_HOST": gcp.storage_url,
        "PUBSUB_EMULATOR_HOST": gcp.pubsub_host,
        "GOOGLE_CLOUD_PROJECT": gcp.project,
        **{f"ROLLERBLADE_{name.upper()}": value for name, value in settings.items()},
    }


def serve_topic(subscriber: Any, gcp: GcpStack, *, topic: str, target: str, env: dict[str, str], name: str) -> Any:
    """``functions/main.py:target`` in functions-framework behind a push subscription
    ``name`` on ``topic`` (a full topic path); returns the function's service."""
    function = emulators.functions(
        gcp.logdir, source=ROOT / "functions" / "main.py", target=target, signature="cloudevent", env=env
    )
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(gcp.project, name),
            "topic": topic,
            "ack_deadline_seconds": 10,
            "push_config": {"push_endpoint": f"http://127.0.0.1:{function.port}/{topic}"},
        }
    )
    return function


@pytest.fixture
def deployment(gcp: GcpStack, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A bucket, a collection prefix and index_object served by functions-framework behind a
    push subscription on the bucket's notification topic."""
    bucket, prefix = f"rb-{uuid.uuid4().hex[:10]}", f"e2e{uuid.uuid4().hex[:8]}_"
    gcs.GcsStorage(bucket=bucket, project=gcp.project, emulator_host=gcp.storage_url).ensure_bucket()
    env = deployment_env(gcp, bucket=bucket, prefix=prefix, home=tmp_path / "function-home")
    subscriber = pubsub_v1.SubscriberClient()
    subscription = subscriber.subscription_path(gcp.project, f"push-{prefix.rstrip('_')}")
    topic = f"projects/{gcp.project}/topics/{gcp.notifications_topic}"
    function = serve_topic(
        subscriber, gcp, topic=topic, target="index_object", env=env, name=f"push-{prefix.rstrip('_')}"
    )
    try:
        yield env
    finally:
        subscriber.delete_subscription(request={"subscription": subscription})
        subscriber.close()
        function.stop()


def wait_for(index: Index, query: str, count: int, timeout: float = 90) -> None:
    node = parse_query(query)  # fields may not exist yet while events are in flight
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if index.count(node=node) == count:
            return
        time.sleep(0.3)
    got = index.count(node=node)
    raise AssertionError(f"{query!r}: {got} records after {timeout} s, expected {count}")


def comparable(index: Index, dataset: str) -> list[dict[str, object]]:
    docs = []
    for record in index.records(dataset=dataset):
        doc = dict(record.to_doc())
        doc["file"] = {k: v for k, v in record.file.items() if k != "generation"}  # GCS and disk number differently
        docs.append(doc)
    return docs


def test_uploads_reach_firestore_through_the_function(
    deployment: dict[str, str], gcp: GcpStack, real_cohort: dict[str, Path], tmp_path: Path
) -> None:
    source = real_cohort["site-b"]
    # the embedded default indexes the same files
    local = open_stack(Settings(home=tmp_path / "local"))
    importing.import_dataset(
        source, dataset="site-b", storage=local.storage, index=local.index, bus=local.bus, actor=ACTOR
    )
    # a plain upload with google-cloud-storage, as a scanner's export would do
    cloud = gcs.GcsStorage(bucket=deployment["ROLLERBLADE_BUCKET"], project=gcp.project, emulator_host=gcp.storage_url)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        cloud.put_file(key=f"datasets/site-b/{path.relative_to(source).as_posix()}", source=str(path))
    index = firestore_index.FirestoreIndex(
        project=gcp.project, prefix=deployment["ROLLERBLADE_COLLECTION_PREFIX"], emulator=True
    )
    expected = local.index.dataset_stats(name="site-b")["records"]
    wait_for(index, "dataset=site-b", expected)
    deadline = time.monotonic() + 60  # late sidecars and tables refresh records: wait until they settle
    while comparable(index, "site-b") != comparable(local.index, "site-b") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert comparable(index, "site-b") == comparable(local.index, "site-b")
    for text in CORPUS:  # the same answers on both backends
        node = parse_query(text)
        assert [r.path for r in index.query(node=node)] == [r.path for r in local.index.query(node=node)], text
    # a deletion in the bucket removes the record
    cloud.delete(key="datasets/site-b/sub-002/ses-1/anat/sub-002_ses-1_T1w.nii.gz")
    wait_for(index, "dataset=site-b", expected - 1)
    local.close()


def test_cli_import_with_cloud_settings(
    deployment: dict[str, str], gcp: GcpStack, real_cohort: dict[str, Path], tmp_path: Path
) -> None:
    # The deployment's function indexes the uploads; the CLI waits for it, never indexes them too.
    env = {
        **os.environ,
        **deployment,
        "ROLLERBLADE_HOME": str(tmp_path / "cli-home"),
        "ROLLERBLADE_TOPIC_PREFIX": "rollerblade-",
    }
    cli = [sys.executable, "-m", "rollerblade.cli.main"]
    result = subprocess.run(
        [*cli, "import", str(real_cohort["site-c"]), "--dataset", "site-c"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "0 with errors" in result.stdout
    count = subprocess.run(
        [*cli, "query", "dataset=site-c AND suffix=T1w", "--count"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert count.stdout == "6\n", count.stderr
    line = subprocess.run(
        [*cli, "query", "sub=003 AND ses=1 AND suffix=T1w", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    record = json.loads(line)
    assert record["meta"]["Manufacturer"] == "Philips" and record["participant"]["participant_id"] == "sub-003"
    out = tmp_path / "download"
    downloaded = subprocess.run(
        [*cli, "download", "dataset=site-c AND ses=1", str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert downloaded.returncode == 0, downloaded.stderr
    assert (out / "site-c" / "dataset_description.json").is_file()
    assert len(list((out / "site-c").rglob("*_T1w.nii.gz"))) == 3


def test_cli_import_into_a_deployment_never_indexes_itself(
    gcp: GcpStack, real_cohort: dict[str, Path], tmp_path: Path
) -> None:
    """With no index_object function serving the bucket, an import into the deployment
    stores the files, indexes none of them itself, and says what it waited for."""
    bucket, prefix = f"nf-{uuid.uuid4().hex[:10]}", f"nf{uuid.uuid4().hex[:8]}_"
    gcs.GcsStorage(bucket=bucket, project=gcp.project, emulator_host=gcp.storage_url).ensure_bucket()
    env = {
        **os.environ,
        **deployment_env(
            gcp, bucket=bucket, prefix=prefix, home=tmp_path / "cli-home", topic_prefix="rollerblade-", import_wait="3"
        ),
    }
    result = subprocess.run(
        [sys.executable, "-m", "rollerblade.cli.main", "import", str(real_cohort["site-c"]), "--dataset", "site-c"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the deployment indexed 0 of 12 files of 'site-c' in 3 s; is its index_object function running?" in (
        result.stderr
    )
    index = firestore_index.FirestoreIndex(project=gcp.project, prefix=prefix, emulator=True)
    assert index.dataset_stats(name="site-c")["records"] == 0
    stored = gcs.GcsStorage(bucket=bucket, project=gcp.project, emulator_host=gcp.storage_url)
    assert len(list(stored.list(prefix="datasets/site-c/"))) == sum(
        1 for p in real_cohort["site-c"].rglob("*") if p.is_file()
    )


def test_duplicates_stale_events_and_bad_messages(
    deployment: dict[str, str], gcp: GcpStack, real_cohort: dict[str, Path]
) -> None:
    """Pub/Sub redelivers and reorders: duplicate, stale and malformed notifications sent
    through the real emulator leave the index equal to what the bucket holds."""
    bucket = deployment["ROLLERBLADE_BUCKET"]
    cloud = gcs.GcsStorage(bucket=bucket, project=gcp.project, emulator_host=gcp.storage_url)
    index = firestore_index.FirestoreIndex(
        project=gcp.project, prefix=deployment["ROLLERBLADE_COLLECTION_PREFIX"], emulator=True
    )
    source = real_cohort["site-c"]
    t1 = "sub-003/ses-1/anat/sub-003_ses-1_T1w.nii.gz"
    kept = cloud.put_file(key=f"datasets/site-c/{t1}", source=str(source / t1))
    gone = cloud.put_file(
        key="datasets/site-c/sub-003/ses-2/anat/sub-003_ses-2_T1w.nii.gz",
        source=str(source / "sub-003/ses-2/anat/sub-003_ses-2_T1w.nii.gz"),
    )
    wait_for(index, "dataset=site-c", 2)
    cloud.delete(key=gone.key)
    wait_for(index, "dataset=site-c", 1)
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(gcp.project, gcp.notifications_topic)

    def notify(kind: str, key: str, generation: int, data: bytes = b"{}") -> None:
        publisher.publish(
            topic,
            data,
            bucketId=bucket,
            objectId=key,
            eventType=kind,
            objectGeneration=str(generation),
            payloadFormat="JSON_API_V1",
        ).result(timeout=30)

    notify("OBJECT_FINALIZE", gone.key, gone.generation)  # stale: the object was deleted since
    notify("OBJECT_DELETE", kept.key, kept.generation - 1)  # stale: an older generation's deletion
    notify("OBJECT_FINALIZE", kept.key, kept.generation)  # duplicate
    notify("OBJECT_FINALIZE", "datasets/site-c/sub-003/anat/sub-003_T1.nii.gz", 1)  # object never existed
    notify("WHATEVER", kept.key, 1)  # malformed: acknowledged, not retried forever
    publisher.publish(topic, b"not json", bucketId=bucket).result(timeout=30)
    # a sidecar arriving last still updates the record that was indexed before it
    cloud.put_bytes(key="datasets/site-c/T1w.json", data=b'{"MagneticFieldStrength": 3, "Manufacturer": "Philips"}')
    wait_for(index, "dataset=site-c AND meta.Manufacturer=Philips", 1)
    time.sleep(2)  # let every redelivery settle
    assert [r.path for r in index.records(dataset="site-c")] == [t1]
    record = index.get_record(dataset="site-c", path=t1)
    assert record is not None and record.file["generation"] == kept.generation and record.error is None
    publisher.transport.close()


def test_a_large_rerun_fans_out_through_pubsub(gcp: GcpStack, real_cohort: dict[str, Path], tmp_path: Path) -> None:
    """The rerun function, behind a push subscription on the reruns topic, splits a large
    selection into batch messages on that same topic and handles each delivery."""
    from rollerblade.pipeline import reindex

    bucket, prefix, topics = f"rr-{uuid.uuid4().hex[:10]}", f"rr{uuid.uuid4().hex[:8]}_", f"t{uuid.uuid4().hex[:8]}-"
    storage = gcs.GcsStorage(bucket=bucket, project=gcp.project, emulator_host=gcp.storage_url)
    storage.ensure_bucket()
    source = real_cohort["site-b"]
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        storage.put_file(key=f"datasets/site-b/{path.relative_to(source).as_posix()}", source=str(path))
    index = firestore_index.FirestoreIndex(project=gcp.project, prefix=prefix, emulator=True)
    reindex.reindex_dataset("site-b", storage=storage, index=index, actor=ACTOR)
    records = [r for r in index.records(dataset="site-b")]
    for record in records[:3]:
        storage.delete(key=str(record.file["key"]))  # behind the index's back: no function indexes this bucket
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(gcp.project, f"{topics}reruns")
    publisher.create_topic(name=topic)  # as Terraform does; the function creates nothing
    env = deployment_env(
        gcp, bucket=bucket, prefix=prefix, home=tmp_path / "function-home", topic_prefix=topics, rerun_batch="4"
    )
    subscription = subscriber.subscription_path(gcp.project, f"push-{topics}reruns")
    function = serve_topic(subscriber, gcp, topic=topic, target="rerun", env=env, name=f"push-{topics}reruns")
    observer = subscriber.subscription_path(gcp.project, f"observe-{topics}reruns")
    subscriber.create_subscription(request={"name": observer, "topic": topic})
    try:
        publisher.publish(topic, json.dumps({"query": "dataset=site-b"}).encode()).result(timeout=30)
        wait_for(index, "dataset=site-b", len(records) - 3)
        seen = subscriber.pull(request={"subscription": observer, "max_messages": 100}, timeout=10).received_messages
        batches = [json.loads(m.message.data) for m in seen if b"keys" in m.message.data]
        assert len(batches) == -(-len(records) // 4) and all(len(b["keys"]) <= 4 for b in batches)
        assert sorted(k for b in batches for k in b["keys"]) == sorted(str(r.file["key"]) for r in records)
        subscriptions = set(publisher.list_topic_subscriptions(request={"topic": topic}))
        assert subscriptions == {subscription, observer}  # nothing provisioned by the function
    finally:
        for name in (subscription, observer):
            subscriber.delete_subscription(request={"subscription": name})
        subscriber.close()
        publisher.transport.close()
        function.stop()
