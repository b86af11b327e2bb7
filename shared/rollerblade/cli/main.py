"""``rollerblade``: the command-line entry point.

Every command loads settings once, opens the stack, makes one call into the pipeline
and prints the result. :func:`main` maps the project's errors to one-line messages
(exit 1 for user errors, 2 for usage), never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from rollerblade import errors
from rollerblade.access.model import Principal
from rollerblade.cli import access as access_cli
from rollerblade.cli import analyses as analyses_cli
from rollerblade.cli import automation as automation_cli
from rollerblade.cli import gke as gke_cli
from rollerblade.cli import output
from rollerblade.client import Client
from rollerblade.pipeline import sharing, usecases_data
from rollerblade.pipeline.services import Services
from rollerblade.records import Actor, DatasetInfo, ScanRecord, default_actor
from rollerblade.settings import Settings
from rollerblade.stack import Stack, open_stack

REMOTE_COMMANDS = ("datasets", "query", "show", "download")


class Context:
    def __init__(self, settings: Settings, os_user: str, as_user: str | None = None, server: str | None = None) -> None:
        self.settings = settings
        self.os_user = os_user
        self.as_user = as_user
        self.server = server
        self._stack: Stack | None = None
        self._principal: Principal | None = None
        self._client: Client | None = None

    @property
    def remote(self) -> Client | None:
        """The API client when ``--server`` is given (token from ROLLERBLADE_TOKEN)."""
        if self.server and self._client is None:
            self._client = Client(
                self.server,
                token=os.environ.get("ROLLERBLADE_TOKEN"),
                cloud_run_token=os.environ.get("ROLLERBLADE_CLOUD_RUN_TOKEN"),
            )
        return self._client

    @property
    def stack(self) -> Stack:
        if self.server:
            raise click.UsageError(
                f"this command needs a local store; with --server only {', '.join(REMOTE_COMMANDS)} work"
            )
        if self._stack is None:
            self._stack = open_stack(self.settings, environ=os.environ)
        return self._stack

    @property
    def services(self) -> Services:
        return self.stack.services

    @property
    def principal(self) -> Principal:
        """Who acts: the OS user (a Rollerblade user from first use on), or ``--as USER``."""
        if self._principal is None:
            self._principal = sharing.local_principal(self.services, self.os_user, as_user=self.as_user)
        return self._principal

    @property
    def actor(self) -> Actor:
        return Actor(self.principal.name)

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        if self._client is not None:
            self._client.close()


pass_context = click.make_pass_decorator(Context)


class _Group(click.Group):
    """The one place where Rollerblade errors become CLI messages: one line, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.RollerbladeError as e:
            raise click.ClickException(str(e)) from e


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the embedded store [env: ROLLERBLADE_HOME; default: ~/.rollerblade].",
)
@click.option(
    "--as", "actor", default=None, metavar="USER", help="Act as this user (admins only) [default: the OS user]."
)
@click.option(
    "--server",
    default=None,
    metavar="URL",
    envvar="ROLLERBLADE_SERVER",
    help="Use a Rollerblade HTTP API instead of a local store (token: ROLLERBLADE_TOKEN) "
    f"[env: ROLLERBLADE_SERVER; commands: {', '.join(REMOTE_COMMANDS)}].",
)
@click.version_option(package_name="rollerblade")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, actor: str | None, server: str | None) -> None:
    """Rollerblade: store, index, query and download BIDS brain-imaging data."""
    settings = Settings.from_env(os.environ, home=home)
    ctx.obj = Context(settings, default_actor(), as_user=actor, server=server)
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@pass_context
def init(ctx: Context) -> None:
    """Create the embedded store (bucket folder, SQLite index, event queue)."""
    stack = ctx.stack
    output.info(f"store ready at {ctx.settings.home}")
    click.echo(str(stack.settings.home))


