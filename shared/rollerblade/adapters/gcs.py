"""The Storage port on a Google Cloud Storage bucket (or fake-gcs-server in tests).

The only module that imports ``google.cloud.storage``. Object generations and md5 come
from GCS itself; a ``put`` is atomic per object as in GCS. SDK errors are translated:
404 -> ``NotFound``, 412 -> ``TemporaryError`` (a concurrent writer), 429/5xx and
connection errors -> ``TemporaryError``; everything else is re-raised chained.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import requests.exceptions
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from rollerblade.abids.layout import check_relative_path
from rollerblade.errors import NotFound, TemporaryError
from rollerblade.ports import Storage
from rollerblade.records import ObjectInfo

T = TypeVar("T")
_RETRYABLE = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)


def _md5_hex(blob: Any) -> str | None:
    return base64.b64decode(blob.md5_hash).hex() if blob.md5_hash else None


class GcsStorage(Storage):
    def __init__(self, *, bucket: str, project: str, emulator_host: str | None = None, client: Any = None) -> None:
        if client is None:
            if emulator_host:
                client = storage.Client(
                    project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": emulator_host}
                )
            else:
                client = storage.Client(project=project)
        self._client = client
        self.bucket_name = bucket
        self._bucket = client.bucket(bucket)

    def __repr__(self) -> str:
        return f"GcsStorage(gs://{self.bucket_name})"

    def _call(self, key: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except gexc.NotFound:
            raise NotFound("object", key) from None
        except gexc.PreconditionFailed as e:
            raise TemporaryError(f"gs://{self.bucket_name}/{key} changed concurrently: {e}", delay=0.5) from e
        except _RETRYABLE as e:
            raise TemporaryError(f"Cloud Storage unavailable for gs://{self.bucket_name}/{key}: {e}", delay=2) from e

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (tests, first deployment)."""
        with contextlib.suppress(gexc.Conflict):
            self._call("", lambda: self._client.create_bucket(self.bucket_name))

    def _info(self, blob: Any) -> ObjectInfo:
        return ObjectInfo(
            key=blob.name, size=int(blob.size or 0), generation=int(blob.generation or 0), md5=_md5_hex(blob)
        )

    def put_bytes(self, *, key: str, data: bytes) -> ObjectInfo:
        blob = self._bucket.blob(check_relative_path(key))
        self._call(key, lambda: blob.upload_from_string(data, content_type="application/octet-stream"))
        return self._info(blob)

    def put_file(self, *, key: str, source: str) -> ObjectInfo:
        blob = self._bucket.blob(check_relative_path(key))
        self._call(key, lambda: blob.upload_from_filename(source, content_type="application/octet-stream"))
        return self._info(blob)

    def stat(self, *, key: str) -> ObjectInfo:
        blob = self._bucket.blob(check_relative_path(key))
        self._call(key, blob.reload)
        return self._info(blob)

    def read(self, *, key: str, start: int = 0, length: int | None = None) -> bytes:
        blob = self._bucket.blob(check_relative_path(key))
        if start < 0:
            size = self.stat(key=key).size
            start = max(0, size + start)
            if size == 0:
                return b""
        end = None if length is None else start + length - 1
        if length == 0:
            return b""
        try:
            return bytes(self._call(key, lambda: blob.download_as_bytes(start=start, end=end)))
        except gexc.RequestRangeNotSatisfiable:
            return b""

    def download(self, *, key: str, destination: str) -> None:
        blob = self._bucket.blob(check_relative_path(key))
        self._call(key, lambda: blob.download_to_filename(destination))

    def list(self, *, prefix: str) -> Iterator[ObjectInfo]:
        blobs = self._call(prefix, lambda: list(self._client.list_blobs(self.bucket_name, prefix=prefix)))
        return iter(sorted((self._info(b) for b in blobs), key=lambda o: o.key))

    def delete(self, *, key: str) -> None:
        blob = self._bucket.blob(check_relative_path(key))
        with contextlib.suppress(NotFound):
            self._call(key, blob.delete)
