"""The bucket layout: which dataset an object key belongs to, and which keys are safe.

``datasets/<dataset>/<BIDS path>`` holds raw datasets and
``derivatives/<analysis>/<dataset>/<BIDS path>`` the derivative dataset an Analysis made
of one; in the index such a file is a record of ``<dataset>`` at path
``derivatives/<analysis>/<BIDS path>``, as if the derivative dataset were nested in it. Object names come from users and
from other systems, so every key is checked before it is used as a path anywhere:
no ``..`` or ``.`` segments, no absolute paths, no backslashes or control characters.
"""

from __future__ import annotations

import re

from rollerblade.errors import InputError, UnsafePathError
from rollerblade.records import DATASETS_PREFIX, DERIVATIVES_PREFIX

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_dataset_name(name: str) -> str:
    """A dataset name is a single safe path segment such as ``ds001`` or ``site-a_2024``."""
    if not _DATASET_NAME.fullmatch(name) or name in (".", ".."):
        raise InputError(
            f"invalid dataset name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_relative_path(path: str) -> str:
    """Reject anything that could escape the folder it is joined to."""
    if not path:
        raise UnsafePathError(path, "empty path")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise UnsafePathError(path, "absolute paths are not allowed")
    if "\\" in path:
        raise UnsafePathError(path, "backslashes are not allowed in object names")
    if _CONTROL.search(path):
        raise UnsafePathError(path, "control characters are not allowed in object names")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePathError(path, f"path segment {part!r} is not allowed")
    return path


def dataset_key(dataset: str, path: str) -> str:
    """The bucket key of a record path: ``datasets/<dataset>/<path>`` for raw files,
    ``derivatives/<analysis>/<dataset>/<rest>`` for ``path = derivatives/<analysis>/<rest>``."""
    check_relative_path(path)
    if path.startswith(DERIVATIVES_PREFIX):
        analysis, _, rest = path[len(DERIVATIVES_PREFIX) :].partition("/")
        return f"{DERIVATIVES_PREFIX}{analysis}/{check_dataset_name(dataset)}/{rest}"
    return f"{DATASETS_PREFIX}{check_dataset_name(dataset)}/{path}"


def derivative_prefix(analysis: str, dataset: str) -> str:
    """Where an Analysis writes the derivative dataset of one source dataset."""
    return f"{DERIVATIVES_PREFIX}{check_dataset_name(analysis)}/{check_dataset_name(dataset)}/"


def dataset_prefix(dataset: str) -> str:
    return f"{DATASETS_PREFIX}{check_dataset_name(dataset)}/"


def split_key(key: str) -> tuple[str, str, str | None]:
    """``datasets/ds1/sub-01/x.nii.gz`` -> (``ds1``, ``sub-01/x.nii.gz``, None);
    ``derivatives/brain-mask/ds1/sub-01/x`` -> (``ds1``, ``sub-01/x``, ``brain-mask``).

    Raises :class:`UnsafePathError` for unsafe keys and :class:`InputError` for keys
    outside ``datasets/`` and ``derivatives/``.
    """
    check_relative_path(key)
    if key.startswith(DERIVATIVES_PREFIX):
        analysis, _, rest = key[len(DERIVATIVES_PREFIX) :].partition("/")
        dataset, sep, path = rest.partition("/")
        if not analysis or not sep or not path:
            raise InputError(f"{key}: expected {DERIVATIVES_PREFIX}<analysis>/<dataset>/<path>")
        return check_dataset_name(dataset), path, check_dataset_name(analysis)
    if not key.startswith(DATASETS_PREFIX):
        raise InputError(
            f"{key}: not a dataset object (expected {DATASETS_PREFIX}<dataset>/<path> "
            f"or {DERIVATIVES_PREFIX}<analysis>/<dataset>/<path>)"
        )
    dataset, sep, path = key[len(DATASETS_PREFIX) :].partition("/")
    if not sep or not path:
        raise InputError(f"{key}: expected {DATASETS_PREFIX}<dataset>/<path>")
    return check_dataset_name(dataset), path, None
