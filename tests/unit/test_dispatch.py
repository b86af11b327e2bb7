"""The dispatcher holds the cyclic garbage collector off while it handles a batch (it
stopped rule evaluation every few hundred allocations) and always lets it run again."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from rollerblade.pipeline import dispatch
from rollerblade.records import Actor


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """A topic whose handler notes whether the collector runs, and fails on ``{"fail": 1}``."""
    seen: list[bool] = []

    def handle(services: object, events: Sequence[Mapping[str, Any]], actor: Actor) -> list[None]:
        seen.append(gc.isenabled())
        if any(e.get("fail") for e in events):
            raise RuntimeError("the handler failed")
        return [None] * len(events)

    monkeypatch.setitem(dispatch.HANDLERS, "probe", dispatch.Route(dict, handle))  # type: ignore[arg-type]
    enabled = gc.isenabled()
    yield seen
    if enabled:
        gc.enable()


def test_a_batch_runs_without_the_collector_which_runs_again_after(probe: list[bool]) -> None:
    assert gc.isenabled()
    assert dispatch.handle(None, "probe", [{"n": 1}, {"n": 2}], actor=Actor("t")) == [None, None]  # type: ignore[arg-type]
    assert probe == [False] and gc.isenabled()
    with pytest.raises(RuntimeError, match="the handler failed"):
        dispatch.handle(None, "probe", [{"fail": 1}], actor=Actor("t"))  # type: ignore[arg-type]
    assert probe == [False, False] and gc.isenabled()  # a failing batch does not leave it off


def test_a_collector_turned_off_by_someone_else_stays_off(probe: list[bool]) -> None:
    gc.disable()
    try:
        dispatch.handle(None, "probe", [{"n": 1}], actor=Actor("t"))  # type: ignore[arg-type]
        assert probe == [False] and not gc.isenabled()
    finally:
        gc.enable()
