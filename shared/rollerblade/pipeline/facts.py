"""Read a data file's storage facts and NIfTI header facts through the Storage port.

Only the first :data:`~rollerblade.abids.nifti.HEAD_BYTES` and the gzip trailer are read
for the header; the checksum comes from the storage (GCS keeps it, local storage
computes it). Directory-format units (``.ds/``, ``.ome.zarr/``) add up their members.
"""

from __future__ import annotations

import hashlib
from typing import Any

from rollerblade.abids import nifti
from rollerblade.abids.paths import BidsPath
from rollerblade.errors import InputError, NotFound
from rollerblade.ports import Storage


def read_facts(storage: Storage, key: str, parsed: BidsPath) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(file facts, image facts, error) of the object at ``key``; raises ``NotFound``."""
    if parsed.extension.endswith("/"):
        return _unit_facts(storage, key), {}, None
    info = storage.stat(key=key)
    file = {"key": key, "size": info.size, "md5": info.md5, "generation": info.generation}
    if not nifti.is_nifti(parsed.extension):
        return file, {}, None
    try:
        head = storage.read(key=key, length=nifti.HEAD_BYTES) if info.size else b""
        tail = storage.read(key=key, start=-nifti.TAIL_BYTES) if info.size >= nifti.TAIL_BYTES else b""
        image = nifti.header_facts(path=parsed.path, extension=parsed.extension, size=info.size, head=head, tail=tail)
    except InputError as e:
        return file, {}, str(e)
    return file, image, None


def _unit_facts(storage: Storage, key: str) -> dict[str, Any]:
    members = list(storage.list(prefix=key + "/"))
    if not members:
        raise NotFound("object", key + "/")
    digest = hashlib.md5(usedforsecurity=False)
    for member in members:
        digest.update(f"{member.key}\0{member.size}\0{member.generation}\n".encode())
    return {
        "key": key + "/",
        "size": sum(m.size for m in members),
        "md5": digest.hexdigest(),
        "generation": max(m.generation for m in members),
        "members": len(members),
    }
