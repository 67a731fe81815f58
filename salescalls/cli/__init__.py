"""The `salescalls` command line, one module per area; flows and notebooks call the same functions.

The commands are thin: they parse options, call the layers below (nightly, insights, report,
learning, speech) and print. Each area registers its commands on the groups in `common`
(`command` turns a typed salescalls error into one line and an exit code).

May import: everything (it is the top layer); commands import what they need when they run, so
`salescalls --help` starts fast.
"""

from __future__ import annotations

import sys

from salescalls.cli.common import app

# Importing an area registers its commands; `salescalls --help` lists them in this order.
# isort: off
from salescalls.cli import nightly, funnel, coaching, report, calls, learning, setup  # noqa: E402, F401
# isort: on

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry point
    import typer

    from salescalls.config import SettingsError

    try:
        sys.exit(app())
    except SettingsError as error:  # a bad SALESCALLS_* variable read before a command started
        typer.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
