"""Trackers: phrases and concepts a team follows in every call (competitor names, "discount",
"contract length"), listed in the script's `trackers:` section per language.

A tracker is found in an utterance when one of its phrases occurs in it as written, up to case,
punctuation and inflection: both are normalised the way the stage model reads text (spaCy tokens
and lookup lemmas, salescalls.text.nlp), so "скидку" finds "скидка" and "contracts" finds "contract";
a phrase word of MIN_STEM letters or more also finds the longer words it begins, for the forms
the lemma tables lack ("kedvezményt" for "kedvezmény").
Finding a tracker *by meaning* (the sentence encoder) was measured on the demo calls and left
out: for short concept phrases this encoder's similarities do not separate mentions from other
talk (a paraphrase of "discount" scored 0.28, the same as "about half of it").
"""

from __future__ import annotations

import duckdb
import pandas as pd

from salescalls.db.sql import PERIOD, CallFilter, execute
from salescalls.i18n import _, day, percent
from salescalls.insights.analytics import check_period
from salescalls.insights.stats import wilson_interval
from salescalls.insights.tables import format_table
from salescalls.script.spec import Script
from salescalls.text import nlp

CALLS_SQL = f"""
SELECT c.call_id, coalesce(c.rep, '(unknown)') AS rep, {PERIOD} AS period, c.language, c.file, c.started_at
FROM calls c JOIN call_results r USING (call_no)
WHERE {CallFilter.SQL}
"""


def _phrase_tokens(script: Script) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """tracker -> [(phrase, its normalised tokens)], every language's phrases."""
    found: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for name, by_language in script.trackers.items():
        for language, phrases in by_language.items():
            for phrase in phrases:
                tokens = tuple(nlp.normalise(phrase, language).split())
                if tokens:
                    found.setdefault(name, []).append((phrase, tokens))
    return found


MIN_STEM = 5  # a phrase word this long also matches longer words it starts (kedvezmény -> kedvezményt)


def _same(word: str, wanted: str) -> bool:
    # Lookup lemmas miss many inflected forms of agglutinative languages (Hungarian cases):
    # a long enough word also matches the words it begins.
    return word == wanted or (len(wanted) >= MIN_STEM and word.startswith(wanted))


def _contains(tokens: list[str], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(all(_same(tokens[i + j], phrase[j]) for j in range(n)) for i in range(len(tokens) - n + 1))


def find(con: duckdb.DuckDBPyConnection, script: Script, period: str | None = None, **filters) -> pd.DataFrame:
    """One row per utterance that mentions a tracker: call, rep, period, tracker, phrase, stage,
    role, time and text; `calls` in .attrs holds the calls searched (for rates)."""
    calls = execute(con, CALLS_SQL, calls=CallFilter(script.id, **filters), period=check_period(period)).df()
    columns = ["call_id", "rep", "period", "file", "tracker", "phrase", "stage", "role", "start_s", "text"]
    wanted = _phrase_tokens(script)
    hits = []
    if not calls.empty and wanted:
        by_call = calls.set_index("call_id")
        rows = con.execute(
            "SELECT call_id, role, stage, start_s, text FROM utterances "
            "WHERE call_id IN (SELECT unnest(?)) AND NOT backchannel ORDER BY call_id, idx",
            [calls["call_id"].tolist()],
        ).fetchall()
        for call_id, role, stage, start, text in rows:
            call = by_call.loc[call_id]
            tokens = nlp.normalise(text, call["language"]).split()
            for name, phrases in wanted.items():
                phrase = next((p for p, t in phrases if _contains(tokens, t)), None)
                if phrase is not None:
                    hits.append(
                        [call_id, call["rep"], call["period"], call["file"], name, phrase, stage, role, start, text]
                    )
    frame = pd.DataFrame(hits, columns=columns)
    frame.attrs["calls"] = calls
    return frame


def summary(hits: pd.DataFrame, by: str = "rep") -> pd.DataFrame:
    """Per tracker and `by` (rep or period): calls searched, calls that mention it, the rate with
    its 95 % interval, and the stages it came up in (most often first)."""
    calls = hits.attrs.get("calls", pd.DataFrame(columns=["call_id", by]))
    rows = []
    trackers = sorted(hits["tracker"].unique()) if not hits.empty else []
    for tracker in trackers:
        mine = hits[hits["tracker"] == tracker]
        for key, group in calls.groupby(by, sort=True, dropna=False):
            mentioned = mine[mine[by] == key] if key == key else mine[mine[by].isna()]
            n, k = len(group), mentioned["call_id"].nunique()
            stages = mentioned.drop_duplicates(["call_id", "stage"])["stage"].value_counts()
            rows.append(
                {
                    "tracker": tracker,
                    by: key,
                    "calls": n,
                    "mentioned": k,
                    "rate": k / n if n else float("nan"),
                    "stages": ", ".join(f"{stage} {count}" for stage, count in stages.items()),
                }
            )
    frame = pd.DataFrame(rows, columns=["tracker", by, "calls", "mentioned", "rate", "stages"])
    frame["low"], frame["high"] = wilson_interval(frame["mentioned"], frame["calls"])
    return frame


def summary_table(frame: pd.DataFrame, by: str = "rep") -> str:
    if frame.empty:
        return _("no tracker mentioned (the script's `trackers:` lists what to look for)")
    shown = frame.assign(
        rate=[
            f"{percent(r)} ({percent(lo)}-{percent(hi)})"
            for r, lo, hi in zip(frame["rate"], frame["low"], frame["high"], strict=True)
        ],
        **({by: frame[by].map(lambda p: day(p) if hasattr(p, "strftime") else p)} if by == "period" else {}),
    )
    columns = {"tracker": _("tracker"), by: _("rep") if by == "rep" else _("period")}
    columns |= {"mentioned": _("calls mentioning"), "calls": _("of calls"), "rate": _("rate")}
    return format_table(shown, {**columns, "stages": _("came up in")})
