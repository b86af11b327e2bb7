"""CLI commands for the event-driven pipeline: ``rules``, ``serve``, ``status``,
``events retry`` and ``rerun``."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from rollerblade.cli.output import context as _ctx
from rollerblade.errors import InputError
from rollerblade.pipeline import sharing, store_lock, usecases_work
from rollerblade.pipeline.messages import TOPICS
from rollerblade.pipeline.worker import BucketWatcher, Worker


@click.group("rules")
def rules() -> None:
    """Pipeline rules: what runs, and what is tagged, when scans and jobs arrive."""


@rules.command("apply")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def rules_apply(folder: Path) -> None:
    """Validate the rule files of FOLDER (*.yaml) and make them the rules in force.

    What is already indexed is evaluated again under the new rules (by ``serve``)."""
    ctx = _ctx()
    applied, datasets = usecases_work.apply_rules(ctx.services, ctx.principal, folder)
    click.echo(f"applied {len(applied)} rules from {folder}; {datasets} datasets queued for evaluation")
    for rule in applied:
        click.echo(f"  {rule.name}: {_summary(rule)}")


def _summary(rule: Any) -> str:
    parts = [rule.on + (f" of {rule.of}" if rule.of else "")]
    if rule.when:
        parts.append(f"when {rule.when}")
    if rule.run is not None:
        parts.append(f"run {rule.run.analysis}")
    if rule.requires:
        parts.append(f"requires {rule.requires}")
    if rule.tag is not None:
        parts.append(f"tag {','.join(rule.tag.tags)}" + (f" where {rule.tag.query}" if rule.tag.query else ""))
    return "; ".join(parts)


@rules.command("list")
def rules_list() -> None:
    """List the rules in force."""
    ctx = _ctx()
    for rule in usecases_work.list_rules(ctx.services, ctx.principal):
        click.echo(f"{rule.name}\t{_summary(rule)}")


@rules.command("show")
@click.argument("name")
def rules_show(name: str) -> None:
    """Show one rule as JSON (with the file and line it came from)."""
    ctx = _ctx()
    click.echo(json.dumps(usecases_work.get_rule(ctx.services, ctx.principal, name).to_doc(), indent=2))


@rules.command("explain")
@click.argument("target", metavar="DATASET/PATH")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rules_explain(target: str, as_json: bool) -> None:
    """Which rules match one record and why, and the jobs they would plan (nothing runs)."""
    dataset, sep, path = target.partition("/")
    if not sep or not path:
        raise click.BadParameter("expected DATASET/PATH", param_hint="TARGET")
    ctx = _ctx()
    entries = usecases_work.explain(ctx.services, ctx.principal, dataset, path)
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        click.echo("no rules applied (rollerblade rules apply DIR)")
    for entry in entries:
        mark = "MATCH" if entry["matches"] else "no   "
        click.echo(f"{mark} {entry['rule']}  ({entry['on']}; when {entry['when']})")
        if entry.get("why"):
            click.echo(f"      {entry['why']}")
        for job in entry["jobs"]:
            click.echo(f"      {job['state']}: {job['analysis']} on {job['slice']} (job {job['key'][:12]})")
        if entry.get("tags"):
            click.echo(f"      tags: {', '.join(entry['tags'])}")


@click.command("serve")
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between scans of the bucket folder (jobs' ends are picked up at once).",
)
@click.option("--parallel", type=click.IntRange(min=1), default=None, help="Jobs at once [default: what fits].")
@click.option(
    "--http",
    "http_address",
    default=None,
    metavar="HOST:PORT",
    help="Also serve the HTTP API there, e.g. 127.0.0.1:8080 (see docs/http-api.md).",
)
@click.option("--no-events", is_flag=True, help="Serve only the HTTP API (another process runs the pipeline).")
def serve(poll: float, parallel: int | None, http_address: str | None, no_events: bool) -> None:
    """Run the pipeline: index what lands in the bucket folder, evaluate the rules, run
    jobs within this machine's CPUs and memory, tag results; with --http, the HTTP API
    too. Ctrl-C / SIGTERM stops cleanly; after any stop, serve again resumes where it was."""
    if no_events and http_address is None:
        raise click.UsageError("--no-events leaves nothing to serve without --http HOST:PORT")
    stopping = threading.Event()

    def stop(signum: int, _: Any) -> None:
        click.echo(f"stopping ({signal.Signals(signum).name}): finishing the current step", err=True)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ctx = _ctx()
    stack = ctx.stack
    services = stack.services
    sharing.require_admin(services, ctx.principal, "serve")  # it runs everyone's pipeline
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("bidsschematools").setLevel(logging.WARNING)
    http = _start_http(services, ctx.settings, http_address) if http_address else None
    try:
        if no_events:
            stopping.wait()
        else:
            _serve_events(ctx, services, poll=poll, parallel=parallel, stopping=stopping)
    finally:
        if http is not None:
            http.should_exit = True
    click.echo("stopped", err=True)


def _serve_events(ctx: Any, services: Any, *, poll: float, parallel: int | None, stopping: threading.Event) -> None:
    with store_lock.exclusive_run(ctx.settings.work_root, role="serve") as owner:
        assert owner
        worker = Worker(services, actor=ctx.actor, slots=parallel, watcher=BucketWatcher(services), scan_every=poll)
        worker.stopping = stopping
        click.echo(
            f"serving {ctx.settings.bucket_root} (executor {ctx.settings.executor}); drop files under datasets/<name>/",
            err=True,
        )
        worker.start()
        worker.run(idle_sleep=poll)


def _start_http(services: Any, settings: Any, address: str) -> Any:
    """Serve the HTTP API from a thread; returns the uvicorn server (set ``should_exit``)."""
    import uvicorn

    from rollerblade.api.app import create_app

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise click.BadParameter(f"{address!r}: expected HOST:PORT, e.g. 127.0.0.1:8080", param_hint="--http")
    verify = None
    if settings.google_audience:  # the cloud deployment: Google identity next to Rollerblade tokens
        from rollerblade.adapters import google_identity

        verify = google_identity.verifier(audience=settings.google_audience, certs_url=settings.google_certs_url)
    app = create_app(services, verify_identity=verify)
    config = uvicorn.Config(app, host=host.strip("[]"), port=int(port), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise InputError(f"the HTTP API could not listen on {address} (is the port taken?)")
        time.sleep(0.05)
    click.echo(f"HTTP API on http://{address}/v1 (OpenAPI at http://{address}/openapi.json)", err=True)
    return server


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Queue depths, jobs by state, the last failures and dead letters (admins: it shows
    every dataset's jobs)."""
    ctx = _ctx()
    doc = usecases_work.pipeline_status(ctx.services, ctx.principal)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo("queues:  " + ", ".join(f"{t} {n}" for t, n in doc["queues"].items()))
    if "cluster" in doc:
        click.echo("cluster: " + ", ".join(f"{k} {v}" for k, v in doc["cluster"].items()))
    click.echo("jobs:    " + (", ".join(f"{s} {n}" for s, n in sorted(doc["jobs"].items())) or "none"))
    for failure in doc["last_failures"]:
        click.echo(f"failed:  {failure['key'][:12]} {failure['analysis']} {failure['slice']}: {failure['message']}")
    for topic, letters in doc["dead_letters"].items():
        for letter in letters:
            click.echo(f"dead:    {topic} {letter['id'][:12]} {json.dumps(letter['message'])[:100]}: {letter['error']}")


