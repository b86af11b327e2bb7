"""API tokens: made here, shown once, stored only as a SHA-256 digest.

A token reads ``rbt_<id>_<secret>``: the 16-hex ``id`` finds the stored record in one
lookup, the 256-bit ``secret`` is checked against the stored digest in constant time.
The secret is random, not a password, so one SHA-256 is enough (a slow hash would buy
nothing and cost every request).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from rollerblade.access.model import Token
from rollerblade.errors import Unauthenticated

PREFIX = "rbt_"
_SHAPE = re.compile(r"rbt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_token(user: str, *, now: float, expires: float = 0.0, label: str = "") -> tuple[str, Token]:
    """A fresh token for ``user``: (the text to show once, the record to store)."""
    token_id = secrets.token_hex(8)
    text = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    return text, Token(id=token_id, user=user, digest=digest(text), created=now, expires=expires, label=label)


def token_id(text: str) -> str:
    """The id of a well-formed token; ``Unauthenticated`` otherwise."""
    match = _SHAPE.fullmatch(text.strip())
    if match is None:
        raise Unauthenticated(
            "malformed token: expected rbt_<16 hex>_<43 characters> (from `rollerblade token create`)"
        )
    return match.group(1)


def verify(text: str, stored: Token | None, *, now: float) -> Token:
    """``stored`` if ``text`` is its token and it is neither revoked nor expired."""
    if stored is None or not hmac.compare_digest(digest(text.strip()), stored.digest):
        raise Unauthenticated("unknown token: it was never issued here (or was mistyped)")
    if stored.revoked:
        raise Unauthenticated(f"token {stored.id} was revoked")
    if stored.expires and now >= stored.expires:
        raise Unauthenticated(f"token {stored.id} has expired; make a new one with `rollerblade token create`")
    return stored
