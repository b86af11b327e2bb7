"""How the CLI prints: records as text or JSON lines, reports, progress bars on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from rollerblade.records import ScanRecord

if TYPE_CHECKING:
    from rollerblade.cli.main import Context


def record_json(record: ScanRecord) -> str:
    """One JSON object per line: dataset, path, entities, meta, participant, session, image, file, error."""
    return json.dumps(record.to_doc(), separators=(",", ":"), sort_keys=False)


def record_line(record: ScanRecord) -> str:
    flag = "  [error]" if record.error else ""
    return f"{record.dataset}/{record.path}{flag}"


def info(message: str) -> None:
    click.echo(message, err=True)


@contextmanager
def progress_bar(label: str, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A stderr progress bar fed with (done, total); silent when stderr is not a terminal."""
    show = enabled and sys.stderr.isatty()
    state: dict[str, Any] = {"bar": None, "done": 0}

    def update(done: int, total: int) -> None:
        if not show:
            return
        if state["bar"] is None:
            bar: Any = click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True)
            bar.__enter__()
            state["bar"] = bar
        state["bar"].update(done - state["done"])
        state["done"] = done

    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)


def context() -> Context:
    """The command's :class:`~rollerblade.cli.main.Context` (settings, actor, the store)."""
    obj: Context = click.get_current_context().find_root().obj
    return obj
