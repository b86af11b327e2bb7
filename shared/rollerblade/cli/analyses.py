"""CLI commands for Analyses: ``analysis register/list/show``, ``run``, ``jobs``, ``logs``."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from rollerblade.analyses.jobs import JobRecord
from rollerblade.cli import output
from rollerblade.cli.output import context as _ctx
from rollerblade.pipeline import usecases_work


@click.group("analysis")
def analysis() -> None:
    """Register and inspect Analyses (containerised tools with a declared contract)."""


@analysis.command("register")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def register(folder: Path) -> None:
    """Validate FOLDER/analysis.yaml, build its image, pin the digest and store it."""
    ctx = _ctx()
    doc = usecases_work.register_analysis(ctx.services, ctx.principal, folder)
    click.echo(f"registered {doc['name']} {doc['spec']['version']}  {doc['image_digest']}  ({doc['executor']})")


@analysis.command("list")
def list_() -> None:
    """List registered Analyses."""
    ctx = _ctx()
    for doc in usecases_work.list_analyses(ctx.services, ctx.principal):
        spec = doc["spec"]
        click.echo(
            f"{doc['name']}\t{spec['version']}\t{spec['slice']}\t{doc['image_digest'][:19]}\towner {doc['owner']}"
        )


@analysis.command("show")
@click.argument("name")
def show(name: str) -> None:
    """Show a registered Analysis as JSON."""
    ctx = _ctx()
    _, doc = usecases_work.get_analysis(ctx.services, ctx.principal, name)
    click.echo(json.dumps(doc, indent=2))


@click.command("run")
@click.argument("name", metavar="ANALYSIS")
@click.option("--query", "query", default="", help="aBIDS query selecting the inputs (ANDed with the analysis' own).")
@click.option("--parallel", type=click.IntRange(min=1), default=None, help="Jobs at once [default: what fits].")
@click.option("--force", is_flag=True, help="Run jobs again even if the same key already succeeded.")
@click.option("--dry-run", is_flag=True, help="Only show the plan.")
@click.option(
    "--executor",
    type=click.Choice(["docker", "process", "gke"]),
    default=None,
    help="Where to run [env: ROLLERBLADE_EXECUTOR; default: docker].",
)
def run(name: str, query: str, parallel: int | None, force: bool, dry_run: bool, executor: str | None) -> None:
    """Run ANALYSIS on every slice the query selects, in parallel, skipping done work."""
    ctx = _ctx()
    if executor is not None:  # the flag overrides ROLLERBLADE_EXECUTOR; set before the stack opens
        ctx.settings = dataclasses.replace(ctx.settings, executor=executor)  # type: ignore[arg-type]
    state: dict[str, Any] = {"total": 0, "done": 0, "failed": 0, "t0": time.monotonic()}

    def on_plan(report: usecases_work.RunReport) -> None:
        todo = len(report.planned) - len(report.skipped)
        state["total"] = todo
        output.info(
            f"{name}: {len(report.planned)} jobs planned, {len(report.skipped)} already done (skipped), "
            f"{todo} to run, {report.parallel} at a time"
        )
        if dry_run:
            for job in report.planned:
                mark = "skip" if job.key in report.skipped else "run "
                click.echo(f"{mark}  {job.key[:12]}  {job.dataset}/{job.slice_id}  -> {', '.join(job.outputs)}")

    def progress(job: JobRecord) -> None:
        state["done"] += 1
        state["failed"] += job.state == "failed"
        elapsed = time.monotonic() - state["t0"]
        eta = elapsed / state["done"] * (state["total"] - state["done"])
        line = f"\r{name}: {state['done']}/{state['total']} done, {state['failed']} failed, ETA {eta:4.0f} s"
        if sys.stderr.isatty():
            click.echo(line, err=True, nl=False)
        if job.state == "failed":
            click.echo(f"\nfailed {job.key[:12]} {job.dataset}/{job.slice_id}: {job.message}", err=True)

    report = usecases_work.run_analysis(
        ctx.services,
        ctx.principal,
        name,
        query,
        workdir=ctx.settings.work_root,
        parallel=parallel,
        force=force,
        dry_run=dry_run,
        progress=progress,
        on_plan=on_plan,
    )
    if sys.stderr.isatty() and state["done"]:
        click.echo("", err=True)
    if dry_run:
        return
    click.echo(
        f"{name}: {len(report.succeeded)} succeeded, {len(report.failed)} failed, "
        f"{len(report.skipped)} skipped (already done)"
    )
    if report.failed:
        raise SystemExit(1)


@click.command("jobs")
@click.option("--analysis", "analysis_name", default=None, help="Only this Analysis.")
@click.option("--failed", is_flag=True, help="Only failed jobs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def jobs(analysis_name: str | None, failed: bool, as_json: bool) -> None:
    """List jobs, newest first."""
    ctx = _ctx()
    for job in usecases_work.list_jobs(
        ctx.services, ctx.principal, analysis=analysis_name, state="failed" if failed else None
    ):
        if as_json:
            click.echo(json.dumps(job.to_doc()))
        else:
            tail = f"  {job.message}" if job.message else ""
            click.echo(f"{job.key[:12]}\t{job.state}\t{job.analysis}\t{job.dataset}/{job.slice_id}{tail}")


@click.command("logs")
@click.argument("job", metavar="JOB")
def logs(job: str) -> None:
    """Print the stored logs of JOB (a job key or its first characters)."""
    ctx = _ctx()
    click.echo(usecases_work.job_logs(ctx.services, ctx.principal, job).decode("utf-8", "replace"), nl=False)


COMMANDS = (analysis, run, jobs, logs)
