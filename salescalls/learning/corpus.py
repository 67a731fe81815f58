"""Labelled transcripts that are not stored calls: training data before the first night.

A team often has labelled calls already (from a spreadsheet, an earlier tool, or a public corpus
of its kind of calls). `salescalls labels import FILE` stores them in `labelled_turns`, and
`salescalls train` learns from them beside the labels of stored calls. Two formats:

- JSON lines, one call per line, as `../shared/eval/dialogues/dev.jsonl`:
  {"call_id": "...", "language": "en", "turns": [{"speaker": "agent", "text": "...", "stage": "offer"}]}
  (`stage` null: the turn is context, not a label);
- CSV with a header naming at least a call column (`call`, `call_id` or `dialogue`), `text` and
  `stage` (or `label`); optional `speaker` (or `role`), `language` and `turn` (the order; file order
  otherwise). An empty stage is context.

Speakers named agent, rep, operator, seller, manager (ru/hu too) are the rep; customer, client,
caller, user, buyer are the customer; anything else (a person's name) is left unknown.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from salescalls.db.sql import transaction
from salescalls.errors import InputError
from salescalls.script.spec import OFF_SCRIPT, Script
from salescalls.script.stages import LabelledCall

REP_NAMES = {"agent", "rep", "operator", "seller", "salesperson", "manager", "менеджер", "оператор", "ügyintéző"}
CUSTOMER_NAMES = {"customer", "client", "caller", "user", "buyer", "клиент", "покупатель", "ügyfél", "vevő"}
CALL_COLUMNS = ("call", "call_id", "dialogue")
STAGE_COLUMNS = ("stage", "label")
SPEAKER_COLUMNS = ("speaker", "role")


class CorpusError(InputError):
    """A labelled-transcript file that cannot be read; the message names the file (and line)."""


@dataclass(frozen=True)
class Turn:
    dialogue: str  # the call's id in the file
    role: str  # rep, customer or ""
    text: str
    stage: str | None  # None: context only
    language: str | None


@dataclass(frozen=True)
class CorpusImport:
    dialogues: int  # calls stored (new or replaced)
    turns: int  # turns stored
    labelled: int  # of those, with a stage
    errors: tuple[str, ...]  # one line per rejected turn or line


def role_of(speaker: str | None) -> str:
    name = (speaker or "").strip().lower()
    return "rep" if name in REP_NAMES else "customer" if name in CUSTOMER_NAMES else ""


def is_corpus_file(path: Path, text: str) -> bool:
    """A labelled-transcript file rather than a review file (call_id + idx + label)."""
    if path.suffix.lower() == ".jsonl":
        return True
    if path.suffix.lower() != ".csv":
        return False
    header = {h.strip().lower() for h in next(csv.reader(io.StringIO(text)), [])}
    return "text" in header and bool(header & set(STAGE_COLUMNS)) and "idx" not in header


def read_turns(path: Path, text: str) -> tuple[list[Turn], list[str]]:
    """Every turn of the file, in order, and one error line per line that could not be read."""
    if path.suffix.lower() == ".jsonl":
        return _jsonl_turns(path, text)
    return _csv_turns(path, text)


def _jsonl_turns(path: Path, text: str) -> tuple[list[Turn], list[str]]:
    turns, errors = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            dialogue = str(record.get("call_id") or f"line{number}")
            for turn in record["turns"]:
                turns.append(
                    Turn(
                        dialogue,
                        role_of(turn.get("speaker") or turn.get("role")),
                        str(turn["text"]),
                        turn.get("stage") or None,
                        record.get("language"),
                    )
                )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
            errors.append(f"{path.name}:{number}: not a labelled call ({type(error).__name__}: {error})")
    return turns, errors


def _column(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    return next((lowered[n] for n in names if n in lowered), None)


def _csv_turns(path: Path, text: str) -> tuple[list[Turn], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    call, stage, speaker = (
        _column(header, CALL_COLUMNS),
        _column(header, STAGE_COLUMNS),
        _column(header, SPEAKER_COLUMNS),
    )
    text_column, language, order = (
        _column(header, ("text",)),
        _column(header, ("language",)),
        _column(header, ("turn",)),
    )
    missing = [
        label
        for label, column in (
            ("a call column (call, call_id or dialogue)", call),
            ("text", text_column),
            ("stage", stage),
        )
        if column is None
    ]
    if missing:
        raise CorpusError(f"{path.name}: missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    rows, errors = [], []
    for number, row in enumerate(reader, start=2):
        if None in row:  # more fields than the header: a comma that needed quotes, most likely
            errors.append(f"{path.name}:{number}: {len(header) + len(row[None])} fields, the header has {len(header)}")
            continue
        if not (row.get(text_column) or "").strip():
            errors.append(f"{path.name}:{number}: empty text")
            continue
        try:
            position = float(row[order]) if order and row.get(order) not in (None, "") else float(number)
        except ValueError:
            errors.append(f"{path.name}:{number}: turn must be a number, not {row[order]!r}")
            continue
        rows.append((str(row[call]).strip(), position, number, row))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    turns = [
        Turn(
            dialogue,
            role_of(row.get(speaker) if speaker else None),
            row[text_column].strip(),
            (row.get(stage) or "").strip() or None,
            (row.get(language) or "").strip() or None if language else None,
        )
        for dialogue, _, _, row in rows
    ]
    return turns, errors


def import_corpus(con: duckdb.DuckDBPyConnection, path: Path, script: Script) -> CorpusImport:
    """Store a labelled-transcript file for the script (replacing an earlier import of the same file)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise CorpusError(f"{path.name}: not UTF-8 text; save it as UTF-8 and import again") from None
    turns, errors = read_turns(path, text)
    allowed = set(script.stage_names) | {OFF_SCRIPT}
    rows, labelled, bad_stages = [], 0, {}
    position: dict[str, int] = {}
    for turn in turns:
        stage = turn.stage
        if stage is not None and stage not in allowed:
            bad_stages[stage] = bad_stages.get(stage, 0) + 1
            stage = None  # kept as context: the words still help the neighbours
        idx = position.get(turn.dialogue, 0)
        position[turn.dialogue] = idx + 1
        labelled += stage is not None
        rows.append([path.name, turn.dialogue, idx, turn.role, turn.text, stage, script.id, turn.language])
    for stage, count in sorted(bad_stages.items()):
        errors.append(
            f"{path.name}: '{stage}' ({count} turns) is not a stage of {script.id} "
            f"({', '.join(script.stage_names)}); those turns are kept as context"
        )
    now = datetime.now()
    with transaction(con):
        con.execute("DELETE FROM labelled_turns WHERE corpus = ?", [path.name])
        if rows:
            con.executemany(
                "INSERT INTO labelled_turns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [row + [now] for row in rows]
            )
    return CorpusImport(len(position), len(rows), labelled, tuple(errors))


def corpus_calls(con: duckdb.DuckDBPyConnection, script_id: str) -> list[LabelledCall]:
    """The imported labelled calls of a script (those with at least one label)."""
    rows = con.execute(
        "SELECT corpus, dialogue, role, text, stage, language FROM labelled_turns WHERE script_id = ? "
        "AND (corpus, dialogue) IN (SELECT corpus, dialogue FROM labelled_turns WHERE stage IS NOT NULL) "
        "ORDER BY corpus, dialogue, idx",
        [script_id],
    ).fetchall()
    calls, current, turns = [], None, []

    def flush():
        if turns:
            calls.append(
                LabelledCall(
                    tuple(t[2] for t in turns),
                    tuple(t[1] for t in turns),
                    tuple(t[3] if t[3] != OFF_SCRIPT else None for t in turns),
                    turns[0][4],
                    f"corpus:{current[0]}:{current[1]}",
                )
            )

    for corpus, dialogue, role, text, stage, language in rows:
        if (corpus, dialogue) != current:
            flush()
            current, turns = (corpus, dialogue), []
        turns.append((dialogue, role or "", text, stage, language))
    flush()
    return calls
