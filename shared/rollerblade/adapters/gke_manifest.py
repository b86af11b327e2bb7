"""The Kubernetes Job of one attempt of a job, as a plain dict: names, labels, the pod
(stage-in, the Analysis, store-out), Autopilot-fitted requests, deadlines, the failure
policy and the hardening. Pure: no ``kubernetes`` import; validated against a current
schema by tests/cloud/test_job_manifest.py. :mod:`~rollerblade.adapters.gke_exec`
submits it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

from rollerblade.analyses.autopilot import SPOT_GRACE_SECONDS, PodSize, fit
from rollerblade.ports import JobSpec

MANAGED = {"app.kubernetes.io/managed-by": "rollerblade"}
ROLE_LABEL, ROLE = "rollerblade.dev/role", "analysis"
STORE_LABEL = "rollerblade.dev/store"
KEY_LABEL = "rollerblade.dev/job-key"  # label values hold 63 characters: the full key is an annotation
ANALYSIS_LABEL, DATASET_LABEL = "rollerblade.dev/analysis", "rollerblade.dev/dataset"
KEY, ATTEMPT, LOG_KEY, PREFIX, REPORTED = (
    "rollerblade.dev/job-key",
    "rollerblade.dev/attempt",
    "rollerblade.dev/log-key",
    "rollerblade.dev/output-prefix",
    "rollerblade.dev/reported",
)
USER = 65534
#: Image errors that no wait can fix; the job ends at once with the reason.
IMAGE_ERRORS = ("ErrImageNeverPull", "InvalidImageName", "ErrImagePull", "ImagePullBackOff")
STAGER_RESOURCES = {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "64Mi"}


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where and how the executor's Jobs run."""

    namespace: str
    stager_image: str
    store: str  # tells deployments sharing a namespace apart (a label)
    stager_env: Mapping[str, str]  # the settings stage-in/store-out need to reach the bucket
    service_account: str = "rollerblade-job"
    bucket_path: str = ""  # local backend (tests): the directory bucket, mounted at the same path
    ttl_seconds: int = 3600
    pending_limit: float = 900.0
    pull_policy: str = "IfNotPresent"
    pull_grace: float = 60.0  # seconds a pull error may last (a registry hiccup) before the job ends
    staging_allowance: int = 300  # seconds for stage-in and store-out, on top of the timeout
    #: The staging containers' user. 65534 in the cloud; a directory bucket on this machine
    #: belongs to its owner, whom the staging containers must then run as (the Analysis
    #: container always runs as 65534).
    stager_user: int = USER


def job_name(key: str, attempt: int) -> str:
    """Deterministic and DNS-safe: ``rb-`` + 40 hex digits of the key + the attempt."""
    return f"rb-{key[:40]}-{attempt}"


def label(value: str) -> str:
    """A label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends."""
    clean = "".join(c if c.isalnum() or c in "._-" else "_" for c in value)[:63].strip("._-")
    if clean != value:
        clean = f"{clean[:52].strip('._-')}-{hashlib.sha256(value.encode()).hexdigest()[:10]}"
    return clean


def pod_size(spec: JobSpec) -> PodSize:
    return fit(spec.resources)


def pod_spec_key(spec: JobSpec) -> str:
    """Where the executor leaves the slice's list for the stage-in container."""
    return f"jobs/{spec.job_key}/{spec.attempt}/pod/slice.json"


def manifest_key(output_prefix: str) -> str:
    """Where store-out writes what it stored (next to the outputs' folder)."""
    return output_prefix.rstrip("/").rsplit("/", 1)[0] + "/pod/manifest.json"


