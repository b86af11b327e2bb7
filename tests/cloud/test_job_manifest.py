"""The gke executor's Job, as the cloud deployment submits it: valid against a current
Kubernetes schema (strictly: a misspelled field fails), Autopilot-sized, hardened, and
giving the Analysis exactly the /input (read-only) and /output of the Docker executor."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest

from rollerblade.adapters.gke_manifest import Cluster, job_manifest, job_name, pod_size
from rollerblade.ports import JobSpec

KEY = "f" * 64
CLOUD = Cluster(
    namespace="rollerblade-jobs",
    stager_image="europe-west1-docker.pkg.dev/p/rollerblade/rollerblade@sha256:" + "a" * 64,
    store="0123456789abcdef",
    stager_env={"ROLLERBLADE_BACKEND": "gcp", "ROLLERBLADE_BUCKET": "b", "ROLLERBLADE_GCP_PROJECT": "p"},
)


def spec(**changes: object) -> JobSpec:
    values: dict[str, object] = dict(
        job_key=KEY,
        attempt=2,
        image="europe-west1-docker.pkg.dev/p/rollerblade/brain-mask@sha256:" + "b" * 64,
        command=("python3", "run.py", "{input}", "{output}"),
        inputs={"sub-01/anat/sub-01_T1w.nii.gz": "datasets/d/sub-01/anat/sub-01_T1w.nii.gz"},
        files={},
        output_prefix=f"jobs/{KEY}/2/output/",
        log_key=f"logs/brain-mask/{KEY}.log",
        env={"ROLLERBLADE_INPUT": "/input", "ROLLERBLADE_OUTPUT": "/output"},
        cpu=1.0,
        memory=1 << 30,
        timeout=600.0,
        labels={"analysis": "brain-mask", "dataset": "Colin 27/ok"},
    )
    values.update(changes)
    return JobSpec(**values)  # type: ignore[arg-type]


def manifest(**changes: object) -> dict[str, object]:
    job = spec(**changes)
    return job_manifest(job, CLOUD, pod_size(job))


@pytest.mark.parametrize("version", ["1.33.0", kubernetes_validate.latest_version()])
@pytest.mark.parametrize("variant", [{}, {"spot": True}, {"gpu": 1, "accelerator": "nvidia-l4", "cpu": 4.0}])
def test_the_job_is_valid_against_a_current_schema(version: str, variant: dict[str, object]) -> None:
    assert kubernetes_validate.validate(manifest(**variant), version, strict=True)


def test_a_misspelled_field_would_be_caught() -> None:
    doc = manifest()
    doc["spec"]["template"]["spec"]["automountServiceAccountTokens"] = False  # type: ignore[index]
    with pytest.raises(kubernetes_validate.ValidationError, match="automountServiceAccountTokens"):
        kubernetes_validate.validate(doc, "1.33.0", strict=True)


def test_name_and_labels_are_deterministic_and_dns_safe() -> None:
    doc = manifest()
    name = doc["metadata"]["name"]  # type: ignore[index]
    assert name == job_name(KEY, 2) == manifest()["metadata"]["name"]  # type: ignore[index]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name)
    labels = doc["metadata"]["labels"]  # type: ignore[index]
    assert (
        labels["rollerblade.dev/job-key"] == KEY[:63]
        and doc["metadata"]["annotations"]["rollerblade.dev/job-key"] == KEY
    )  # type: ignore[index]
    for value in labels.values():
        assert re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]", value), value
    assert labels["rollerblade.dev/dataset"].startswith("Colin_27_ok-")  # unsafe characters replaced, hashed


def test_pods_are_hardened_and_sized_for_autopilot() -> None:
    doc = manifest(cpu=0.1, memory=100 << 20)
    job = doc["spec"]  # type: ignore[index]
    pod = job["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "rollerblade-job"
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
    containers = pod["initContainers"] + pod["containers"]
    assert [c["name"] for c in containers] == ["stage-in", "analysis", "store-out"]
    for container in containers:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        assert security["capabilities"] == {"drop": ["ALL"]} and security["runAsUser"] == 65534
        assert container["resources"]["requests"] == container["resources"]["limits"]  # Autopilot: equal
    analysis = containers[1]
    assert analysis["resources"]["limits"]["cpu"] == "250m" and analysis["resources"]["limits"]["memory"] == str(
        512 << 20
    )
    assert analysis["command"] == ["python3", "run.py", "/input", "/output"]
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in analysis["volumeMounts"]}
    assert mounts == {"/input": True, "/output": False, "/tmp": False}
    assert all("hostPath" not in v for v in pod["volumes"])  # the cloud reaches the bucket only through staging
    # the timeout counts from the pod's start; waiting for a node is the Job's pending allowance
    assert pod["activeDeadlineSeconds"] == 600 + CLOUD.staging_allowance
    assert job["activeDeadlineSeconds"] == 600 + CLOUD.staging_allowance + CLOUD.pending_limit
    assert job["backoffLimit"] == 0
    assert job["ttlSecondsAfterFinished"] == CLOUD.ttl_seconds
    rules = job["podFailurePolicy"]["rules"]
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules
    assert any(r["action"] == "FailJob" and r["onExitCodes"]["containerName"] == "analysis" for r in rules)


def test_spot_and_gpu() -> None:
    pod = manifest(spot=True, gpu=2, accelerator="nvidia-tesla-t4", cpu=4.0, memory=16 << 30)["spec"]["template"][
        "spec"
    ]  # type: ignore[index]
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-tesla-t4",
        "cloud.google.com/gke-spot": "true",
    }
    assert pod["terminationGracePeriodSeconds"] <= 25  # Spot: preemption gives about 25 s
    assert pod["initContainers"][1]["resources"]["limits"]["nvidia.com/gpu"] == "2"
