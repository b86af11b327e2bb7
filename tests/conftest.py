"""Fixtures shared by every test folder: generated cohorts and fresh stores.

``docker_engine`` starts a real Docker engine with scripts/dockerd.sh when none answers
(no bridge, no iptables) and stops it at the end of the session if it started it; the
base image comes from docker/base/build.sh (built once, then cached). A missing engine is
a test error, never a skip.

The cohorts are built once per session from real images shipped in installed packages
(``rollerblade.demo.cohort``); tests copy them when they need to damage them.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from rollerblade.access.model import User
from rollerblade.access.ports import AccessStore
from rollerblade.demo.cohort import DEMO, FULL, write_cohort
from rollerblade.records import Actor, default_actor
from rollerblade.settings import Settings
from rollerblade.stack import Stack, open_stack

ACTOR = Actor("tester")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    started = subprocess.run([str(ROOT / "scripts" / "dockerd.sh")], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, f"could not start the Docker engine: {started.stderr}"
    pid = int(started.stdout.strip()) if started.stdout.strip() else None
    built = subprocess.run([str(ROOT / "docker" / "base" / "build.sh")], capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, f"could not build the base image: {built.stderr[-3000:]}"
    yield
    if pid is not None:
        os.kill(pid, signal.SIGTERM)


@dataclasses.dataclass
class GcpStack:
    """The local Google Cloud stack of a test session (see tests/emulators.py)."""

    project: str
    pubsub_host: str
    firestore_host: str
    storage_url: str
    notifications_topic: str
    logdir: Path


@pytest.fixture(scope="session")
def gcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcpStack]:
    """Pub/Sub and Firestore emulators and fake-gcs-server (publishing bucket notifications
    to the Pub/Sub emulator), started once per session; their addresses are exported in the
    standard ``*_EMULATOR_HOST`` variables for the client libraries."""
    from google.cloud import pubsub_v1

    from tests import emulators

    logdir = tmp_path_factory.mktemp("gcp-logs")
    started: list[emulators.Service] = []
    saved = {
        k: os.environ.get(k)
        for k in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")
    }
    try:
        started.append(emulators.pubsub(logdir))
        started.append(emulators.firestore(logdir))
        os.environ["PUBSUB_EMULATOR_HOST"] = started[0].host
        os.environ["FIRESTORE_EMULATOR_HOST"] = started[1].host
        os.environ["GOOGLE_CLOUD_PROJECT"] = emulators.PROJECT
        topic = "bucket-notifications"
        publisher = pubsub_v1.PublisherClient()
        publisher.create_topic(name=publisher.topic_path(emulators.PROJECT, topic))
        started.append(emulators.fake_gcs(logdir, pubsub_host=started[0].host, topic=topic))
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://{started[2].host}"
        yield GcpStack(emulators.PROJECT, started[0].host, started[1].host, f"http://{started[2].host}", topic, logdir)
    finally:
        for service in reversed(started):
            service.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def real_cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three site datasets, 9 participants x 2 sessions, jittered real images."""
    return write_cohort(tmp_path_factory.mktemp("real-cohort"), subjects=9, modalities=DEMO, seed=7)


@pytest.fixture(scope="session")
def full_cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three site datasets with every modality (anat, func with events, dwi, fmap), tiny images."""
    return write_cohort(tmp_path_factory.mktemp("full-cohort"), subjects=12, modalities=FULL, images="tiny", seed=3)


@pytest.fixture
def copy_of(tmp_path: Path) -> Iterator[object]:
    """``copy_of(root)`` copies a dataset folder into this test's tmp dir (to damage it)."""

    def copy(root: Path) -> Path:
        target = tmp_path / "src" / root.name
        shutil.copytree(root, target, symlinks=True)
        return target

    yield copy


def admins(access: AccessStore) -> None:
    """Make the OS user (who runs the CLI in tests) and ACTOR (who the tests' direct calls
    act as, and who applies their rules) admins of a new store."""
    access.create_user(user=User(name=default_actor(), created=0.0))  # the first user: admin
    access.create_user(user=User(name=ACTOR, created=0.0, admin=True))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """A fresh embedded store (directory bucket, SQLite index, SQLite bus)."""
    s = open_stack(Settings(home=tmp_path / "home"))
    admins(s.access)
    yield s
    s.close()


#: Debian's Chromium (scripts/setup.sh installs it); Playwright never downloads a browser.
CHROMIUM = "/usr/lib/chromium/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session, driven by Playwright (software WebGL)."""
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()
