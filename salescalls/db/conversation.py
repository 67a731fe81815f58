"""Conversation metrics of a stored call, computed in SQL from its utterances.

Stored per call in call_results when the call is saved (utterances change only then), so the
analytics read them instead of recomputing windows over every utterance.

Definitions (also in the README): back-channels ("uh-huh") are listening, not talking, and are
left out. A turn is a run of one party's utterances with no reply between and pauses under
MONOLOGUE_GAP seconds; the rep's longest turn is the longest monologue, the customer's the longest
story. An interruption is an utterance that starts more than INTERRUPTION_OVERLAP seconds before
the other party's utterance ended. A question is a rep utterance that is one by its question mark
or by its words (salescalls.text.questions: recognisers drop question marks).
"""

from __future__ import annotations

import duckdb

from salescalls.text import questions

MONOLOGUE_GAP = 1.5  # seconds: one party's utterances closer than this, with no reply between, are one turn
INTERRUPTION_OVERLAP = 0.3  # seconds of talking over the other party's utterance that make an interruption

METRICS = (
    "rep_seconds",  # rep talk time, s
    "customer_seconds",  # customer talk time, s
    "talk_ratio",  # rep share of the talk time
    "longest_monologue",  # the rep's longest turn, s
    "longest_monologue_at",  # where it starts, s from the call's start
    "longest_customer_story",  # the customer's longest turn, s
    "rep_interruptions",  # rep utterances started over the customer
    "customer_interruptions",  # customer utterances started over the rep
    "first_interruption_at",  # when the rep first interrupted, s
    "rep_questions",  # rep utterances that are questions (salescalls.text.questions)
    "rep_words_per_minute",  # rep words per minute of rep talk
    "silence_share",  # share of the call in which nobody speaks
    "first_utterance_id",  # the call's utterance ids span this range: lookups of a call's
    "last_utterance_id",  # utterances skip the rest of the table
)

CONVERSATION_SQL = """
WITH spoken AS (
    SELECT u.call_id, u.idx, u.role, u.start_s, u.end_s, u.text,
           len(string_split(trim(u.text), ' ')) AS words
    FROM utterances u
    WHERE NOT u.backchannel AND u.role IN ('rep', 'customer')
      AND (CAST(? AS VARCHAR) IS NULL OR u.call_id = ?)
),
ordered AS (
    SELECT *,
           lag(role) OVER w AS previous_role,
           lag(end_s) OVER w AS previous_end,
           max(end_s) OVER (PARTITION BY call_id ORDER BY start_s, idx
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS speech_until
    FROM spoken
    WINDOW w AS (PARTITION BY call_id ORDER BY start_s, idx)
),
turns AS (  -- consecutive utterances of one party with no reply between and short pauses form a turn
    SELECT *, sum(CASE WHEN previous_role IS DISTINCT FROM role OR start_s - previous_end > ? THEN 1 ELSE 0 END)
                  OVER (PARTITION BY call_id ORDER BY start_s, idx) AS turn
    FROM ordered
),
turn_lengths AS (
    SELECT call_id, role, turn, min(start_s) AS started, max(end_s) - min(start_s) AS seconds
    FROM turns GROUP BY ALL
),
longest AS (
    SELECT call_id,
           max(seconds) FILTER (WHERE role = 'rep') AS longest_monologue,
           arg_max(started, seconds) FILTER (WHERE role = 'rep') AS longest_monologue_at,
           max(seconds) FILTER (WHERE role = 'customer') AS longest_customer_story
    FROM turn_lengths GROUP BY call_id
),
ids AS (
    SELECT call_id, min(utterance_id) AS first_utterance_id, max(utterance_id) AS last_utterance_id
    FROM utterances WHERE CAST(? AS VARCHAR) IS NULL OR call_id = ?
    GROUP BY call_id
),
per_call AS (
    SELECT call_id,
           sum(end_s - start_s) FILTER (WHERE role = 'rep') AS rep_seconds,
           sum(end_s - start_s) FILTER (WHERE role = 'customer') AS customer_seconds,
           count(*) FILTER (WHERE role = 'rep' AND previous_role = 'customer' AND previous_end - start_s > ?)
               AS rep_interruptions,
           count(*) FILTER (WHERE role = 'customer' AND previous_role = 'rep' AND previous_end - start_s > ?)
               AS customer_interruptions,
           min(start_s) FILTER (WHERE role = 'rep' AND previous_role = 'customer' AND previous_end - start_s > ?)
               AS first_interruption_at,
           count(*) FILTER (WHERE role = 'rep' AND {is_question}) AS rep_questions,
           sum(words) FILTER (WHERE role = 'rep') AS rep_words,
           -- seconds in which anyone speaks: overlapping utterances counted once
           sum(greatest(end_s - greatest(start_s, coalesce(speech_until, start_s)), 0)) AS speech_seconds
    FROM ordered GROUP BY call_id
)
SELECT p.call_id, p.rep_seconds, p.customer_seconds,
       p.rep_seconds / nullif(coalesce(p.rep_seconds, 0) + coalesce(p.customer_seconds, 0), 0) AS talk_ratio,
       l.longest_monologue, l.longest_monologue_at, l.longest_customer_story,
       p.rep_interruptions, p.customer_interruptions, p.first_interruption_at, p.rep_questions,
       p.rep_words / nullif(p.rep_seconds / 60, 0) AS rep_words_per_minute,
       greatest(1 - p.speech_seconds / nullif(c.duration, 0), 0) AS silence_share,
       i.first_utterance_id, i.last_utterance_id
FROM per_call p JOIN longest l USING (call_id) JOIN calls c USING (call_id) JOIN ids i USING (call_id)
""".replace("{is_question}", questions.SQL.format(text="text"))


def refresh(con: duckdb.DuckDBPyConnection, call_id: str | None = None) -> None:
    """Recompute the stored conversation metrics of one call, or of every call when call_id is None."""
    parameters = [call_id, call_id, MONOLOGUE_GAP, call_id, call_id] + [INTERRUPTION_OVERLAP] * 3 + [questions.PATTERN]
    assignments = ", ".join(f"{name} = m.{name}" for name in METRICS)
    con.execute(
        f"UPDATE call_results SET {assignments} FROM ({CONVERSATION_SQL}) m WHERE call_results.call_id = m.call_id",
        parameters,
    )
