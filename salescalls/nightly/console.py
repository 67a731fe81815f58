"""What Prefect prints on the console while the CLI runs the flow: one line per record.

Prefect's console handler prints every exception it logs with its whole traceback: a run that
stops on a missing model shows about 100 lines before the CLI's one-line reason. While
`brief_console()` is active, the console handlers print only each record's first line; the
tracebacks still reach Prefect's other handlers (the run's log on the Prefect server, which
`prefect flow-run logs` shows) and `salescalls --debug run` keeps them on the console too.

May import: the standard library and prefect.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["brief_console"]

# Loggers whose handlers Prefect's logging.yml points at its console handler.
_CONSOLE_LOGGERS = ("", "uvicorn", "fastapi")


class _FirstLine(logging.Formatter):
    """The wrapped formatter's text for a record without its traceback, cut to the first line."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        # The record is shared with the other handlers: hide its traceback for this one only.
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            text = self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        lines = text.splitlines() or [""]
        return lines[0] + (" [...]" if saved[0] else "")  # [...]: the traceback is in the run's log


@contextmanager
def brief_console() -> Iterator[None]:
    """Prefect's console handlers print one line per record until the block ends."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()
    handlers = {
        handler
        for name in _CONSOLE_LOGGERS
        for handler in logging.getLogger(name).handlers
        if isinstance(handler, PrefectConsoleHandler)
    }
    saved = {handler: handler.formatter for handler in handlers}
    for handler in handlers:
        handler.setFormatter(_FirstLine(handler.formatter))
    try:
        yield
    finally:
        for handler, formatter in saved.items():
            handler.setFormatter(formatter)