@cli.command("import")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dataset", "dataset", required=True, help="Name of the new dataset.")
@pass_context
def import_(ctx: Context, source: Path, dataset: str) -> None:
    """Import the BIDS folder SOURCE as a new dataset and index every file.

    An interrupted import (killed, machine restarted) is finished by running the same
    command again: files already stored are kept, the rest are copied and indexed.
    """
    stack = ctx.stack
    bars: dict[str, Any] = {}
    with output.progress_bar("uploading") as upload, output.progress_bar("indexing") as index_bar:
        bars["upload"], bars["index"] = upload, index_bar
        report = usecases_data.import_dataset(
            ctx.services,
            ctx.principal,
            source,
            dataset,
            progress=lambda stage, done, total: bars[stage](done, total),
            indexed_by_deployment=stack.indexed_by_deployment,
            lease=ctx.settings.import_lease,
            wait=ctx.settings.import_wait,
        )
    for path, why in report.skipped:
        output.info(f"skipped {path}: {why}")
    for path, error in report.errors:
        output.info(f"error: {error}" if error.startswith(path) else f"error: {path}: {error}")
    if report.resumed:
        output.info(f"finished the interrupted import of {report.dataset!r}")
    click.echo(
        f"imported {report.files} files into dataset {report.dataset!r}: {report.records} records, "
        f"{len(report.errors)} with errors, {report.warnings} with warnings, {len(report.skipped)} skipped"
    )
    if report.warnings:
        output.info(f"names breaking a BIDS rule: rollerblade query 'dataset={report.dataset} AND exists(warning)'")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
def datasets(ctx: Context, as_json: bool) -> None:
    """List the datasets you may read, with their record counts."""
    docs = (
        ctx.remote.datasets()
        if ctx.remote
        else [s.to_doc() for s in usecases_data.list_datasets(ctx.services, ctx.principal)]
    )
    for doc in docs:
        info, stats = DatasetInfo.from_doc(doc), {k: doc[k] for k in ("records", "errors", "warnings")}
        if as_json:
            click.echo(json.dumps(doc))
        else:
            name = info.description.get("Name", "")
            if info.state == "importing":
                name = f"[import unfinished: run it again to finish] {name}"
            click.echo(
                f"{info.name}\t{stats['records']} records\t{stats['errors']} errors\t{stats['warnings']} warnings"
                f"\towner {info.owner}\t{name}"
            )


@cli.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def delete(ctx: Context, name: str, yes: bool) -> None:
    """Delete dataset NAME: its files, its derivatives and its index entries.

    Asks for confirmation unless --yes is given. An interrupted delete is finished by
    running it again.
    """
    plan = usecases_data.plan_delete(ctx.services, ctx.principal, name)
    what = f"dataset {name!r}: {len(plan.keys)} files (derivatives included), {plan.records} records"
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(f"deleting {what} needs confirmation: run it in a terminal or pass --yes")
        click.confirm(f"Delete {what}?", abort=True, err=True)
    with output.progress_bar(f"deleting {name}") as bar:
        usecases_data.delete_dataset(ctx.services, ctx.principal, plan, progress=bar)
    click.echo(f"deleted {what}")


@cli.command("reindex")
@click.option("--dataset", "names", multiple=True, help="Only this dataset (repeatable) [default: all].")
@pass_context
def reindex_(ctx: Context, names: tuple[str, ...]) -> None:
    """Rebuild the index of datasets from what the store holds."""
    targets = list(names) or usecases_data.stored_datasets(ctx.services, ctx.principal)
    for name in targets:
        with output.progress_bar(f"reindexing {name}") as bar:
            report = usecases_data.reindex_dataset(
                ctx.services, ctx.principal, name, progress=bar, workers=ctx.settings.workers
            )
        if report.unfinished_import:
            output.info(f"{name}: its import is unfinished; the index holds only what was stored so far")
        click.echo(
            f"{name}: {report.records} records, {report.metadata} metadata files, "
            f"{len(report.errors)} errors, {report.removed} removed"
        )


