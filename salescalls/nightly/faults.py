"""Whose fault a failed call is: the recording's (quarantine it, go on) or the run's (stop early,
leave every recording where it is, record the run as failed).

A worker classifies the exception it caught (`classify`), since the exception itself does not
travel back from a Dask worker; the flow keeps the verdicts in a `FailureStreak`, which also
catches what no type says: the same failure on several calls in a row (a script the product cannot
use for mono calls fails every mono call with one `ValueError`). Those calls are held, not
quarantined, until a call succeeds or fails differently; when the streak reaches its limit the run
stops and the held recordings stay in the inbox for the next run.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass, field

import duckdb

from salescalls.errors import InputError, SetupError
from salescalls.nightly.ledger import one_line
from salescalls.speech.audio import AudioError

__all__ = ["RECORDING", "SUSPECT", "SYSTEMIC", "Failure", "FailureStreak", "SystemicFault", "classify"]

RECORDING = "recording"  # the file's own content: quarantined at once, never counted in a streak
SUSPECT = "suspect"  # an unexpected error: the recording's, unless the next calls fail the same way
SYSTEMIC = "systemic"  # models, script, database, disk, installation: the run stops

_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EMFILE, errno.ENFILE}
_VARIABLE = re.compile(r"'[^']*'|\"[^\"]*\"|(?:/|\w:\\)\S*|\d+(?:\.\d+)?")  # names, paths, numbers


class SystemicFault(SetupError):
    """The run stopped on a fault that is not about one recording; the recordings stay in the inbox."""


@dataclass(frozen=True)
class Failure:
    kind: str  # RECORDING, SUSPECT or SYSTEMIC
    error_class: str  # what failed without what differs between files ("ValueError: empty vocabulary")
    reason: str  # one line: the quarantine reason or the run's message


def classify(error: BaseException) -> Failure:
    """The verdict on one call's exception, with its one-line reason."""
    error_class = f"{type(error).__name__}: {_VARIABLE.sub('…', str(error))}"[:160]
    if isinstance(error, AudioError):  # what is wrong with the file says it all
        return Failure(RECORDING, error_class, str(error))
    return Failure(_kind(error), error_class, f"processing failed: {one_line(error)}")


def _kind(error: BaseException) -> str:
    # InputError here is a user's input that is not the recording: the script, a setting, an option.
    if isinstance(error, SetupError | InputError | ImportError | duckdb.Error):
        return SYSTEMIC
    if isinstance(error, OSError) and error.errno in _DISK:
        return SYSTEMIC
    return SUSPECT


@dataclass
class FailureStreak:
    """Consecutive calls that failed the same unexpected way, held back from quarantine."""

    limit: int = 3  # this many in a row stop the run (Settings.same_failures)
    held: list[tuple[str, str | None, Failure]] = field(default_factory=list)  # (path, call_id, failure)

    def failed(self, path: str, call_id: str | None, failure: Failure) -> list[tuple[str, str | None, str]]:
        """Note a failed call; returns the calls to quarantine now as (path, call_id, reason).
        Raises SystemicFault when the failure is systemic or the streak reaches its limit."""
        if failure.kind == SYSTEMIC:
            raise SystemicFault(self._stopped(failure, "a fault of the run, not of the recording"))
        if failure.kind == RECORDING:
            return [(path, call_id, failure.reason)]
        released = self.ended() if self.held and self.held[-1][2].error_class != failure.error_class else []
        self.held.append((path, call_id, failure))
        if len(self.held) >= self.limit:
            raise SystemicFault(self._stopped(failure, f"{len(self.held)} calls in a row failed the same way"))
        return released

    def succeeded(self) -> list[tuple[str, str | None, str]]:
        """A call went through: the held failures were the recordings' own; quarantine them."""
        return self.ended()

    def ended(self) -> list[tuple[str, str | None, str]]:
        released = [(path, call_id, failure.reason) for path, call_id, failure in self.held]
        self.held.clear()
        return released

    def _stopped(self, failure: Failure, why: str) -> str:
        kept = len(self.held) if failure.kind != SYSTEMIC else 0
        left = f"; {kept} of them left in the inbox" if kept else "; the recordings are left in the inbox"
        return f"run stopped ({why}{left}): {failure.reason}; fix the cause and run again"
