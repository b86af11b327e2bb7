"""The project's one error family.

Every error a user can cause or meet derives from :class:`RollerbladeError`; entry points
(CLI, Cloud Functions, HTTP) map this family to their own output in exactly one place.
Errors carry their facts as attributes so callers never parse messages.

``TemporaryError`` / ``PermanentError`` decide retry versus give-up for event handlers:
a temporary error makes the bus redeliver later, a permanent one is recorded and acked.
"""

from __future__ import annotations


class RollerbladeError(Exception):
    """Root of every error raised on purpose by Rollerblade."""


class InputError(RollerbladeError, ValueError):
    """The user's input (a name, a file, a query, a setting) is wrong; fixing it fixes this."""


class BidsNameError(InputError):
    """A path in a dataset does not follow the BIDS naming rules."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class FileLineError(InputError):
    """A configuration file (``analysis.yaml``, a rule file) is invalid; says which file and line."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line


class QueryError(InputError):
    """An aBIDS query cannot be parsed or names a field that does not exist.

    ``position`` is the 0-based character offset of ``token`` in ``query``.
    """

    def __init__(
        self,
        message: str,
        *,
        query: str,
        position: int,
        token: str,
        suggestions: tuple[str, ...] = (),
    ) -> None:
        caret = " " * position + "^"
        hint = f"\n  did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"{message} at position {position} ({token!r})\n  {query}\n  {caret}{hint}")
        self.query = query
        self.position = position
        self.token = token
        self.suggestions = suggestions


class SettingsError(InputError):
    """A setting has an unknown name or a value of the wrong type."""


class UnsafePathError(InputError):
    """An object name or source path tries to leave its dataset (``..``, absolute, symlink)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class NotFound(RollerbladeError, LookupError):
    """A named thing (dataset, object, record) does not exist."""

    def __init__(self, what: str, name: str) -> None:
        super().__init__(f"{what} not found: {name}")
        self.what = what
        self.name = name


class AlreadyExists(RollerbladeError):
    """Creating something that exists already (e.g. importing into a taken dataset name)."""

    def __init__(self, what: str, name: str, hint: str = "") -> None:
        super().__init__(f"{what} already exists: {name}" + (f"; {hint}" if hint else ""))
        self.what = what
        self.name = name


class Unauthenticated(RollerbladeError):
    """The request carries no identity, or one that is expired, revoked, malformed or forged."""


class PermissionDenied(RollerbladeError, PermissionError):
    """The acting principal lacks a right on a dataset or Analysis (or an admin-only action).

    ``principal`` is who asked, ``right`` what was needed, ``kind``/``name`` on what."""

    def __init__(self, principal: str, right: str, kind: str, name: str, hint: str = "") -> None:
        target = f"{kind} {name!r}" if name else kind
        super().__init__(f"{principal} may not {right} {target}" + (f": {hint}" if hint else ""))
        self.principal = principal
        self.right = right
        self.kind = kind
        self.name = name


class TemporaryError(RollerbladeError):
    """A failure worth retrying later (service unavailable, lock contention)."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(RollerbladeError):
    """A failure that retrying cannot fix; the event is recorded and acknowledged."""