def job_manifest(spec: JobSpec, cluster: Cluster, size: PodSize) -> dict[str, Any]:
    """The ``batch/v1`` Job of one attempt (a plain dict, validated against the schema in tests)."""
    name = job_name(spec.job_key, spec.attempt)
    labels = {
        **MANAGED,
        ROLE_LABEL: ROLE,
        STORE_LABEL: label(cluster.store),
        KEY_LABEL: spec.job_key[:63],
        ANALYSIS_LABEL: label(spec.labels.get("analysis", "")),
        DATASET_LABEL: label(spec.labels.get("dataset", "")),
    }
    hardened = {
        "runAsNonRoot": True,
        "runAsUser": USER,
        "runAsGroup": USER,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    stager_security = {**hardened, "runAsUser": cluster.stager_user, "runAsNonRoot": cluster.stager_user != 0}
    stager_env = [{"name": k, "value": v} for k, v in sorted(cluster.stager_env.items())]
    stager_env += [{"name": "HOME", "value": "/tmp"}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}]
    bucket_mounts = [{"name": "bucket", "mountPath": cluster.bucket_path}] if cluster.bucket_path else []
    analysis_resources: dict[str, str] = {
        "cpu": size.cpu,
        "memory": str(size.memory),
        "ephemeral-storage": str(size.disk),
    }
    if size.gpu:
        analysis_resources["nvidia.com/gpu"] = str(size.gpu)
    command = [p.replace("{input}", "/input").replace("{output}", "/output") for p in spec.command]
    volumes: list[dict[str, Any]] = [
        {"name": "input", "emptyDir": {"sizeLimit": str(size.disk)}},
        {"name": "output", "emptyDir": {"sizeLimit": str(size.disk)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    if cluster.bucket_path:
        volumes.append({"name": "bucket", "hostPath": {"path": cluster.bucket_path, "type": "Directory"}})
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": cluster.service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER,
            "runAsGroup": USER,
            "fsGroup": USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [
            {
                "name": "stage-in",
                "image": cluster.stager_image,
                "imagePullPolicy": cluster.pull_policy,
                "command": ["rollerblade", "gke", "stage-in", "--slice", pod_spec_key(spec), "--into", "/input"],
                "env": stager_env,
                "resources": {"requests": STAGER_RESOURCES, "limits": STAGER_RESOURCES},
                "securityContext": stager_security,
                "volumeMounts": [{"name": "input", "mountPath": "/input"}, {"name": "tmp", "mountPath": "/tmp"}]
                + bucket_mounts,
            },
            {
                "name": "analysis",
                "image": spec.image,
                "imagePullPolicy": cluster.pull_policy,
                "command": command,
                "workingDir": "/app",
                "env": [{"name": k, "value": v} for k, v in sorted(spec.env.items())],
                "resources": {"requests": analysis_resources, "limits": analysis_resources},
                "securityContext": hardened,
                "volumeMounts": [
                    {"name": "input", "mountPath": "/input", "readOnly": True},
                    {"name": "output", "mountPath": "/output"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            },
        ],
        "containers": [
            {
                "name": "store-out",
                "image": cluster.stager_image,
                "imagePullPolicy": cluster.pull_policy,
                "command": [
                    "rollerblade",
                    "gke",
                    "store-out",
                    "--from",
                    "/output",
                    "--prefix",
                    spec.output_prefix,
                    "--manifest",
                    manifest_key(spec.output_prefix),
                ],  # fmt: skip
                "env": stager_env,
                "resources": {"requests": STAGER_RESOURCES, "limits": STAGER_RESOURCES},
                "securityContext": stager_security,
                "volumeMounts": [
                    {"name": "output", "mountPath": "/output", "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"},
                ]
                + bucket_mounts,
            }
        ],
        "volumes": volumes,
    }
    deadline = int(spec.timeout) + cluster.staging_allowance
    pod["activeDeadlineSeconds"] = deadline
    if size.node_selector:
        pod["nodeSelector"] = dict(size.node_selector)
    if spec.spot:
        pod["terminationGracePeriodSeconds"] = SPOT_GRACE_SECONDS
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": cluster.namespace,
            "labels": labels,
            "annotations": {
                KEY: spec.job_key,
                ATTEMPT: str(spec.attempt),
                LOG_KEY: spec.log_key,
                PREFIX: spec.output_prefix,
            },
        },
        "spec": {
            "backoffLimit": 0,
            # The timeout runs from the pod's start (below), not while it waits for a node;
            # the Job's own deadline adds the time a pod may stay Pending.
            "activeDeadlineSeconds": deadline + int(cluster.pending_limit),
            "ttlSecondsAfterFinished": cluster.ttl_seconds,
            # Kubernetes >= 1.26 (GKE): an Analysis's exit fails the Job at once; a disruption
            # (eviction, Spot preemption) does not count, and the pod is replaced.
            "podFailurePolicy": {
                "rules": [
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "analysis", "operator": "NotIn", "values": [0]},
                    },
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
