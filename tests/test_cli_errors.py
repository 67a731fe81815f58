"""The bad-usage corpus: every command with the ordinary mistakes of a new user (files that are not
databases or not UTF-8, outputs that cannot be written, negative numbers, unknown names, reversed
dates). Each must end in a short message and a non-zero exit code, never a traceback, and leave
every file it was given as it was."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
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
    ["train"],
    ["adapt"],
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
        (["run", str(f["file"])], 2, "inbox is not a folder"),
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
        (["metrics", "--by", "team", "--db", db], 2, "--by must be rep or call"),
        (["trackers", "--by", "campaign", "--db", db], 2, "--by must be rep or period"),
        (["report", "--period", "year", "--db", db, "--out", str(f["folder"] / "r")], 2, "quarter or auto"),
        (["transcribe", str(f["file"]), "-f", "xml"], 2, "unknown format 'xml'"),
        (["review", "-f", "xml", "--db", db], 2, "unknown format 'xml'"),
        (["advice", "--stage", "pricing", "--db", db], 2, "no stage pricing"),
        (["advice", "--script-id", "nonesuch", "--db", db], 2, "the scripts there are: demo-broadband"),
        (["compare-versions", "demo-broadband", "--version", "99", "--db", db], 2, "no scored calls of"),
        (["search", " ", "--db", db], 2, "the search query is empty"),
        (["search", "price", "--rep", "Nobody", "--db", db], 2, "the reps there are: Alex Morgan"),
        (["labels", "import", str(f["folder"] / "missing.csv"), "--db", db], 2, "no such file"),
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


def test_a_bug_is_one_line_and_debug_shows_its_traceback(truth_database, monkeypatch):
    from salescalls.insights import funnel

    def broken(*args, **kwargs):
        raise KeyError("stage")

    monkeypatch.setattr(funnel, "dropoff", broken)
    runner = CliRunner()
    result = runner.invoke(app, ["dropoff", "--db", str(truth_database)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.startswith("error: unexpected KeyError: 'stage'") and "--debug" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    debugged = runner.invoke(app, ["--debug", "dropoff", "--db", str(truth_database)])
    assert isinstance(debugged.exception, KeyError)  # raised on: typer prints its traceback
    monkeypatch.setenv("SALESCALLS_DEBUG", "1")
    assert isinstance(runner.invoke(app, ["dropoff", "--db", str(truth_database)]).exception, KeyError)
    typed = runner.invoke(app, ["runs", "--db", str(truth_database.parent / "none.duckdb")])
    assert typed.exception is not None and "no database at" in str(typed.exception)


ROOT = Path(__file__).resolve().parents[1]


def test_a_run_stopped_by_missing_models_prints_no_prefect_traceback(tmp_path):
    """The whole command as a user runs it: Prefect's console lines stay one line each, the reason
    comes last, the run is recorded as failed and the recordings stay in the inbox."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("c01.ogg", "c02.ogg", "c03.flac"):
        shutil.copy(ROOT / "data" / "demo" / name, inbox / name)
    env = os.environ | {"SALESCALLS_MODELS_DIR": str(tmp_path / "no models"), "SALESCALLS_REPORT_DIR": "off"}
    env.pop("SALESCALLS_DEBUG", None)
    database = tmp_path / "calls.duckdb"
    command = [sys.executable, "-m", "salescalls.cli", "run", str(inbox), "--db", str(database)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
    printed = result.stdout + result.stderr
    assert result.returncode == 1, printed
    assert "Traceback" not in printed and 'File "' not in printed, printed
    assert len(printed.strip().splitlines()) < 25, printed
    assert "error: faster-whisper 'base' weights not found" in result.stderr
    assert sorted(p.name for p in inbox.iterdir()) == ["c01.ogg", "c02.ogg", "c03.flac"]
    runs = subprocess.run([*command[:3], "runs", "--db", str(database)], env=env, capture_output=True, text=True)
    assert runs.returncode == 3 and "failed" in runs.stdout and "weights not found" in runs.stdout
    debugged = subprocess.run([*command[:3], "--debug", *command[3:]], env=env, capture_output=True, text=True)
    assert debugged.returncode == 1 and "Traceback" in debugged.stderr  # --debug keeps them


@pytest.mark.parametrize(
    ("language", "prefix", "unknown_rep"),
    [("ru", "ошибка: ", "нет менеджера 'Nobody'"), ("hu", "hiba: ", "nincs 'Nobody' nevű értékesítő")],
)
def test_the_mistakes_are_told_in_the_teams_language(files, monkeypatch, language, prefix, unknown_rep):
    """The same corpus with SALESCALLS_UI_LANGUAGE: the same exit codes, no traceback, and the
    messages of salescalls itself in the team's language (typer's own option errors stay English)."""
    monkeypatch.setenv("SALESCALLS_REPORT_DIR", "off")
    monkeypatch.setenv("SALESCALLS_WORK_DIR", str(files["folder"] / "work"))
    monkeypatch.setenv("SALESCALLS_QUARANTINE_DIR", str(files["folder"] / "quarantine"))
    runner = CliRunner()
    translated = 0
    for arguments, _code, _says in _cases(files):
        english = runner.invoke(app, arguments)
        monkeypatch.setenv("SALESCALLS_UI_LANGUAGE", language)
        result = runner.invoke(app, arguments)
        monkeypatch.delenv("SALESCALLS_UI_LANGUAGE")
        shown = " ".join(arguments)
        assert result.exit_code == english.exit_code and result.exit_code != 0, shown
        assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), shown
        if english.output.startswith("error: "):
            assert result.output.startswith(prefix), f"{shown}: {result.output}"
            translated += result.output.removeprefix(prefix) != english.output.removeprefix("error: ")
    assert translated >= 20  # most messages are the team's words, not English ones behind a translated prefix
    monkeypatch.setenv("SALESCALLS_UI_LANGUAGE", language)
    result = runner.invoke(app, ["dropoff", "--rep", "Nobody", "--db", str(files["db"])])
    assert unknown_rep in result.output and "Alex Morgan" in result.output
