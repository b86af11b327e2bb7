"""A populated store with users holding every kind of right, behind a live HTTP server.

The store has two datasets imported from a generated multi-site cohort of real brain
images: ``private`` (imported by ``owner``) and ``other`` (imported by ``manager``, whom
nobody else was granted). ``owner`` registered the ``brain-mask`` Analysis. Rights, given
through the use cases as a user would (``rollerblade grant``):

* reader: read on private, run on brain-mask;  writer: write on private;
* manager: manage on private and brain-mask;   former: manage on private, then revoked;
* stranger: nothing.  The OS user and ``tester`` are admins.

The server is uvicorn on 127.0.0.1 (a free port), run in a thread: real HTTP.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from rollerblade.access.model import Principal
from rollerblade.api.app import create_app
from rollerblade.demo.cohort import DEMO, write_cohort
from rollerblade.pipeline import sharing, usecases_data, usecases_work
from rollerblade.pipeline.services import Services
from rollerblade.settings import Settings
from rollerblade.stack import Stack, open_stack
from tests.conftest import ACTOR, ROOT, GcpStack, admins

USERS = ("owner", "reader", "writer", "manager", "former", "stranger")
ADMIN = Principal(ACTOR, "user", admin=True)


def user(name: str) -> Principal:
    return Principal(name, "user")


@dataclasses.dataclass
class Site:
    stack: Stack
    url: str
    tokens: dict[str, str]  # user -> bearer token

    @property
    def services(self) -> Services:
        return self.stack.services

    def headers(self, name: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"} if name else {}


#: A sidecar key only the private dataset has (what must never leak to non-readers).
SECRET_KEY = "PrivateSiteProtocolCode"


def private_source(cohort: dict[str, Path], work: Path) -> Path:
    """site-a of the cohort plus a top-level ``T1w.json`` (inherited by every T1w) with a
    key no other dataset has."""
    target = work / "private-src"
    if not target.exists():
        shutil.copytree(cohort["site-a"], target)
        (target / "T1w.json").write_text(json.dumps({SECRET_KEY: "ZX-81"}))
    return target


def populate(stack: Stack, cohort: dict[str, Path]) -> dict[str, str]:
    """Users, datasets, an Analysis and grants as the module docstring says; tokens."""
    admins(stack.access)
    services = stack.services
    for name in USERS:
        sharing.add_user(services, ADMIN, name, email=f"{name}@lab.example")
    usecases_data.import_dataset(services, user("owner"), private_source(cohort, stack.settings.home.parent), "private")
    usecases_data.import_dataset(services, user("manager"), cohort["site-b"], "other")
    usecases_work.register_analysis(services, user("owner"), ROOT / "analyses" / "brain-mask")
    owner = user("owner")
    for name, right, target in (
        ("reader", "read", "private"),
        ("reader", "run", "brain-mask"),
        ("writer", "write", "private"),
        ("manager", "manage", "private"),
        ("manager", "manage", "brain-mask"),
        ("former", "manage", "private"),
    ):
        sharing.grant(services, owner, name, right, target)
    sharing.revoke(services, owner, "former", "read", "private")
    tokens = {name: sharing.create_token(services, user(name))[0] for name in USERS}
    tokens[ACTOR] = sharing.create_token(services, ADMIN)[0]
    return tokens


@dataclasses.dataclass
class Server:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(services: Services, **app_options: Any) -> Server:
    """The API on 127.0.0.1 at a free port, in a thread."""
    config = uvicorn.Config(
        create_app(services, **app_options), host="127.0.0.1", port=0, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return Server(f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_cohort(tmp_path_factory.mktemp("api-cohort"), subjects=6, modalities=DEMO, seed=11)


def _embedded(home: Path) -> Stack:
    return open_stack(Settings(home=home, executor="process"))


def _emulated(gcp: GcpStack, home: Path) -> Stack:
    from rollerblade.adapters import gcs

    bucket = f"api-{uuid.uuid4().hex[:10]}"
    gcs.GcsStorage(bucket=bucket, project=gcp.project, emulator_host=gcp.storage_url).ensure_bucket()
    env = {
        "FIRESTORE_EMULATOR_HOST": gcp.firestore_host,
        "STORAGE_EMULATOR_HOST": gcp.storage_url,
        "GOOGLE_CLOUD_PROJECT": gcp.project,
    }
    settings = Settings(
        home=home,
        backend="gcp",
        gcp_project=gcp.project,
        bucket=bucket,
        collection_prefix=f"api{uuid.uuid4().hex[:8]}_",
        executor="process",
    )
    return open_stack(settings, environ=env)


@pytest.fixture(scope="module", params=["embedded", "emulators"])
def site(
    request: pytest.FixtureRequest, small_cohort: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """The populated store on the embedded default (SQLite, directory bucket) or on the
    emulators (Firestore, fake-gcs-server), behind a live server."""
    home = tmp_path_factory.mktemp(f"api-{request.param}")
    stack = _embedded(home) if request.param == "embedded" else _emulated(request.getfixturevalue("gcp"), home)
    tokens = populate(stack, small_cohort)
    server = serve(stack.services)
    yield Site(stack, server.url, tokens)
    server.stop()
    stack.close()


@pytest.fixture(scope="module")
def embedded_site(small_cohort: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The populated store on the embedded default only (the permission matrix, fuzzing)."""
    stack = _embedded(tmp_path_factory.mktemp("api-matrix"))
    tokens = populate(stack, small_cohort)
    server = serve(stack.services)
    yield Site(stack, server.url, tokens)
    server.stop()
    stack.close()
