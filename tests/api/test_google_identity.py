"""Google-signed identity tokens, verified by google-auth against certificates served here.

Google's certificate endpoint cannot be reached from this machine, so a local one on
127.0.0.1 serves a certificate we made; the tokens are signed with its key by
``google.auth.jwt.encode``, exactly as Google's are (RS256 with a key id). What runs is
the real verification path: fetch, signature, expiry, audience, issuer, email.
"""

from __future__ import annotations

import datetime
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from rollerblade.adapters.google_identity import GoogleIdentity
from rollerblade.errors import Unauthenticated
from rollerblade.pipeline import sharing
from tests.api.conftest import ADMIN, Site, serve

AUDIENCE = "https://rollerblade-api.example.run.app"


def make_key(name: str) -> tuple[bytes, bytes]:
    """(private key PEM, self-signed certificate PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def google() -> Iterator[dict[str, Any]]:
    """A certificate endpoint on 127.0.0.1 serving one key (``kid-1``) and counting fetches."""
    private, cert = make_key("google")
    state = {"certs": {"kid-1": cert.decode()}, "fetches": 0, "private": private}

    class Certs(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            state["fetches"] += 1
            body = json.dumps(state["certs"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Certs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/oauth2/v1/certs"
    yield state
    server.shutdown()
    server.server_close()


def token(private: bytes, *, kid: str = "kid-1", **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "sub": "1234567890",
        "email": "ada@lab.example",
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    return jwt.encode(crypt.RSASigner.from_string(private, key_id=kid), payload).decode()


def test_a_valid_token_gives_its_verified_email_and_certs_are_cached(google: dict[str, Any]) -> None:
    verify = GoogleIdentity(audience=AUDIENCE, certs_url=google["url"]).verify
    before = google["fetches"]
    assert verify(token(google["private"])) == "ada@lab.example"
    assert verify(token(google["private"], email="bob@lab.example")) == "bob@lab.example"
    assert google["fetches"] == before + 1  # fetched once, not per request


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"aud": "https://someone-else.run.app"}, "audience"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"iss": "https://evil.example"}, "not Google"),
        ({"email_verified": False}, "no verified email"),
    ],
)
def test_bad_claims_are_refused(google: dict[str, Any], claims: dict[str, Any], why: str) -> None:
    verify = GoogleIdentity(audience=AUDIENCE, certs_url=google["url"]).verify
    with pytest.raises(Unauthenticated, match=why):
        verify(token(google["private"], **claims))


def test_a_token_signed_by_another_key_is_refused(google: dict[str, Any]) -> None:
    forger, _ = make_key("forger")
    verify = GoogleIdentity(audience=AUDIENCE, certs_url=google["url"]).verify
    with pytest.raises(Unauthenticated, match="signature"):
        verify(token(forger))  # claims kid-1, signed with the forger's key
    with pytest.raises(Unauthenticated, match="invalid Google identity token"):
        verify(token(forger, kid="kid-9"))  # an unknown key id: certificates fetched again, still unknown


def test_the_api_maps_a_google_identity_to_a_user_by_email(embedded_site: Site, google: dict[str, Any]) -> None:
    services = embedded_site.services
    if services.guard.access.user_by_email(email="ada.google@lab.example") is None:
        sharing.add_user(services, ADMIN, "ada", email="ada.google@lab.example")
    verify = GoogleIdentity(audience=AUDIENCE, certs_url=google["url"]).verify
    server = serve(services, verify_identity=verify)
    try:
        mine = token(google["private"], email="ada.google@lab.example")
        me = httpx.get(server.url + "/v1/me", headers={"Authorization": f"Bearer {mine}"}, timeout=30)
        assert me.status_code == 200 and me.json()["name"] == "ada"
        stranger = token(google["private"], email="nobody@elsewhere.example")
        refused = httpx.get(server.url + "/v1/me", headers={"Authorization": f"Bearer {stranger}"}, timeout=30)
        assert refused.status_code == 401 and "is not a Rollerblade user" in refused.json()["error"]["message"]
        rb = embedded_site.tokens["reader"]  # Rollerblade tokens keep working next to Google's
        assert (
            httpx.get(server.url + "/v1/me", headers={"Authorization": f"Bearer {rb}"}, timeout=30).json()["name"]
            == "reader"
        )
    finally:
        server.stop()
