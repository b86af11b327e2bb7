"""Google-signed identity tokens (what Cloud Run and ``gcloud auth print-identity-token``
send): verified with ``google-auth`` against Google's published certificates.

The HTTP API calls the verifier for a bearer token that is not a Rollerblade token; it
returns the token's verified email, which ``pipeline/sharing.email_principal`` maps to a
user. Certificates are fetched once an hour, not per request. Checked: the signature
(one of the current certificates), the expiry (with 30 s of clock skew), the audience
(this deployment's URL), the issuer (Google) and that the email is verified.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping

from google.auth import exceptions as google_exceptions
from google.auth import jwt

from rollerblade.errors import TemporaryError, Unauthenticated

ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CERTS_TTL = 3600.0
CLOCK_SKEW = 30


class GoogleIdentity:
    """``verify(token) -> email`` for one audience."""

    def __init__(self, *, audience: str, certs_url: str) -> None:
        if not audience:
            raise ValueError("a Google identity verifier needs the audience (the service's URL)")
        self.audience, self.certs_url = audience, certs_url
        self._certs: Mapping[str, str] = {}
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _current_certs(self, *, refresh: bool = False) -> Mapping[str, str]:
        with self._lock:
            if refresh or not self._certs or time.monotonic() - self._fetched > CERTS_TTL:
                try:
                    with urllib.request.urlopen(self.certs_url, timeout=10) as response:  # noqa: S310 - a configured https URL
                        self._certs = dict(json.loads(response.read()))
                except (OSError, ValueError) as e:
                    raise TemporaryError(
                        f"cannot fetch Google's certificates from {self.certs_url}: {e}", delay=5
                    ) from e
                self._fetched = time.monotonic()
            return self._certs

    def verify(self, token: str) -> str:
        try:
            try:
                claims = jwt.decode(
                    token, certs=self._current_certs(), audience=self.audience, clock_skew_in_seconds=CLOCK_SKEW
                )
            except ValueError as e:
                if "Certificate for key id" not in str(e):
                    raise
                # Google rotated its keys since the last fetch
                claims = jwt.decode(
                    token,
                    certs=self._current_certs(refresh=True),
                    audience=self.audience,
                    clock_skew_in_seconds=CLOCK_SKEW,
                )
        except (ValueError, google_exceptions.GoogleAuthError) as e:
            raise Unauthenticated(f"invalid Google identity token: {e}") from e
        if claims.get("iss") not in ISSUERS:
            raise Unauthenticated(f"invalid Google identity token: issued by {claims.get('iss')!r}, not Google")
        email = claims.get("email")
        if not isinstance(email, str) or not email or claims.get("email_verified") is not True:
            raise Unauthenticated("the Google identity token carries no verified email address")
        return email


def verifier(*, audience: str, certs_url: str) -> Callable[[str], str]:
    return GoogleIdentity(audience=audience, certs_url=certs_url).verify
