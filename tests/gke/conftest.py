"""Fixtures for the gke executor: a real single-node Kubernetes cluster (tests/kube.py) for
the whole session, Rollerblade's own image (the staging containers), and a store whose
settings select the gke executor against that cluster."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from rollerblade.adapters import gke_exec
from rollerblade.pipeline import analyses as analyses_use
from rollerblade.ports import Executor
from rollerblade.settings import Settings
from rollerblade.stack import Stack, make_gke_executor, open_stack
from tests import kube
from tests.analyses.conftest import docker_executor, register  # noqa: F401 - fixtures shared with tests/analyses
from tests.conftest import ACTOR, ROOT, admins

NAMESPACE = "rollerblade-jobs"


@pytest.fixture(scope="session")
def kube_cluster(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[kube.Cluster]:
    cluster = kube.start(tmp_path_factory.mktemp("kube"))
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    core.create_namespaced_service_account(
        NAMESPACE,
        client.V1ServiceAccount(
            metadata=client.V1ObjectMeta(name="rollerblade-job"), automount_service_account_token=False
        ),
    )
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def stager_image(docker_engine: None) -> str:
    built = subprocess.run(
        [str(ROOT / "docker" / "rollerblade" / "build.sh")], capture_output=True, text=True, timeout=900
    )
    assert built.returncode == 0, f"could not build Rollerblade's image: {built.stderr[-3000:]}"
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture
def gke_settings(tmp_path: Path, kube_cluster: kube.Cluster, stager_image: str) -> Settings:
    return Settings(
        home=tmp_path / "gke-home",  # not the `stack` fixture's store: tests compare the two
        executor="gke",
        kubeconfig=str(kube_cluster.kubeconfig),
        stager_image=stager_image,
        gke_namespace=NAMESPACE,
    )


@pytest.fixture
def gke_stack(gke_settings: Settings) -> Iterator[Stack]:
    stack = open_stack(gke_settings)
    admins(stack.access)
    yield stack
    stack.close()


def quick(executor: gke_exec.GkeExecutor, **changes: object) -> gke_exec.GkeExecutor:
    """The executor with test-sized limits: a short staging allowance (timeouts end in
    seconds, not minutes) and a short grace for image pull errors."""
    executor.cluster = dataclasses.replace(executor.cluster, **{"staging_allowance": 20, "pull_grace": 3.0, **changes})
    return executor


@pytest.fixture
def gke_executor(gke_stack: Stack) -> gke_exec.GkeExecutor:
    return quick(make_gke_executor(gke_stack.settings, gke_stack.storage, gke_stack.settings.work_root))


@pytest.fixture
def register_gke(gke_stack: Stack) -> Callable[[Path, Executor], dict[str, object]]:
    def run(folder: Path, executor: Executor) -> dict[str, object]:
        return analyses_use.register_analysis(folder, index=gke_stack.index, executor=executor, actor=ACTOR)

    return run