@click.group("events")
def events() -> None:
    """The durable event queue of the embedded store."""


@events.command("retry")
@click.option("--topic", type=click.Choice(TOPICS), default=None, help="Only this topic [default: all].")
def events_retry(topic: str | None) -> None:
    """Deliver dead-lettered messages again (after fixing what made them fail)."""
    ctx = _ctx()
    count = usecases_work.retry_dead_letters(ctx.services, ctx.principal, topic)
    click.echo(f"{count} dead-lettered messages queued again")


@click.command("rerun")
@click.argument("name", metavar="ANALYSIS")
@click.option("--query", "query", default="", help="aBIDS query selecting the inputs (ANDed with the analysis' own).")
@click.option("--force", is_flag=True, help="New job keys even for identical inputs (run everything again).")
def rerun(name: str, query: str, force: bool) -> None:
    """Plan ANALYSIS again over a selection and queue what must run; ``serve`` (or
    ``run``) runs it. Without --force only new or changed inputs run."""
    ctx = _ctx()
    start = time.monotonic()
    report = usecases_work.start_run(ctx.services, ctx.principal, name, query, force=force)
    click.echo(
        f"{name}: {len(report.planned)} jobs planned, {len(report.queued)} queued, "
        f"{len(report.done)} already done, {len(report.problems)} cannot run ({time.monotonic() - start:.1f} s)"
    )


COMMANDS = (rules, serve, status, events, rerun)
