"""Every use case x {owner, granted, not granted, revoked, admin, anonymous} x {CLI, HTTP}.

The expectations are written here by hand from the access rules (owner, holder of the
right and admin: allowed; the rest: denied), not taken from the code. A denial is an
error naming the missing right (CLI exit 1, HTTP 403; 401 for anonymous) and a
``denied`` line in the audit log. Queries are the exception by design: they are narrowed
to the readable datasets, so a denied count is 0 rather than an error (an error would
reveal that the private dataset has matching records).

The CLI acts as each user with ``--as`` (the OS user running the tests is an admin);
anonymous exists only over HTTP. Import, delete and reindex are CLI-only (local files).
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from rollerblade.cli.main import cli
from rollerblade.pipeline import sharing, usecases_data
from tests.api.conftest import ADMIN, Site
from tests.conftest import ACTOR, ROOT

ROLES = ("owner", "granted", "not granted", "revoked", "admin", "anonymous")
#: The user playing each role; "granted" holds exactly the right the case needs.
PLAYER = {"owner": "owner", "not granted": "stranger", "revoked": "former", "admin": ACTOR, "anonymous": None}
HOLDER = {"read": "reader", "write": "writer", "manage": "manager", "run": "reader", "manage analysis": "manager"}
ALLOWED = {"owner", "granted", "admin"}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    needs: str  # a key of HOLDER
    cli: Callable[[Site, Path], list[str]] | None  # argv after --as USER
    http: Callable[[Site], tuple[str, str, dict[str, Any] | None]] | None  # method, path, json
    narrowed: bool = False  # a query: denied means "sees nothing", not an error
    cli_sees: Callable[[Site, str], bool] | None = None  # for narrowed cases: did it see private?
    http_sees: Callable[[Site, httpx.Response], bool] | None = None


def first_path(site: Site) -> str:
    return next(usecases_data.find(site.services, ADMIN, "dataset=private")).path


def private_count(site: Site) -> int:
    return usecases_data.count(site.services, ADMIN, "dataset=private")


def zip_names(response: httpx.Response) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(response.content)).namelist()


CASES = [
    Case(
        "count",
        "read",
        lambda s, _: ["query", "--count", "dataset=private"],
        lambda s: ("GET", "/v1/count?query=dataset%3Dprivate", None),
        narrowed=True,
        cli_sees=lambda s, out: out.strip() == str(private_count(s)),
        http_sees=lambda s, r: r.json()["count"] == private_count(s),
    ),
    Case(
        "datasets",
        "read",
        lambda s, _: ["datasets"],
        lambda s: ("GET", "/v1/datasets", None),
        narrowed=True,
        cli_sees=lambda s, out: any(line.startswith("private\t") for line in out.splitlines()),
        http_sees=lambda s, r: "private" in {d["name"] for d in r.json()},
    ),
    Case(
        "download",
        "read",
        lambda s, tmp: ["download", "dataset=private AND suffix=T1w", str(tmp / "dl")],
        lambda s: ("POST", "/v1/download", {"query": "dataset=private AND suffix=T1w"}),
        narrowed=True,
        cli_sees=lambda s, out: "private" in out,
        http_sees=lambda s, r: any(n.startswith("private/") and n.endswith("_T1w.nii.gz") for n in zip_names(r)),
    ),
    Case(
        "show",
        "read",
        lambda s, _: ["show", f"private/{first_path(s)}"],
        lambda s: ("GET", f"/v1/records/private/{first_path(s)}", None),
    ),
    Case("view a file", "read", None, lambda s: ("GET", f"/v1/files/private/{first_path(s)}", None)),
    Case("dataset summary", "read", None, lambda s: ("GET", "/v1/datasets/private/summary", None)),
    Case(
        "access show", "read", lambda s, _: ["access", "show", "private"], lambda s: ("GET", "/v1/access/private", None)
    ),
    Case("reindex", "write", lambda s, _: ["reindex", "--dataset", "private"], None),
    Case(
        "grant",
        "manage",
        lambda s, _: ["grant", "guest", "read", "private"],
        lambda s: ("POST", "/v1/grants", {"user": "guest", "right": "read", "target": "private"}),
    ),
    Case(
        "revoke",
        "manage",
        lambda s, _: ["revoke", "guest", "read", "private"],
        lambda s: ("POST", "/v1/revocations", {"user": "guest", "right": "read", "target": "private"}),
    ),
    Case(
        "audit of a dataset",
        "manage",
        lambda s, _: ["audit", "--dataset", "private"],
        lambda s: ("GET", "/v1/audit?dataset=private", None),
    ),
    Case(
        "run",
        "run",
        lambda s, _: ["rerun", "brain-mask", "--query", "dataset=private"],
        lambda s: ("POST", "/v1/runs", {"analysis": "brain-mask", "query": "dataset=private"}),
    ),
    Case(
        "register a new version",
        "manage analysis",
        lambda s, _: ["analysis", "register", str(ROOT / "analyses" / "brain-mask")],
        None,
    ),
    Case(
        "show an Analysis",
        "run",
        lambda s, _: ["analysis", "show", "brain-mask"],
        lambda s: ("GET", "/v1/analyses/brain-mask", None),
    ),
]


def player(case: Case, role: str) -> str | None:
    return HOLDER[case.needs] if role == "granted" else PLAYER[role]


def denials(site: Site, name: str | None) -> int:
    return sum(
        1 for e in site.services.guard.audit.entries(actor=name or "anonymous", limit=100_000) if e.outcome == "denied"
    )


@pytest.fixture(autouse=True)
def guest(embedded_site: Site) -> None:
    """``guest`` holds read on private before each case (what grant/revoke cases change)."""
    if embedded_site.services.access.get_user(name="guest") is None:  # type: ignore[union-attr]
        sharing.add_user(embedded_site.services, ADMIN, "guest")
    sharing.grant(embedded_site.services, ADMIN, "guest", "read", "private")


HTTP_CASES = [pytest.param(c, r, id=f"{c.name}-{r}") for c in CASES if c.http is not None for r in ROLES]
CLI_CASES = [
    pytest.param(c, r, id=f"{c.name}-{r}") for c in CASES if c.cli is not None for r in ROLES if r != "anonymous"
]


@pytest.mark.parametrize(("case", "role"), HTTP_CASES)
def test_http(embedded_site: Site, case: Case, role: str) -> None:
    assert case.http is not None
    site, name = embedded_site, player(case, role)
    method, path, body = case.http(site)
    before = denials(site, name)
    response = httpx.request(method, site.url + path, json=body, headers=site.headers(name), timeout=60)
    if role == "anonymous":
        assert response.status_code == 401, response.text
        assert response.json()["error"]["type"] == "unauthenticated"
        return
    if role in ALLOWED:
        assert response.status_code < 300, response.text
        if case.narrowed:
            assert case.http_sees is not None and case.http_sees(site, response)
        return
    if case.narrowed:
        assert response.status_code == 200 and case.http_sees is not None and not case.http_sees(site, response)
        return
    assert response.status_code == 403, response.text
    assert response.json()["error"]["type"] == "permission_denied"
    assert denials(site, name) > before, "a denial must be written to the audit log"


@pytest.mark.parametrize(("case", "role"), CLI_CASES)
def test_cli(embedded_site: Site, case: Case, role: str, tmp_path: Path) -> None:
    assert case.cli is not None
    site, name = embedded_site, player(case, role)
    assert name is not None
    before = denials(site, name)
    result = CliRunner(env={"ROLLERBLADE_EXECUTOR": "process"}).invoke(
        cli, ["--home", str(site.stack.settings.home), "--as", name, *case.cli(site, tmp_path)], catch_exceptions=False
    )
    if role in ALLOWED:
        assert result.exit_code == 0, result.output + result.stderr
        if case.narrowed:
            assert case.cli_sees is not None and case.cli_sees(site, result.output)
        return
    if case.narrowed:
        assert result.exit_code == 0 and case.cli_sees is not None and not case.cli_sees(site, result.output)
        return
    assert result.exit_code == 1, result.output
    assert f"{name} may not" in result.stderr and "Traceback" not in result.stderr
    assert denials(site, name) > before, "a denial must be written to the audit log"
