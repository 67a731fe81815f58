"""The bad-usage corpus: every command with the ordinary mistakes of a new user (files that are not
databases or not UTF-8, outputs that cannot be written, negative numbers, unknown names, reversed
dates). Each must end in a short message and a non-zero exit code, never a traceback, and leave
every file it was given as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from salescalls.cli import app

READ_COMMANDS = [  # commands that read the database, with the arguments they need
    ["dropoff"],
    ["advice"],
    ["reasons"],
    ["trackers"],
    ["compare-versions", "demo-broadband"],
    ["metrics"],
    ["profile", "Alex Morgan"],
    ["rating"],
    ["plan", "Alex Morgan"],
    ["runs"],
    ["search", "price"],
]


@pytest.fixture(scope="module")
def files(tmp_path_factory, truth_database) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    (folder / "not a database.duckdb").write_text("call notes, not a database\n", encoding="utf-8")
    (folder / "latin1.yaml").write_bytes('id: t\nversion: 1\nname: "caf\xe9"\nstages: []\n'.encode("latin-1"))
    (folder / "a file").write_text("x", encoding="utf-8")
    (folder / "inbox").mkdir()
    (folder / "calls.csv").write_text("call_id,file,rep\nc01,c01.ogg,Ann\n", encoding="utf-8")
    return {
        "notdb": folder / "not a database.duckdb",
        "latin1": folder / "latin1.yaml",
        "file": folder / "a file",
        "inbox": folder / "inbox",
        "csv": folder / "calls.csv",
        "db": truth_database,
        "folder": folder,
    }


def _cases(f: dict[str, Path]) -> list[tuple[list[str], int | None, str]]:
    """(arguments, expected exit code or None for any non-zero, words the message must have)."""
    db = str(f["db"])
    cases = [([*command, "--db", str(f["notdb"])], 1, "is not a DuckDB database") for command in READ_COMMANDS]
    cases += [
        (["run", str(f["inbox"]), "--db", str(f["notdb"])], 1, "is not a DuckDB database"),
        (["run", str(f["file"])], 1, "inbox is not a folder"),
        (["run", str(f["inbox"]), "--script", str(f["latin1"]), "--db", str(f["folder"] / "new.duckdb")], 1, "UTF-8"),
        (["script", "check", str(f["latin1"])], None, "not UTF-8 text"),
        (["export", str(f["file"]), "--db", db], 2, "is a file"),
        (["review", "--limit", "-3", "--db", db], 2, "--limit"),
        (["transcribe", str(f["file"]), "-o", str(f["folder"] / "no" / "such" / "x.txt")], 2, "no folder"),
        (["labels", "import", str(f["csv"]), "--db", db], 1, "no idx, label column"),
        (["dropoff", "--rep", "Nobody", "--db", db], 2, "the reps there are: Alex Morgan"),
        (["dropoff", "--segment", "lukewarm", "--db", db], 2, "client temperatures there are"),
        (["rating", "--campaign", "none such", "--db", db], 2, "campaigns there are"),
        (["dropoff", "--since", "2026-11-30", "--until", "2026-11-01", "--db", db], 2, "is after --until"),
        (["metrics", "--since", "yesterday", "--db", db], 2, "must be a date"),
        (["rating", "--period", "year", "--db", db], 2, "--period must be"),
        (["profile", "Nobody", "--db", db], 2, "no rep 'Nobody'"),
        (["plan", "Nobody", "--db", db], 2, "no rep 'Nobody'"),
        (["dropoff", "--db", str(f["folder"] / "missing.duckdb")], 1, "no database at"),
    ]
    return cases


def _digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_mistake_is_one_short_message_with_a_failing_exit_code(files, monkeypatch):
    monkeypatch.setenv("SALESCALLS_REPORT_DIR", "off")
    monkeypatch.setenv("SALESCALLS_WORK_DIR", str(files["folder"] / "work"))
    monkeypatch.setenv("SALESCALLS_QUARANTINE_DIR", str(files["folder"] / "quarantine"))
    before = _digest(files["folder"]) | _digest(files["db"].parent)
    runner = CliRunner()
    for arguments, code, says in _cases(files):
        result = runner.invoke(app, arguments)
        shown = " ".join(arguments)
        assert result.exit_code != 0, f"{shown}: exit 0\n{result.output}"
        assert code is None or result.exit_code == code, f"{shown}: exit {result.exit_code}\n{result.output}"
        assert isinstance(result.exception, SystemExit), f"{shown}: raised {result.exception!r}"
        assert "Traceback" not in result.output, f"{shown}: a traceback\n{result.output}"
        assert says in result.output, f"{shown}: {says!r} not said\n{result.output}"
        assert len(result.output.strip().splitlines()) <= 6, f"{shown}: too long\n{result.output}"
    after = _digest(files["folder"]) | _digest(files["db"].parent)
    damaged = [path for path in before if after.get(path) != before[path]]
    assert not damaged, damaged
    assert not list(files["folder"].glob("*.run.lock")), "a lock left behind"
