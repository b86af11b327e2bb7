"""Delete a dataset: its objects in storage, its derivatives, and its index entries.

Idempotent, so an interrupted delete is finished by running it again: storage goes
first (a record never outlives its object for long), the index last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from rollerblade.abids import layout
from rollerblade.errors import NotFound
from rollerblade.ports import Index, Storage
from rollerblade.records import DERIVATIVES_PREFIX, Actor


@dataclasses.dataclass(frozen=True)
class DeletePlan:
    """What deleting a dataset removes: every object key and the record count."""

    dataset: str
    keys: tuple[str, ...]
    records: int


def plan_delete(dataset: str, *, storage: Storage, index: Index) -> DeletePlan:
    """What :func:`delete_dataset` would remove; raises ``NotFound`` for an unknown name."""
    layout.check_dataset_name(dataset)
    keys = [o.key for o in storage.list(prefix=layout.dataset_prefix(dataset))]
    keys += [o.key for o in storage.list(prefix=DERIVATIVES_PREFIX) if o.key.split("/", 3)[2:3] == [dataset]]
    if not keys and index.get_dataset(name=dataset) is None:
        raise NotFound("dataset", dataset)
    return DeletePlan(dataset, tuple(keys), index.dataset_stats(name=dataset)["records"])


def delete_dataset(
    plan: DeletePlan,
    *,
    storage: Storage,
    index: Index,
    actor: Actor,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Remove the planned objects, then the dataset's records, metadata and registration."""
    del actor  # who may delete is checked here once access control exists (issue 10)
    for done, key in enumerate(plan.keys, start=1):
        storage.delete(key=key)
        if progress is not None and (done % 200 == 0 or done == len(plan.keys)):
            progress(done, len(plan.keys))
    index.delete_dataset(name=plan.dataset)
