"""Full-text search over transcripts (DuckDB's fts extension, BM25 ranking).

The index is built by the writer (the nightly run rebuilds it after storing new calls) and read
by read-only connections. DuckDB's fts index does not follow later writes: utterances stored after
the last build are searched by plain substring matching instead, so nothing is ever missed, and
the result says so. Without the extension (`duckdb-ext-fts` not installed) every search is a
substring search.
"""

from __future__ import annotations

import functools

import duckdb
import pandas as pd

from salescalls import i18n
from salescalls.db.sql import UNTIL_DAY, execute, optional
from salescalls.errors import UsageError

# The stemmer follows the calls' most common language; other languages still match on exact words.
STEMMERS = {"en": "english", "ru": "russian", "hu": "hungarian", "de": "german", "fr": "french", "es": "spanish"}


@functools.cache
def extension_directory() -> str | None:
    """Where the `duckdb-ext-fts` package keeps the extension, so it loads without a download."""
    try:
        import duckdb_ext
    except ImportError:
        return None
    from pathlib import Path

    return str(Path(next(iter(duckdb_ext.__path__))) / "extensions")


def load_fts(con: duckdb.DuckDBPyConnection) -> bool:
    """LOAD fts; False when it is not available here."""
    try:
        con.execute("LOAD fts")
        return True
    except duckdb.Error:
        return False


def build_index(con: duckdb.DuckDBPyConnection) -> dict:
    """(Re)build the index over every stored utterance (writer connection)."""
    if not load_fts(con):
        return {"indexed": 0, "stemmer": None, "note": "fts extension not available: searches use substring matching"}
    language = con.execute("SELECT language FROM calls GROUP BY language ORDER BY count(*) DESC LIMIT 1").fetchone()
    stemmer = STEMMERS.get(language[0] if language else "", "none")
    con.execute(
        "PRAGMA create_fts_index('utterances', 'utterance_id', 'text', "
        f"stemmer = '{stemmer}', stopwords = 'none', strip_accents = 1, lower = 1, overwrite = 1)"
    )
    indexed = con.execute("SELECT count(*) FROM fts_main_utterances.docs").fetchone()[0]
    return {"indexed": indexed, "stemmer": stemmer}


def has_index(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'fts_main_utterances' AND table_name = 'docs'"
        ).fetchone()[0]
    )


def _index_state(con: duckdb.DuckDBPyConnection) -> tuple[bool, int]:
    """(index usable, highest utterance_id it covers)."""
    if not has_index(con) or not load_fts(con):
        return False, 0
    covered = con.execute("SELECT coalesce(max(name), 0) FROM fts_main_utterances.docs").fetchone()[0]
    return True, int(covered)


FILTER = " AND ".join(
    [
        optional("c.rep", "rep"),
        optional("u.stage", "stage"),
        optional("u.role", "role"),
        optional("c.started_at", "since", "TIMESTAMP", ">="),
        UNTIL_DAY,
    ]
)
COLUMNS = "u.call_id, c.file, c.rep, c.started_at, u.start_s, u.role, u.stage, u.text"


def search(
    con: duckdb.DuckDBPyConnection,
    query: str,
    *,
    limit: int = 20,
    rep: str | None = None,
    stage: str | None = None,
    role: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> tuple[pd.DataFrame, str]:
    """Utterances with every word of `query`, best first, and a note on how they were found."""
    if not query.strip():
        raise UsageError(i18n._("the search query is empty: give the words to look for"))
    filters = {"rep": rep, "stage": stage, "role": role, "since": since, "until": until, "limit": limit}
    usable, covered = _index_state(con)
    if usable:
        ranked = execute(
            con,
            f"SELECT {COLUMNS}, m.score FROM (SELECT utterance_id, "
            "fts_main_utterances.match_bm25(utterance_id, $query, conjunctive := 1) AS score FROM utterances) m "
            "JOIN utterances u USING (utterance_id) JOIN calls c USING (call_id) "
            f"WHERE m.score IS NOT NULL AND {FILTER} ORDER BY m.score DESC, c.started_at DESC LIMIT $limit",
            filters,
            query=query,
        ).df()
        note = "ranked by BM25"
    else:
        ranked, covered = pd.DataFrame(), 0
        note = "no search index (the nightly run builds it): substring matches, newest first"
    # Utterances the index does not cover yet: substring matching, after the ranked ones.
    rest = execute(
        con,
        f"SELECT {COLUMNS}, NULL AS score FROM utterances u JOIN calls c USING (call_id) "
        "WHERE u.utterance_id > $covered AND contains(strip_accents(lower(u.text)), strip_accents(lower($query))) "
        f"AND {FILTER} ORDER BY c.started_at DESC, u.call_id, u.start_s LIMIT $limit",
        filters,
        covered=covered,
        query=query.strip(),
    ).df()
    if usable and not rest.empty:
        note += f"; {len(rest)} match(es) in calls stored after the index was built found by substring"
    frames = [frame for frame in (ranked, rest) if not frame.empty]
    found = pd.concat(frames, ignore_index=True).head(limit) if frames else rest
    return found, note
