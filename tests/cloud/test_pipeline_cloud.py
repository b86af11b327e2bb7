"""The whole event-driven chain in the cloud shape, on the emulators: a scan uploaded to
fake-gcs-server is indexed by ``index_object`` (which announces ``scan.indexed``), the
``rule_engine`` function plans jobs, ``job_events`` submits them (to this machine's Docker
engine until the GKE executor exists) and commits their ends, which re-enter the rules,
and the final derivatives land tagged in the Firestore emulator. Every hop is a Pub/Sub
push subscription to functions-framework, as in the deployment."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

from google.cloud import pubsub_v1

from rollerblade.adapters import gcs
from rollerblade.pipeline import analyses, automation, querying
from rollerblade.pipeline.messages import JOBS_TOPIC, QUEUE_TOPIC, RESULTS_TOPIC, SCANS_TOPIC
from rollerblade.settings import Settings
from rollerblade.stack import open_stack
from tests.cloud.test_cloud_e2e import deployment_env, serve_topic
from tests.conftest import ACTOR, ROOT, GcpStack, admins


def test_a_dropped_scan_runs_the_chain_and_lands_tagged_in_firestore(
    gcp: GcpStack, docker_engine: None, real_cohort: dict[str, Path], tmp_path: Path
) -> None:
    bucket, prefix, topics = f"pl-{uuid.uuid4().hex[:10]}", f"pl{uuid.uuid4().hex[:8]}_", f"p{uuid.uuid4().hex[:8]}-"
    storage = gcs.GcsStorage(bucket=bucket, project=gcp.project, emulator_host=gcp.storage_url)
    storage.ensure_bucket()
    env = deployment_env(gcp, bucket=bucket, prefix=prefix, home=tmp_path / "functions", topic_prefix=topics)
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    for topic in (SCANS_TOPIC, QUEUE_TOPIC, JOBS_TOPIC, RESULTS_TOPIC):  # as Terraform creates them
        publisher.create_topic(name=publisher.topic_path(gcp.project, topics + topic))
    routes = [
        (f"projects/{gcp.project}/topics/{gcp.notifications_topic}", "index_object"),
        (publisher.topic_path(gcp.project, topics + SCANS_TOPIC), "rule_engine"),
        (publisher.topic_path(gcp.project, topics + RESULTS_TOPIC), "rule_engine"),
        (publisher.topic_path(gcp.project, topics + QUEUE_TOPIC), "job_events"),
        (publisher.topic_path(gcp.project, topics + JOBS_TOPIC), "job_events"),
    ]
    functions, subscriptions = [], []
    # the CLI side: register the Analyses (images built in the local engine) and apply the rules
    cloud = open_stack(Settings.from_env(env, home=tmp_path / "cli"), environ=env)
    admins(cloud.access)
    try:
        for name in ("brain-mask", "tissue-volumes", "qc-snapshot"):
            analyses.register_analysis(
                ROOT / "analyses" / name, index=cloud.index, executor=cloud.executor, actor=ACTOR
            )
        automation.apply_rules(cloud.services, ROOT / "pipeline_rules", actor=ACTOR)
        for i, (topic, target) in enumerate(routes):
            name = f"push-{topics}{i}"
            functions.append(serve_topic(subscriber, gcp, topic=topic, target=target, env=env, name=name))
            subscriptions.append(subscriber.subscription_path(gcp.project, name))
        source = real_cohort["site-a"]
        subject = sorted(p.name for p in source.glob("sub-*"))[0]
        files = [source / "dataset_description.json", source / "participants.tsv"]
        files += sorted(p for p in (source / subject).rglob("*") if p.is_file())
        for path in files:  # a plain upload, as a scanner's export would do: 1 participant, 2 sessions
            storage.put_file(key=f"datasets/drop/{path.relative_to(source).as_posix()}", source=str(path))
        deadline = time.monotonic() + 420
        expected = {("brain-mask", "succeeded"): 2, ("tissue-volumes", "succeeded"): 2, ("qc-snapshot", "succeeded"): 2}
        while time.monotonic() < deadline:
            jobs = Counter((j.analysis, j.state) for j in cloud.index.jobs())
            final = querying.count_records("tag=final", index=cloud.index, actor=ACTOR)
            if jobs == expected and final == 4:
                break
            time.sleep(1.0)
        assert Counter((j.analysis, j.state) for j in cloud.index.jobs()) == expected
        count = lambda q: querying.count_records(q, index=cloud.index, actor=ACTOR)  # noqa: E731
        assert count("tag=final AND analysis=brain-mask AND suffix=mask") == 2
        assert count("tag=final AND analysis=tissue-volumes AND meta.GMVolumeML>100") == 2
        assert count("tag=display AND analysis=qc-snapshot AND extension=.png") == 2
        assert all(j.rule for j in cloud.index.jobs())  # every job was planned by a rule
    finally:
        for subscription in subscriptions:
            subscriber.delete_subscription(request={"subscription": subscription})
        for function in functions:
            function.stop()
        subscriber.close()
        publisher.transport.close()
        cloud.close()
