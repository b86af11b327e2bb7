"""firestore.rules closes the database to every client but the deployment's services.

The rules are loaded into the session's Firestore emulator (``PUT
/emulator/v1/projects/P:securityRules``) for a project of their own: the emulator keeps
rules per project, so the rest of the suite, on ``gcp.project``, keeps the emulator's open
default (checked below). Requests go over REST as a browser or a script holding the
database's address would send them: with no identity, or as a signed-in Firebase user
(the emulator accepts unsigned ID tokens). ``Authorization: Bearer owner`` is the
emulator's admin identity, which stands for a service account (IAM bypasses rules).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from rollerblade.access.model import User
from rollerblade.adapters.firestore_access import FirestoreAccess
from tests.conftest import ROOT, GcpStack

RULES = (ROOT / "firestore.rules").read_text()
PROJECT = "rollerblade-rules-test"
OWNER = {"Authorization": "Bearer owner"}


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def signed_in(uid: str) -> dict[str, str]:
    """The header of a signed-in Firebase user of PROJECT (an unsigned ID token)."""

    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    now = int(time.time())
    claims = {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "sub": uid,
        "user_id": uid,
        "iat": now,
        "auth_time": now,
        "exp": now + 3600,
        "firebase": {"sign_in_provider": "password", "identities": {}},
    }
    return {"Authorization": f"Bearer {part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."}


@pytest.fixture(scope="module")
def closed(gcp: GcpStack) -> str:
    """The documents URL of PROJECT, with firestore.rules loaded."""
    rules_url = f"http://{gcp.firestore_host}/emulator/v1/projects/{PROJECT}:securityRules"
    status, answer = call("PUT", rules_url, {"rules": {"files": [{"content": RULES}]}})
    assert status == 200, answer
    status, answer = call("GET", rules_url)
    assert (status, answer["rules"]["files"][0]["content"]) == (200, RULES)
    return f"http://{gcp.firestore_host}/v1/projects/{PROJECT}/databases/(default)/documents"


def test_clients_can_neither_read_nor_write_an_existing_document(closed: str) -> None:
    doc = f"{closed}/t{uuid.uuid4().hex[:10]}_users/ada"
    fields = {"name": {"stringValue": "ada"}, "admin": {"booleanValue": True}}
    status, _ = call("PATCH", doc, {"fields": fields}, OWNER)
    assert status == 200

    for who in ({}, signed_in("ada")):
        status, answer = call("GET", doc, headers=who)
        assert (status, answer["error"]["status"]) == (403, "PERMISSION_DENIED"), answer
        status, _ = call("GET", doc.rsplit("/", 1)[0], headers=who)  # listing the collection
        assert status == 403
        status, _ = call("PATCH", doc, {"fields": {"admin": {"booleanValue": False}}}, who)
        assert status == 403
        status, _ = call("PATCH", f"{doc}-copy", {"fields": fields}, who)
        assert status == 403
        status, _ = call("DELETE", doc, headers=who)
        assert status == 403

    status, answer = call("GET", doc, headers=OWNER)  # the admin path reads it, unchanged
    assert (status, answer["fields"]) == (200, fields)
    status, _ = call("GET", f"{doc}-copy", headers=OWNER)
    assert status == 404


def test_the_deployments_services_are_not_affected(closed: str) -> None:
    """The server library authenticates as admin (on the emulator: Bearer owner)."""
    store = FirestoreAccess(project=PROJECT, prefix=f"t{uuid.uuid4().hex[:10]}_", emulator=True)
    stored, new = store.create_user(user=User(name="ada", created=1.0))
    assert (stored.admin, new) == (True, True)
    assert store.get_user(name="ada") == stored


def test_the_rules_stay_in_their_project(closed: str, gcp: GcpStack) -> None:
    """The rest of the suite shares this emulator under gcp.project: still open there."""
    doc = f"http://{gcp.firestore_host}/v1/projects/{gcp.project}/databases/(default)/documents/t{uuid.uuid4().hex[:10]}_x/d"
    status, answer = call("PATCH", doc, {"fields": {"a": {"integerValue": "1"}}})
    assert status == 200, answer
    status, answer = call("GET", doc)
    assert (status, answer["fields"]) == (200, {"a": {"integerValue": "1"}})
