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
from rollerblade.records import ObjectInfo


def read_facts(storage: Storage, key: str, parsed: BidsPath) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(file facts, image facts, error) of the object at ``key``; raises ``NotFound``."""
    if parsed.extension.endswith("/"):
        return _unit_facts(storage, key), {}, None
    if not nifti.is_nifti(parsed.extension):
        info = storage.stat(key=key)
        return _file_facts(key, info), {}, None
    info, head, tail = storage.read_edges(key=key, head=nifti.HEAD_BYTES, tail=nifti.TAIL_BYTES)
    file = _file_facts(key, info)
    try:
        image = nifti.header_facts(path=parsed.path, extension=parsed.extension, size=info.size, head=head, tail=tail)
    except InputError as e:
        return file, {}, str(e)
    return file, image, None


def _file_facts(key: str, info: ObjectInfo) -> dict[str, Any]:
    return {"key": key, "size": info.size, "md5": info.md5, "generation": info.generation}


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