@cli.command()
@click.argument("query", default="")
@click.option("--count", is_flag=True, help="Print only the number of matching records.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many records.")
@pass_context
def query(ctx: Context, query: str, count: bool, as_json: bool, limit: int | None) -> None:
    """Print the records an aBIDS QUERY selects (see docs/query-language.md).

    Example: rollerblade query 'suffix=T1w AND participant.age>=60'
    """
    if count and as_json:
        raise click.UsageError("--count and --json cannot be combined: --count prints one number")
    if ctx.remote:
        if count:
            click.echo(str(ctx.remote.count(query)))
            return
        for doc in ctx.remote.records(query, limit=limit):
            record = ScanRecord.from_doc(doc)
            click.echo(output.record_json(record) if as_json else output.record_line(record))
        return
    if count:
        click.echo(str(usecases_data.count(ctx.services, ctx.principal, query)))
        return
    for record in usecases_data.find(ctx.services, ctx.principal, query, limit=limit):
        click.echo(output.record_json(record) if as_json else output.record_line(record))


@cli.command()
@click.argument("target", metavar="DATASET/PATH")
@pass_context
def show(ctx: Context, target: str) -> None:
    """Show everything the index knows about one file, as JSON."""
    dataset, sep, path = target.partition("/")
    if not sep or not path:
        raise click.BadParameter("expected DATASET/PATH, e.g. ds1/sub-01/anat/sub-01_T1w.nii.gz", param_hint="TARGET")
    if ctx.remote:
        doc = ctx.remote.record(dataset, path)
    else:
        doc = usecases_data.show(ctx.services, ctx.principal, dataset, path)
    click.echo(json.dumps(doc, indent=2))


@cli.command()
@click.argument("query")
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
@pass_context
def download(ctx: Context, query: str, destination: Path) -> None:
    """Download what QUERY selects into DESTINATION, one valid BIDS folder per dataset."""
    if ctx.remote:
        written = ctx.remote.download(query, destination)
        if not written:
            output.info("the query selected no records; nothing written")
        for dataset, files in written.items():
            click.echo(f"{destination / dataset}\t{files} files")
        return
    with output.progress_bar("downloading") as bar:
        report = usecases_data.download(ctx.services, ctx.principal, query, destination, progress=bar)
    if not report.datasets:
        output.info("the query selected no records; nothing written")
    for dataset, files in report.datasets.items():
        click.echo(f"{destination / dataset}\t{files} files")


@cli.command()
@click.option(
    "--subjects",
    type=click.IntRange(2, 500),
    default=12,
    show_default=True,
    help="How many participants the generated cohort has.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the cohort and downloads [default: HOME/demo].",
)
@click.option(
    "--analyses",
    "analyses_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the example Analyses to run [default: analyses/ of this checkout].",
)
@click.option("--no-analyses", is_flag=True, help="Only build, import, query and download.")
@pass_context
def demo(ctx: Context, subjects: int, workdir: Path | None, analyses_dir: Path | None, no_analyses: bool) -> None:
    """Build a multi-site cohort from real brain images, import, query and download it,
    then run the example Analyses over it (Docker by default).

    The cohort and the download go to WORKDIR/cohort and WORKDIR/download, each marked
    with a .rollerblade-demo file. A later run empties only folders carrying that marker
    (or empty ones); if either folder holds anything else, the demo stops with an error
    and deletes nothing."""
    from rollerblade.demo import run as demo_run

    if analyses_dir is None and not no_analyses:
        checkout = Path(__file__).resolve().parents[3] / "analyses"
        if checkout.is_dir():
            analyses_dir = checkout
        else:
            output.info("no analyses/ folder next to this installation; pass --analyses DIR to run them")
    demo_run.run_demo(
        ctx.stack,
        principal=ctx.principal,
        subjects=subjects,
        workdir=workdir or ctx.settings.home / "demo",
        echo=click.echo,
        analyses_dir=None if no_analyses else analyses_dir,
    )


for _command in (*analyses_cli.COMMANDS, *automation_cli.COMMANDS, *access_cli.COMMANDS, *gke_cli.COMMANDS):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="rollerblade")


if __name__ == "__main__":
    main()
