"""A Python client of the HTTP API: query, download and share without a local store.

    from rollerblade.client import Client
    rb = Client("http://127.0.0.1:8080", token=os.environ["ROLLERBLADE_TOKEN"])
    print(rb.count("suffix=T1w AND participant.age>=60"))
    for record in rb.records("suffix=T1w"):          # every page, as --json documents
        print(record["dataset"], record["path"])
    rb.download("suffix=T1w AND sub=01", "selection/")  # valid BIDS, one folder per dataset

The CLI uses it for ``--server URL`` (token from ``ROLLERBLADE_TOKEN``). Errors come back
as :class:`RemoteError` carrying the API's status, type and message.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from rollerblade.errors import InputError, RollerbladeError


class RemoteError(RollerbladeError):
    """An error answer of the API (its one error shape), or no answer at all."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message if status else f"cannot reach the server: {message}")
        self.status = status
        self.kind = kind


class Client:
    def __init__(
        self, url: str, *, token: str | None = None, cloud_run_token: str | None = None, timeout: float = 60.0
    ) -> None:
        """``token``: a Rollerblade token (or a Google identity token for this API).
        ``cloud_run_token``: a Google identity token for Cloud Run's own invoker check
        (``gcloud auth print-identity-token``), sent as ``X-Serverless-Authorization`` so
        that ``Authorization`` still carries the Rollerblade token to the API."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if cloud_run_token:
            headers["X-Serverless-Authorization"] = f"Bearer {cloud_run_token}"
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url + "/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise RemoteError(0, "unreachable", f"{self.url}: {e}") from e
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise RemoteError(response.status_code, str(error["type"]), str(error["message"]))
            except (ValueError, KeyError, TypeError):
                raise RemoteError(response.status_code, "http_error", response.text[:500]) from None
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, path, **kwargs).json()

    # -- data ----------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        return dict(self._json("GET", "/me"))

    def datasets(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/datasets"))

    def count(self, query: str = "") -> int:
        return int(self._json("GET", "/count", params={"query": query})["count"])

    def records(self, query: str = "", *, page: int = 500, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Every record ``query`` selects (at most ``limit``), fetched page by page."""
        cursor: str | None = None
        sent = 0
        while True:
            params: dict[str, Any] = {"query": query, "limit": page if limit is None else min(page, limit - sent)}
            if cursor:
                params["cursor"] = cursor
            body = self._json("GET", "/records", params=params)
            for record in body["records"]:
                yield record
                sent += 1
            cursor = body["next"]
            if not cursor or (limit is not None and sent >= limit):
                return

    def record(self, dataset: str, path: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/records/{dataset}/{path}"))

    def download(self, query: str, destination: str | Path) -> dict[str, int]:
        """Write the selection under ``destination/<dataset>/``; files written per dataset.
        Refuses to write into a dataset folder that exists already."""
        target = Path(destination)
        data = self._call("POST", "/download", json={"query": query}).content
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            datasets = sorted({n.split("/", 1)[0] for n in names})
            for dataset in datasets:
                if (target / dataset).exists() and any((target / dataset).iterdir()):
                    raise InputError(f"{target / dataset} exists and is not empty; download into a new folder")
            for name in names:
                out = target / name
                if not out.resolve().is_relative_to(target.resolve()):
                    raise InputError(f"the server sent an unsafe file name: {name!r}")
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.read(name))
        return {d: sum(1 for n in names if n.startswith(d + "/")) for d in datasets}

    # -- analyses ------------------------------------------------------------------------
    def analyses(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/analyses"))

    def start_run(self, analysis: str, query: str = "", *, force: bool = False) -> dict[str, Any]:
        return dict(self._json("POST", "/runs", json={"analysis": analysis, "query": query, "force": force}))

    def progress(self, analysis: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/runs/{analysis}"))

    def jobs(self, *, analysis: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("analysis", analysis), ("state", state)) if v is not None}
        return list(self._json("GET", "/jobs", params=params)["jobs"])

    # -- sharing -------------------------------------------------------------------------
    def grant(self, user: str, right: str, target: str) -> dict[str, Any]:
        return dict(self._json("POST", "/grants", json={"user": user, "right": right, "target": target}))

    def revoke(self, user: str, right: str, target: str) -> dict[str, Any]:
        return dict(self._json("POST", "/revocations", json={"user": user, "right": right, "target": target}))

    def access(self, target: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/access/{target}"))

    def audit(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self._json("GET", "/audit", params={k: v for k, v in filters.items() if v is not None}))
