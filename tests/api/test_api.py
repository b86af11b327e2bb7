"""The HTTP API's contract, over the embedded default and the emulator-backed stack:
identity (tokens good and bad), the one error shape, paging, downloads as valid BIDS,
limits, grants taking effect at once, and nothing leaking to those who may not read."""

from __future__ import annotations

import concurrent.futures
import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest

from rollerblade.access import tokens
from rollerblade.client import Client, RemoteError
from rollerblade.pipeline import sharing, usecases_data
from tests.api.conftest import ADMIN, SECRET_KEY, Site, user
from tests.conftest import ROOT
from tests.integration.test_download import errors_of, validate

ERROR_KEYS = {"status", "type", "message"}


def get(site: Site, path: str, who: str | None = "owner", **kwargs: object) -> httpx.Response:
    headers = kwargs.pop("headers", site.headers(who))
    return httpx.get(site.url + path, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]


def assert_error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) >= ERROR_KEYS, body
    assert body["error"]["status"] == status and body["error"]["type"] == kind
    assert "Traceback" not in response.text and 'File "' not in response.text
    return str(body["error"]["message"])


# -- identity ----------------------------------------------------------------------------


def test_a_token_identifies_its_user_and_records_its_use(site: Site) -> None:
    assert get(site, "/v1/me", "reader").json() == {"name": "reader", "kind": "user", "admin": False}
    token_id = tokens.token_id(site.tokens["reader"])
    stored = site.services.access.get_token(token_id=token_id)  # type: ignore[union-attr]
    assert stored is not None and stored.last_used > 0


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "sign in"),
        ("Basic cmVhZGVyOnB3", "Bearer"),
        ("Bearer not-a-token", "malformed token"),
        ("Bearer rbt_0123456789abcdef_" + "A" * 43, "unknown token"),  # well formed, never issued
    ],
)
def test_requests_without_a_valid_identity_get_401(site: Site, header: str | None, why: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = httpx.get(site.url + "/v1/datasets", headers=headers, timeout=30)
    assert why in assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_forged_token_with_a_real_id_is_refused(site: Site) -> None:
    real = site.tokens["reader"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    response = httpx.get(site.url + "/v1/me", headers={"Authorization": f"Bearer {forged}"}, timeout=30)
    assert "unknown token" in assert_error(response, 401, "unauthenticated")


def test_revoked_and_expired_tokens_stop_working_at_once(site: Site) -> None:
    services = site.services
    text, made = sharing.create_token(services, user("writer"), label="short")
    assert get(site, "/v1/me", None, headers={"Authorization": f"Bearer {text}"}).status_code == 200
    sharing.revoke_token(services, user("writer"), made.id)
    response = httpx.get(site.url + "/v1/me", headers={"Authorization": f"Bearer {text}"}, timeout=30)
    assert "revoked" in assert_error(response, 401, "unauthenticated")
    expired, _ = sharing.create_token(services, user("writer"), expires_in=0.001)
    response = httpx.get(site.url + "/v1/me", headers={"Authorization": f"Bearer {expired}"}, timeout=30)
    assert "expired" in assert_error(response, 401, "unauthenticated")


def test_a_token_made_over_http_is_shown_once_and_stored_as_a_hash(site: Site) -> None:
    made = httpx.post(site.url + "/v1/tokens", json={"label": "notebook"}, headers=site.headers("reader"), timeout=30)
    assert made.status_code == 201
    text = made.json()["token"]
    listed = get(site, "/v1/tokens", "reader").json()
    assert made.json()["id"] in {t["id"] for t in listed}
    assert text not in json.dumps(listed)
    stored = site.services.access.get_token(token_id=made.json()["id"])  # type: ignore[union-attr]
    assert stored is not None and stored.digest == tokens.digest(text) and text not in stored.digest
    assert get(site, "/v1/me", None, headers={"Authorization": f"Bearer {text}"}).json()["name"] == "reader"


# -- data --------------------------------------------------------------------------------


def test_paging_returns_every_readable_record_once_in_order(site: Site) -> None:
    expected = [(r.dataset, r.path) for r in usecases_data.find(site.services, ADMIN, "")]
    assert {d for d, _ in expected} == {"private", "other"}
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = get(site, "/v1/records", ACTOR_NAME, params=params).json()
        assert len(page["records"]) <= 7
        seen += [(r["dataset"], r["path"]) for r in page["records"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == expected
    mine = [(d, p) for d, p in expected if d == "private"]
    with Client(site.url, token=site.tokens["reader"]) as rb:  # the Python client pages the same way
        assert [(r["dataset"], r["path"]) for r in rb.records(page=5)] == mine


ACTOR_NAME = "tester"


def test_page_size_and_cursor_are_checked(site: Site) -> None:
    assert "limit" in assert_error(get(site, "/v1/records", params={"limit": 5000}), 422, "invalid_request")
    assert "cursor" in assert_error(get(site, "/v1/records", params={"cursor": "%%%"}), 400, "bad_input")


def test_query_errors_point_at_the_token_and_suggest(site: Site) -> None:
    response = get(site, "/v1/count", params={"query": "suffix=T1w AND participant.agee>60"})
    message = assert_error(response, 400, "query_error")
    error = response.json()["error"]
    assert "participant.agee" in message and error["token"] == "participant.agee"
    assert error["position"] == len("suffix=T1w AND ") and "participant.age" in error["suggestions"]


def test_a_record_path_trying_to_escape_is_refused(site: Site) -> None:
    for path in ("/v1/records/private/sub-01/..%2F..%2Fsecret", "/v1/records/private/a/./b", "/v1/records/..%2Fetc/x"):
        response = get(site, path)
        assert response.status_code in (400, 404), response.text
        assert set(response.json()) == {"error"}


def test_download_is_a_zip_of_valid_bids(site: Site, tmp_path: Path) -> None:
    response = httpx.post(
        site.url + "/v1/download",
        json={"query": "dataset=private AND suffix=T1w"},
        headers=site.headers("reader"),
        timeout=120,
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = archive.namelist()
    t1w = usecases_data.count(site.services, ADMIN, "dataset=private AND suffix=T1w")
    assert sum(n.endswith("_T1w.nii.gz") for n in names) == t1w > 0
    assert "private/dataset_description.json" in names and "private/participants.tsv" in names
    archive.extractall(tmp_path)
    assert errors_of(validate(tmp_path / "private")) == []  # the official validator


def test_bodies_and_query_strings_have_limits(site: Site) -> None:
    big = {"query": "sub=01 OR " * 9000}
    response = httpx.post(site.url + "/v1/download", json=big, headers=site.headers("owner"), timeout=30)
    assert_error(response, 413, "too_large")
    response = get(site, "/v1/count", params={"query": "x" * 9000})
    assert_error(response, 414, "too_large")


def test_unknown_routes_and_methods_share_the_error_shape(site: Site) -> None:
    assert_error(get(site, "/v1/nope"), 404, "not_found")
    assert_error(
        httpx.delete(site.url + "/v1/datasets", headers=site.headers("owner"), timeout=30), 405, "method_not_allowed"
    )


# -- sharing -----------------------------------------------------------------------------


def test_grant_and_revoke_take_effect_on_the_next_request(site: Site) -> None:
    def sees_private() -> bool:
        return "private" in {d["name"] for d in get(site, "/v1/datasets", "stranger").json()}

    assert not sees_private()
    grant = httpx.post(
        site.url + "/v1/grants",
        json={"user": "stranger", "right": "read", "target": "private"},
        headers=site.headers("owner"),
    )
    assert grant.status_code == 200 and grant.json()["right"] == "read"
    assert sees_private()
    revoke = httpx.post(
        site.url + "/v1/revocations",
        json={"user": "stranger", "right": "read", "target": "private"},
        headers=site.headers("owner"),
    )
    assert revoke.status_code == 200 and revoke.json()["right"] is None
    assert not sees_private()


def test_grant_to_an_unknown_user_suggests_the_near_name(site: Site) -> None:
    response = httpx.post(
        site.url + "/v1/grants",
        json={"user": "readr", "right": "read", "target": "private"},
        headers=site.headers("owner"),
    )
    assert "did you mean 'reader'" in assert_error(response, 404, "not_found")


def test_the_last_manager_cannot_lose_manage(site: Site) -> None:
    """``other`` has one manager (its importer): revoking their manage is refused, audited."""
    before = [e for e in site.services.guard.audit.entries(actor="manager", limit=100_000) if e.outcome == "denied"]
    response = httpx.post(
        site.url + "/v1/revocations",
        json={"user": "manager", "right": "manage", "target": "other"},
        headers=site.headers("manager"),
    )
    assert "last manager" in assert_error(response, 400, "bad_input")
    assert get(site, "/v1/access/other", "manager").json()["managers"] == ["manager"]
    after = [e for e in site.services.guard.audit.entries(actor="manager", limit=100_000) if e.outcome == "denied"]
    assert len(after) == len(before) + 1 and after[-1].action == "revoke"


# -- nothing leaks -----------------------------------------------------------------------


def test_counts_fields_and_suggestions_never_reveal_a_private_metadata_key(site: Site) -> None:
    """``PrivateSiteProtocolCode`` exists only in the private dataset's sidecar."""
    assert SECRET_KEY in str(get(site, "/v1/fields", "reader").json())  # readers see it...
    for who in ("stranger", "former"):  # ...others see no trace of it
        assert f"meta.{SECRET_KEY}" not in get(site, "/v1/fields", who).json()["fields"]
        near = get(site, "/v1/count", who, params={"query": f"meta.{SECRET_KEY[:-1]}=1"})
        assert SECRET_KEY not in near.text
        assert get(site, "/v1/count", who, params={"query": f"exists(meta.{SECRET_KEY})"}).json() == {"count": 0}
        assert get(site, "/v1/count", who, params={"query": "dataset=private"}).json() == {"count": 0}
        assert get(site, "/v1/jobs", who).json()["jobs"] == [] or all(
            j["dataset"] != "private" for j in get(site, "/v1/jobs", who).json()["jobs"]
        )


def test_the_client_maps_api_errors(site: Site) -> None:
    with Client(site.url, token=site.tokens["stranger"]) as rb, pytest.raises(RemoteError) as raised:
        rb.record("private", usecases_data.find(site.services, ADMIN, "dataset=private").__next__().path)
    assert raised.value.status == 403 and "stranger may not read dataset 'private'" in str(raised.value)


def test_the_committed_openapi_document_is_current(site: Site) -> None:
    """docs/openapi.json is what the code generates (regenerate: python3 scripts/openapi.py)."""
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    served = httpx.get(site.url + "/openapi.json", timeout=30).json()
    assert served == committed
    assert committed["openapi"].startswith("3.1")


def test_fifty_clients_at_once_get_no_error(site: Site) -> None:
    """2,000 requests from 50 concurrent clients (queries, counts, records, me): every one
    answered 200 with the right content (the one-minute, 10,000-request run is in bench/)."""
    expected = usecases_data.count(site.services, ADMIN, "dataset=private AND suffix=T1w")
    paths = ["/v1/count?query=dataset%3Dprivate%20AND%20suffix%3DT1w", "/v1/me", "/v1/records?limit=5", "/v1/datasets"]

    def client(n: int) -> list[str]:
        problems = []
        with httpx.Client(base_url=site.url, headers=site.headers("reader"), timeout=120) as http:
            for i in range(40):
                path = paths[(n + i) % len(paths)]
                response = http.get(path)
                if response.status_code != 200:
                    problems.append(f"{path}: {response.status_code} {response.text[:200]}")
                elif path.startswith("/v1/count") and response.json() != {"count": expected}:
                    problems.append(f"{path}: {response.text}")
        return problems

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        problems = [p for found in pool.map(client, range(50)) for p in found]
    assert problems == []


def test_the_client_can_pass_cloud_runs_gate_and_the_apps_separately(site: Site) -> None:
    """On Cloud Run a person's gcloud token goes in X-Serverless-Authorization (checked by
    Cloud Run, not by the app) and their Rollerblade token in Authorization."""
    seen: dict[str, str] = {}
    with Client(site.url, token=site.tokens["reader"], cloud_run_token="google-id-token") as rb:
        rb._http.event_hooks["request"] = [lambda request: seen.update(request.headers)]
        assert rb.me()["name"] == "reader"
    assert seen["x-serverless-authorization"] == "Bearer google-id-token"
    assert seen["authorization"] == f"Bearer {site.tokens['reader']}"


# -- what the web page needs ----------------------------------------------------------------


def private_src(site: Site) -> Path:
    """The files the private dataset was imported from (the independent source)."""
    return site.stack.settings.home.parent / "private-src"


def a_t1w(site: Site) -> str:
    return next(usecases_data.find(site.services, ADMIN, "dataset=private AND suffix=T1w AND extension=.nii.gz")).path


def test_a_file_is_sent_byte_for_byte_to_readers_only(site: Site) -> None:
    path = a_t1w(site)
    response = get(site, f"/v1/files/private/{path}", "reader")
    assert response.status_code == 200, response.text
    assert response.content == (private_src(site) / path).read_bytes()
    assert response.headers["content-type"] == "application/octet-stream"
    assert any(e.action == "read-file" and e.detail == path for e in site.services.guard.audit.entries(actor="reader"))
    assert_error(get(site, f"/v1/files/private/{path}", "stranger"), 403, "permission_denied")
    assert_error(get(site, "/v1/files/private/sub-99/anat/nothing.nii.gz", "reader"), 404, "not_found")
    # a dataset name or a path that tries to leave its folder never reaches the bucket
    assert get(site, "/v1/files/private/sub-01/..%2F..%2F..%2Fconfig%2Fpipeline-rules.json", "reader").status_code in (
        400,
        404,
    )
    assert_error(get(site, "/v1/files/..%2Fother/x.nii.gz", "reader"), 400, "bad_input")


def test_show_says_which_sidecar_each_key_was_inherited_from(site: Site) -> None:
    path = a_t1w(site)
    doc = get(site, f"/v1/records/private/{path}", "reader").json()
    sources = doc["meta_sources"]
    assert set(sources) == set(doc["meta"])
    assert sources[SECRET_KEY] == "T1w.json"  # only the top-level sidecar has it
    # the nearest sidecar on disk wins for every key it sets (read from the files themselves)
    near = private_src(site) / path.replace(".nii.gz", ".json")
    if near.exists():
        for key in json.loads(near.read_text()):
            assert sources[key] == path.replace(".nii.gz", ".json")


def test_a_dataset_summary_agrees_with_its_participants_table(site: Site) -> None:
    rows = [line.split("\t") for line in (private_src(site) / "participants.tsv").read_text().splitlines()]
    header, body = rows[0], rows[1:]
    table = [dict(zip(header, row, strict=True)) for row in body]
    sessions = {p.parent.name + "/" + p.name for p in private_src(site).glob("sub-*/ses-*") if p.is_dir()}
    summary = get(site, "/v1/datasets/private/summary", "reader").json()
    assert summary["participants"] == len(table)
    assert summary["ages"] == sorted(float(r["age"]) for r in table if r["age"] != "n/a")
    expected_sex: dict[str, int] = {}
    for row in table:
        expected_sex[row["sex"]] = expected_sex.get(row["sex"], 0) + 1
    assert summary["sex"] == expected_sex
    assert summary["sessions"] == len(sessions)
    assert summary["managers"] == ["manager", "owner"]
    assert summary["records"] == usecases_data.count(site.services, ADMIN, "dataset=private")
    assert_error(get(site, "/v1/datasets/private/summary", "stranger"), 403, "permission_denied")


def test_a_failed_job_can_be_retried_by_whoever_may_run_it(site: Site) -> None:
    from rollerblade.analyses.jobs import JobRecord

    key = f"retry{site.url[-5:]}".ljust(64, "0")
    job = JobRecord(
        key=key, analysis="brain-mask", version="1", dataset="private", slice_id="sub-01", state="failed",
        image_digest="sha256:x", params={}, sources=(a_t1w(site),), outputs=("o.nii.gz",), message="exit 1",
    )  # fmt: skip
    assert site.services.index.create_job(job=job)
    assert_error(httpx.post(f"{site.url}/v1/jobs/{key}/retry", headers=site.headers("stranger")), 404, "not_found")
    response = httpx.post(f"{site.url}/v1/jobs/{key}/retry", headers=site.headers("reader"))
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "planned" and "retried by reader" in response.json()["message"]
    stored = site.services.index.get_job(key=key)
    assert stored is not None and stored.state == "planned"
    again = httpx.post(f"{site.url}/v1/jobs/{key}/retry", headers=site.headers("reader"))
    assert "only a failed job" in assert_error(again, 400, "bad_input")


def test_the_page_and_every_answer_carry_a_same_origin_content_security_policy(site: Site) -> None:
    page = get(site, "/", None)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for response in (page, get(site, "/v1/me", "reader"), get(site, "/v1/me", None), get(site, "/ui/nothing.js")):
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy and "http" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
