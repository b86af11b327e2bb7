"""``rollerblade user|grant|revoke|access|token|audit``: users, sharing, API tokens, the audit log."""

from __future__ import annotations

import datetime
import json
import re

import click

from rollerblade.cli import output
from rollerblade.pipeline import sharing

_DURATION = re.compile(r"(\d+)([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _when(epoch: float) -> str:
    if not epoch:
        return "-"
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="seconds")


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r}: expected a number and a unit, e.g. 90d, 12h, 30m", param_hint="--expires")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _since(text: str | None) -> float:
    """``--since``: an ISO date/time or a duration back from now (``7d``)."""
    if text is None:
        return 0.0
    if _DURATION.fullmatch(text.strip()):
        return datetime.datetime.now(datetime.UTC).timestamp() - (_duration(text) or 0.0)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as e:
        raise click.BadParameter(
            f"{text!r}: expected e.g. 2026-12-01, 2026-12-01T09:00 or 7d", param_hint="--since"
        ) from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


@click.group("user")
def user() -> None:
    """Rollerblade users (the OS user becomes one on first use; the first one is admin)."""


@user.command("add")
@click.argument("name")
@click.option("--email", default="", help="Their Google identity (for the cloud deployment's HTTP API).")
@click.option("--admin", is_flag=True, help="Make them an admin (holds every right).")
def user_add(name: str, email: str, admin: bool) -> None:
    """Add user NAME (admins only)."""
    ctx = output.context()
    added = sharing.add_user(ctx.services, ctx.principal, name, email=email, admin=admin)
    click.echo(f"added user {added.name}" + (" (admin)" if added.admin else ""))


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def user_list(as_json: bool) -> None:
    """List users."""
    ctx = output.context()
    for u in sharing.list_users(ctx.services, ctx.principal):
        if as_json:
            click.echo(json.dumps(u.to_doc()))
        else:
            click.echo(f"{u.name}\t{'admin' if u.admin else 'user'}\t{u.email or '-'}\tsince {_when(u.created)}")


@click.command("grant")
@click.argument("user_name", metavar="USER")
@click.argument("right", metavar="RIGHT")
@click.argument("target", metavar="DATASET|ANALYSIS")
def grant(user_name: str, right: str, target: str) -> None:
    """Give USER a RIGHT on a dataset (read, write, manage) or an Analysis (run, manage).

    Each right includes the ones before it. Say dataset:NAME or analysis:NAME when a
    dataset and an Analysis share a name. Needs manage on it."""
    ctx = output.context()
    held = sharing.grant(ctx.services, ctx.principal, user_name, right, target)
    click.echo(f"{held.user} holds {held.right} on {held.kind} {held.resource}")


@click.command("revoke")
@click.argument("user_name", metavar="USER")
@click.argument("right", metavar="RIGHT")
@click.argument("target", metavar="DATASET|ANALYSIS")
def revoke(user_name: str, right: str, target: str) -> None:
    """Take RIGHT away from USER; they keep the right just below it (revoke read to remove
    all access). The last manager of something cannot lose manage."""
    ctx = output.context()
    kind, name = sharing.resolve_target(ctx.services, target, right)
    left = sharing.revoke(ctx.services, ctx.principal, user_name, right, target)
    click.echo(f"{user_name} now holds {left.right if left else 'nothing'} on {kind} {name}")


@click.group("access")
def access() -> None:
    """Who may do what."""


@access.command("show")
@click.argument("target", metavar="DATASET|ANALYSIS")
@click.option("--json", "as_json", is_flag=True, help="As one JSON object.")
def access_show(target: str, as_json: bool) -> None:
    """Who holds which right on a dataset or Analysis."""
    ctx = output.context()
    shown = sharing.access_show(ctx.services, ctx.principal, target)
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    click.echo(f"{shown['kind']} {shown['name']} (managers: {', '.join(shown['managers']) or 'none: admins only'})")
    for g in shown["grants"]:
        click.echo(f"  {g['user']}\t{g['right']}\tgranted by {g['granted_by']} at {_when(g['granted_at'])}")


@click.group("token")
def token() -> None:
    """API tokens for the HTTP API (Authorization: Bearer ...)."""


@token.command("create")
@click.option("--expires", default=None, metavar="DURATION", help="Lifetime, e.g. 90d, 12h [default: never].")
@click.option("--label", default="", help="What it is for (shown by token list).")
@click.option("--user", "for_user", default=None, help="For another user (admins only).")
def token_create(expires: str | None, label: str, for_user: str | None) -> None:
    """Make a token and print it once: it is stored only as a hash."""
    ctx = output.context()
    text, made = sharing.create_token(
        ctx.services, ctx.principal, user=for_user, expires_in=_duration(expires), label=label
    )
    output.info(f"token {made.id} for {made.user}, expires {_when(made.expires) if made.expires else 'never'}")
    output.info("it is shown only now: store it (e.g. export ROLLERBLADE_TOKEN=...)")
    click.echo(text)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def token_list(as_json: bool) -> None:
    """Your tokens (an admin's: everyone's), never their secrets."""
    ctx = output.context()
    for t in sharing.list_tokens(ctx.services, ctx.principal):
        if as_json:
            click.echo(json.dumps(t.public()))
            continue
        state = (
            "revoked"
            if t.revoked
            else "expired"
            if t.expires and t.expires < datetime.datetime.now().timestamp()
            else "active"
        )
        click.echo(
            f"{t.id}\t{t.user}\t{state}\tcreated {_when(t.created)}\texpires {_when(t.expires)}"
            f"\tlast used {_when(t.last_used)}\t{t.label}"
        )


@token.command("revoke")
@click.argument("token_id", metavar="ID")
def token_revoke(token_id: str) -> None:
    """Revoke token ID (see token list): it stops working at once."""
    ctx = output.context()
    revoked = sharing.revoke_token(ctx.services, ctx.principal, token_id)
    click.echo(f"revoked token {revoked.id} of {revoked.user}")


@click.command("audit")
@click.option("--user", "user_name", default=None, help="Only what this user did.")
@click.option("--dataset", default=None, help="Only what concerned this dataset.")
@click.option("--since", default=None, help="From this date/time (ISO) or this long ago (7d, 12h).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit(user_name: str | None, dataset: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """The audit log: grants, revokes, refusals, imports, downloads, runs, rules, tokens.

    Admins see everything; a dataset's managers its entries; others their own."""
    ctx = output.context()
    entries = sharing.audit_entries(
        ctx.services, ctx.principal, user=user_name, dataset=dataset, since=_since(since), limit=limit
    )
    for e in entries:
        if as_json:
            click.echo(json.dumps(e.to_doc()))
        else:
            target = f"{e.kind} {e.target}".strip()
            click.echo(f"{_when(e.time)}\t{e.actor}\t{e.outcome}\t{e.action}\t{target}\t{e.detail}")


COMMANDS = (user, grant, revoke, access, token, audit)
