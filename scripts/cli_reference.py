"""Write docs/cli-reference.md from the CLI's own --help (checked by tests/e2e/test_docs.py).

Usage: python scripts/cli_reference.py > docs/cli-reference.md
"""

from __future__ import annotations

import click

from rollerblade.cli.main import cli


def render() -> str:
    parts = ["# CLI reference", "", "Generated from `--help` by `scripts/cli_reference.py`; do not edit.", ""]
    ctx = click.Context(cli, info_name="rollerblade", terminal_width=100, help_option_names=["-h", "--help"])
    parts += ["## rollerblade", "", "```", cli.get_help(ctx), "```", ""]
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        sub = click.Context(command, info_name=name, parent=ctx, terminal_width=100)
        parts += [f"## rollerblade {name}", "", "```", command.get_help(sub), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
