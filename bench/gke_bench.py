"""The gke executor against a real Kubernetes API server, Job controller and kubelet
(tests/kube.py; pods run on the local Docker engine):

1. submission throughput: Jobs created per second through ``GkeExecutor.submit`` (each
   also writes its slice list to the bucket), with pods that cannot be scheduled so the
   node's work does not weigh on the API server; baseline in the same run: bare
   ``create_namespaced_job`` calls of the same manifests;
2. watcher latency: from the moment an independent watch sees a Job's ``Complete``
   condition to the moment :class:`JobWatcher` has published its ``job.ended``, median and p95;
3. throttling: ``--jobs`` jobs queued through the real dispatcher with ``--in-flight`` as
   the deployment's limit; prints the most and the mean jobs in flight, and checks that
   every job ran exactly once (one Job per key, none lost, none duplicated).

    python3 bench/gke_bench.py [--jobs 200] [--in-flight 20] [--submit 100] [--latency 20]

The defaults fit this 2-core machine in a few minutes; the issue's 1,000 jobs with 50 in
flight is ``--jobs 1000 --in-flight 50`` (real pods: each runs three containers).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client, config, watch  # noqa: E402
from tests import kube  # noqa: E402

from rollerblade.adapters.gke_exec import GkeExecutor, JobWatcher  # noqa: E402
from rollerblade.adapters.gke_manifest import job_manifest, pod_size  # noqa: E402
from rollerblade.demo.cohort import write_cohort  # noqa: E402
from rollerblade.pipeline import analyses, dispatch, jobflow  # noqa: E402
from rollerblade.pipeline.messages import JOBS_TOPIC, QUEUE_TOPIC, RESULTS_TOPIC, SCANS_TOPIC  # noqa: E402
from rollerblade.pipeline.reindex import reindex_dataset  # noqa: E402
from rollerblade.ports import JobSpec  # noqa: E402
from rollerblade.records import Actor  # noqa: E402
from rollerblade.settings import Settings  # noqa: E402
from rollerblade.stack import make_gke_executor, open_stack  # noqa: E402

ACTOR = Actor("bench")
TOOLBOX = ROOT / "tests" / "analyses" / "toolbox"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spec_of(key: str, image: str, **changes: object) -> JobSpec:
    job = {"slice": "sub-01", "params": {"mode": "ok"}, "outputs": ["out/result.json"], "records": [{"path": "x"}]}
    values: dict[str, object] = dict(
        job_key=key, attempt=1, image=image, command=("python3", "tool.py"), inputs={},
        files={".rollerblade/slice.json": json.dumps(job).encode()}, output_prefix=f"jobs/{key}/1/output/",
        log_key=f"logs/bench/{key}.log",
        env={"ROLLERBLADE_OUTPUT": "/output", "ROLLERBLADE_INPUT": "/input",
             "ROLLERBLADE_SLICE_FILE": "/input/.rollerblade/slice.json"},
        cpu=0.25, memory=512 << 20, timeout=120.0, labels={"analysis": "bench", "dataset": "bench"},
    )  # fmt: skip
    values.update(changes)
    return JobSpec(**values)  # type: ignore[arg-type]


def wait_gone(executor: GkeExecutor) -> None:
    for job in executor._list():
        executor._delete(job.metadata.name)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        pods = executor.core.list_namespaced_pod(namespace=executor.cluster.namespace).items
        if not executor._list() and not pods:
            return
        time.sleep(1)


def submission(executor: GkeExecutor, image: str, count: int) -> None:
    # A GPU node selector that no node matches: the pods stay Pending, the node stays idle.
    specs = [spec_of(f"submit-{i:05d}", image, gpu=1, accelerator="nvidia-l4") for i in range(count)]
    start = time.perf_counter()
    for spec in specs:
        executor.submit(spec=spec)
    ours = time.perf_counter() - start
    wait_gone(executor)
    manifests = [job_manifest(s, executor.cluster, pod_size(s)) for s in specs]
    for m in manifests:
        m["metadata"]["name"] += "-raw"
    start = time.perf_counter()
    for m in manifests:
        executor.batch.create_namespaced_job(namespace=executor.cluster.namespace, body=m)
    raw = time.perf_counter() - start
    wait_gone(executor)
    print(f"1. submission: {count / ours:.1f} Jobs/s through GkeExecutor.submit (slice list + Job), "
          f"{count / raw:.1f} Jobs/s bare create_namespaced_job: ratio {raw / ours:.2f}")  # fmt: skip


def latency(executor: GkeExecutor, image: str, count: int) -> None:
    completed: dict[str, float] = {}
    published: dict[str, float] = {}
    stop = threading.Event()

    def observe() -> None:  # an independent watch: when the API first shows Complete
        while not stop.is_set():
            stream = watch.Watch()
            for event in stream.stream(
                executor.batch.list_namespaced_job, namespace=executor.cluster.namespace, timeout_seconds=5
            ):
                job = event["object"]
                conditions = job.status.conditions or ()
                if any(c.type == "Complete" and c.status == "True" for c in conditions):
                    completed.setdefault(job.metadata.annotations.get("rollerblade.dev/job-key", ""), time.monotonic())

    def publish(ends: list[object]) -> None:
        for end in ends:
            published.setdefault(end.key, time.monotonic())  # type: ignore[attr-defined]

    watcher = JobWatcher(executor, publish, watch_seconds=30, sweep_every=3600)
    threads = [threading.Thread(target=observe, daemon=True), threading.Thread(target=watcher.run, daemon=True)]
    for t in threads:
        t.start()
    time.sleep(1)
    keys = [f"latency-{i:04d}" for i in range(count)]
    for key in keys:
        executor.submit(spec=spec_of(key, image))
    deadline = time.monotonic() + 600
    while len(published) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    watcher.stopping.set()
    delays = [published[k] - completed[k] for k in keys if k in published and k in completed]
    median, p95 = statistics.median(delays) * 1000, percentile(delays, 0.95) * 1000
    print(f"2. watcher latency over {len(delays)} Jobs (Complete seen -> job.ended published): "
          f"median {median:.0f} ms, p95 {p95:.0f} ms")  # fmt: skip
    wait_gone(executor)


def throttling(workdir: Path, settings: Settings, jobs: int, in_flight: int) -> None:
    cohort = write_cohort(workdir / "cohort", subjects=jobs, sessions=1, modalities=("T1w",), images="tiny", seed=3)
    stack = open_stack(dataclasses.replace(settings, home=workdir / "store", max_jobs=in_flight))
    services = stack.services
    executor = services.executor
    assert isinstance(executor, GkeExecutor)
    executor.cluster = dataclasses.replace(executor.cluster, staging_allowance=60)
    for site, root in cohort.items():
        for path in root.rglob("*"):
            if path.is_file():
                stack.storage.put_file(key=f"datasets/{site}/{path.relative_to(root).as_posix()}", source=str(path))
        reindex_dataset(site, storage=stack.storage, index=stack.index, actor=ACTOR)
    folder = workdir / "tool"
    subprocess.run(["cp", "-r", str(TOOLBOX), str(folder)], check=True)
    (folder / "analysis.yaml").write_text(
        "name: tool\nversion: '1'\nimage: {build: .}\ncommand: [python3, tool.py]\n"
        "input: suffix=T1w AND extension=.nii.gz AND NOT exists(analysis)\n"
        "resources: {cpu: 0.25, memory: 512m, timeout: 120}\n"
        "outputs: ['sub-{sub}_desc-tool.json']\nparams: {mode: ok}\n"
    )
    analyses.register_analysis(folder, index=stack.index, executor=executor, actor=ACTOR)
    _, report = jobflow.queue_run(services, "tool", "", actor=ACTOR)
    print(f"3. throttling: {len(report.queued)} jobs queued, limit {in_flight} in flight")
    samples: list[int] = []
    start = time.monotonic()
    last_sample = 0.0
    while time.monotonic() - start < 3600:
        for topic in (QUEUE_TOPIC, SCANS_TOPIC, RESULTS_TOPIC):
            dispatch.pump(services, topic, actor=ACTOR)
        jobflow.collect(services)
        dispatch.pump(services, JOBS_TOPIC, actor=ACTOR)
        if time.monotonic() - last_sample >= 1.0:
            last_sample = time.monotonic()
            states = [j.state for j in stack.index.jobs()]
            samples.append(states.count("running"))
            if states.count("succeeded") + states.count("failed") == len(states):
                break
        time.sleep(0.05)
    took = time.monotonic() - start
    states = [j.state for j in stack.index.jobs()]
    attempts = sum(j.attempts for j in stack.index.jobs())
    steady = samples[len(samples) // 5 : len(samples) * 4 // 5] or samples
    print(f"   {states.count('succeeded')} succeeded, {states.count('failed')} failed of {len(states)} in {took:.0f} s "
          f"({len(states) / took:.2f} jobs/s); {attempts} attempts (1 per job: none lost or duplicated)"
          if attempts == len(states) else f"   {attempts} attempts for {len(states)} jobs: some ran again")  # fmt: skip
    failures = Counter(j.message.split(":")[0][:80] for j in stack.index.jobs() if j.state == "failed")
    for why, n in failures.most_common():
        print(f"   failed: {n} x {why}")
    print(f"   in flight: at most {max(samples)} (limit {in_flight}), mean {statistics.mean(steady):.1f} "
          f"over the middle 60% of the run")  # fmt: skip
    stack.close()


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the cluster on the way out
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--submit", type=int, default=100)
    parser.add_argument("--latency", type=int, default=20)
    args = parser.parse_args()
    stager = subprocess.run([str(ROOT / "docker" / "rollerblade" / "build.sh")], capture_output=True, text=True)
    assert stager.returncode == 0, stager.stderr[-2000:]
    with tempfile.TemporaryDirectory(prefix="gke-bench-") as tmp:
        work = Path(tmp)
        cluster = kube.start(work / "kube")
        try:
            api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
            client.CoreV1Api(api).create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name="rollerblade-jobs"))
            )
            settings = Settings(
                home=work / "home", executor="gke", kubeconfig=str(cluster.kubeconfig),
                stager_image=stager.stdout.split()[-1],
            )  # fmt: skip
            stack = open_stack(settings)
            executor = make_gke_executor(settings, stack.storage, settings.work_root)
            image = executor.prepare(
                folder=str(TOOLBOX), image_build=".", image_ref=None, tag="rollerblade-bench/tool:1"
            )
            submission(executor, image, args.submit)
            latency(executor, image, args.latency)
            throttling(work, settings, args.jobs, args.in_flight)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
