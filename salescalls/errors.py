"""One error style for everything a user can act on.

A salescalls error is typed by who must act and its message is one line: what went wrong and
what to do about it (`no database at data/x.duckdb: run salescalls run INBOX first`). The CLI's
one handler prints it as `error: <message>` and exits with the error's `exit_code`: 2 when the
command was called wrongly (`UsageError`: an option's value, a name no stored call has, an
argument that is not the file or folder it must be), 1 when it could not be done (the content of
a file, the state of the database, the installation). `--debug` or SALESCALLS_DEBUG=1 shows the
traceback instead. The nightly flow decides
by the type whether a fault belongs to one recording (quarantine it, go on) or to the run (stop,
lose nothing). Each layer raises its own subclass (`AudioError`, `ScriptError`, ...), which also
keeps the built-in base (`ValueError`, `RuntimeError`) older callers catch.

May import: nothing of salescalls (every layer imports this module).
"""

from __future__ import annotations

__all__ = ["InputError", "SalescallsError", "SetupError", "UsageError"]


class SalescallsError(Exception):
    """An error a user can act on; str() is one line saying what to do."""

    exit_code = 1  # the CLI's exit status for it


class InputError(SalescallsError, ValueError):
    """Something the user gave is wrong: a file, a script, an option, a setting, a recording."""


class UsageError(InputError):
    """A command was called wrongly (an option's value, a name no stored call has); nothing was done."""

    exit_code = 2  # as for typer's own usage errors


class SetupError(SalescallsError, RuntimeError):
    """The installation or the machine is not ready: a model, a dependency, a lock held by a run."""
