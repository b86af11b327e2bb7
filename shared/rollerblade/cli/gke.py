"""``rollerblade gke``: what runs inside the cluster. ``stage-in`` and ``store-out`` are the
two containers around every Analysis in a job's pod; ``watch`` is the watcher Deployment,
which turns ended Jobs into ``job.ended`` events."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import click

from rollerblade.analyses.jobs import JobEnded
from rollerblade.cli.output import context as _ctx
from rollerblade.errors import InputError, NotFound
from rollerblade.pipeline.events import publish_all
from rollerblade.pipeline.jobflow import admit_waiting, reconcile
from rollerblade.pipeline.messages import JOBS_TOPIC
from rollerblade.pipeline.staging import stage_slice, store_outputs
from rollerblade.stack import open_storage


@click.group("gke")
def gke() -> None:
    """Inside the cluster: a job pod's staging containers, and the job watcher."""


@gke.command("stage-in")
@click.option("--slice", "slice_key", required=True, help="Storage key of the slice's list (the executor wrote it).")
@click.option(
    "--into", "into", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder (/input)."
)
def stage_in(slice_key: str, into: Path) -> None:
    """Copy a job's slice from the bucket into its pod's /input (read-only for the Analysis)."""
    storage = open_storage(_ctx().settings, os.environ)
    try:
        doc = json.loads(storage.read(key=slice_key))
    except NotFound:
        raise InputError(f"slice list {slice_key} is not in the bucket") from None
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    if not isinstance(inputs, dict):
        raise InputError(f"slice list {slice_key} has no 'inputs' mapping")
    start = time.monotonic()
    stage_slice(storage, {str(k): str(v) for k, v in inputs.items()}, {}, into)
    click.echo(f"staged {len(inputs)} files in {time.monotonic() - start:.1f} s", err=True)


@gke.command("store-out")
@click.option(
    "--from", "source", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder (/output)."
)
@click.option("--prefix", required=True, help="Storage prefix of the attempt's outputs.")
@click.option("--manifest", required=True, help="Storage key of the manifest to write (outputs and problems).")
def store_out(source: Path, prefix: str, manifest: str) -> None:
    """Store what the Analysis wrote to /output, then the manifest that says so."""
    storage = open_storage(_ctx().settings, os.environ)
    outputs, problems = store_outputs(storage, source, prefix)
    storage.put_bytes(key=manifest, data=json.dumps({"outputs": outputs, "problems": problems}).encode())
    click.echo(
        f"stored {len(outputs)} outputs under {prefix}" + (f"; {len(problems)} refused" if problems else ""), err=True
    )


@gke.command("watch")
@click.option("--reconcile-every", type=float, default=60.0, show_default=True, help="Seconds between reconciliations.")
@click.option("--once", is_flag=True, help="One pass (list, report, reconcile), then exit.")
def watch(reconcile_every: float, once: bool) -> None:
    """Follow the executor's Jobs; publish each end as a ``job.ended`` event, and turn jobs
    that vanished from the cluster into ``lost`` ends."""
    from rollerblade.adapters.gke_exec import GkeExecutor, JobWatcher

    ctx = _ctx()
    ctx.settings = dataclasses.replace(ctx.settings, executor="gke")  # what it watches, whatever the env says
    services = ctx.stack.services
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    executor = services.executor
    assert isinstance(executor, GkeExecutor)

    def publish(ended: list[JobEnded]) -> None:
        publish_all(services.bus, [e.to_message() for e in ended], topic=JOBS_TOPIC)
        for e in ended:
            click.echo(f"{e.key[:12]} attempt {e.attempt}: {e.outcome} {e.message}".rstrip(), err=True)

    watcher = JobWatcher(executor, publish)
    if once:
        watcher.relist()
        reconcile(services, older_than=reconcile_every)
        admit_waiting(services)
        return
    stop = threading.Event()

    def stopping(*_: object) -> None:
        stop.set()
        watcher.stopping.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    thread = threading.Thread(target=watcher.run, name="job-watch", daemon=True)
    thread.start()
    click.echo(f"watching Jobs in namespace {ctx.settings.gke_namespace}", err=True)
    while not stop.wait(reconcile_every):
        try:
            lost = reconcile(services, older_than=reconcile_every)
            if lost:
                click.echo(f"{lost} jobs vanished from the cluster: reported lost", err=True)
            admit_waiting(services)  # room under the in-flight limit (e.g. after raising it)
        except Exception as e:  # an outage: the next pass tries again
            click.echo(f"reconciling failed: {e}", err=True)
    thread.join(timeout=70)
    click.echo("stopped", err=True)


COMMANDS = (gke,)
