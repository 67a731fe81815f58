"""Analytics at scale: synthetic scored calls loaded into the product's schema, the product's
queries timed next to the same answers computed in pandas in the same run.

    python -m bench.scale                      # 1,000,000 calls, ~40 M utterances
    python -m bench.scale --calls 20000        # a quick look

The generator makes scored calls, not audio: reps with their own habits (some skip the
qualification, some rarely move to the close, some talk too much or use forbidden phrases), client
temperature changing how far calls get, a year of dates, 7 script stages with per-stage utterance
counts, alternating speakers with occasional monologues, interruptions and back-channels. Calls go
into the product's tables (schema.sql) and their conversation metrics are computed by the product's
own SQL (salescalls.db.conversation), so the load time includes what a real load would do.

Timed: loading (insert + metrics), and each query: the drop-off funnel, a rep's error profile,
the KPI ratings per month, and a rep's training plan. The pandas side gets the same tables already
in memory (reading them is not timed) and must produce the same numbers; the run checks it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import stamp, write_json
from salescalls.text.questions import is_question

STAGES = ("greeting", "qualification", "needs", "offer", "objection", "close", "farewell")
SEGMENTS = ("cold", "warm", "hot")
OUTCOMES = ("sale", "meeting", "callback", "refusal")
CAMPAIGNS = ("fibre-upgrade", "inbound-leads", "new-business", "retention", "spring-promo", "smb-mobile")
MEAN_UTTERANCES = (6, 9, 14, 10, 9, 7, 3)  # per stage of a call that reaches it
FORBIDDEN = "And for the first three months it's half price, a special discount just for you."
START = datetime(2025, 12, 1)


def _templates() -> tuple[list[str], np.ndarray]:
    """Texts by (stage, role, kind); returns the texts and the id of the first of each group of 8."""
    words = {
        "greeting": "calling from BrightLine business broadband",
        "qualification": "how many people work at your company and which provider you use",
        "needs": "the problems you have with your connection today",
        "offer": "our fibre plan with five hundred megabits and free installation",
        "objection": "the price and the two year contract term",
        "close": "booking the installation for next week",
        "farewell": "thanks for your time, goodbye",
    }
    texts, first = [], np.zeros((len(STAGES), 2, 2), dtype=np.int32)  # stage, role (0 rep), kind (1 question)
    for s, stage in enumerate(STAGES):
        for role in (0, 1):
            for kind in (0, 1):
                first[s, role, kind] = len(texts)
                for variant in range(8):
                    if role == 0 and kind == 1:
                        texts.append(f"Could we talk about {words[stage]}, option {variant}?")
                    elif role == 0:
                        texts.append(f"Let me tell you about {words[stage]}, point {variant}.")
                    elif kind == 1:
                        texts.append(f"What about {words[stage]}, question {variant}?")
                    else:
                        texts.append(f"We are fine with {words[stage]}, reply {variant}.")
    return texts + [FORBIDDEN, "Mhm."], first


def generate(calls: int, reps: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(calls, utterances, texts): numeric frames ready to insert; utterances refer to texts by id."""
    rng = np.random.default_rng(seed)
    n = calls
    # Reps' habits: most follow the script, some skip qualification, rarely close, talk a lot.
    skip_qualification = np.where(rng.random(reps) < 0.1, 0.6, 0.03)
    close_skill = np.clip(rng.beta(8, 2, reps), 0.3, 0.99)
    talk = rng.uniform(0.8, 1.6, reps)
    forbidden_rate = np.where(rng.random(reps) < 0.15, 0.08, 0.005)
    question_rate = rng.uniform(0.15, 0.5, reps)
    weight = rng.pareto(3, reps) + 1
    rep = rng.choice(reps, n, p=weight / weight.sum())
    segment = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    campaign = rng.integers(0, len(CAMPAIGNS), n)
    day = rng.integers(0, 365, n)
    started = np.datetime64(START) + (day * 86400 + rng.integers(8 * 3600, 19 * 3600, n)).astype("timedelta64[s]")
    started = np.sort(started)  # nightly runs store calls roughly in date order

    u = rng.random((n, 6))
    skipped = rng.random(n) < skip_qualification[rep]
    objection = rng.random(n) < 0.55
    closes = rng.random(n) < close_skill[rep]
    end = np.full(n, 5)  # index of the end stage
    end = np.where(closes, end, np.where(objection, 4, 3))  # no close attempt: the call ends before it
    end = np.where(objection & (u[:, 4] > 0.7), 4, end)
    end = np.where(u[:, 3] > 0.85, 3, end)
    end = np.where(u[:, 2] > 0.9, 2, end)
    end = np.where(~skipped & (u[:, 1] > 0.92), 1, end)
    end = np.where(u[:, 0] > np.array([0.75, 0.9, 0.95])[segment], 0, end)
    stage = np.arange(len(STAGES))
    reached = (stage[None, :] <= end[:, None]) | (stage[None, :] == 6)
    reached[:, 1] &= ~skipped
    reached[:, 4] &= objection
    counts = np.where(reached, 1 + rng.poisson(np.array(MEAN_UTTERANCES) - 1, (n, len(STAGES))), 0)

    outcome_p = np.array([[0.25, 0.25, 0.25, 0.25], [0.35, 0.25, 0.25, 0.15], [0.5, 0.2, 0.2, 0.1]])
    closed = end == 5
    drawn = (rng.random(n)[:, None] > np.cumsum(outcome_p[segment], axis=1)).sum(axis=1)
    outcome = np.where(closed, drawn, np.where(rng.random(n) < 0.75, 3, 2))
    ended_by_rep = closed | (~closes & (rng.random(n) < 0.5))
    forbidden = (rng.random(n) < forbidden_rate[rep]) & reached[:, 3]

    # Utterances, call by call and stage by stage.
    per_call = counts.sum(axis=1)
    total = int(per_call.sum())
    call_of = np.repeat(np.arange(n, dtype=np.int32), per_call)
    stage_of = np.repeat(np.tile(stage.astype(np.int8), n), counts.ravel())
    offsets = np.cumsum(per_call) - per_call
    idx = (np.arange(total) - np.repeat(offsets, per_call)).astype(np.int32)
    role = (idx % 2).astype(np.int8)  # rep opens, then turns alternate ...
    flip = rng.random(total) < 0.12  # ... except where one party says two things in a row
    role = np.where(flip & (idx > 0), 1 - role, role).astype(np.int8)
    backchannel = (role == 1) & (rng.random(total) < 0.06)
    rep_of = rep[call_of]
    seconds = np.where(role == 0, rng.lognormal(np.log(3.2 * talk[rep_of]), 0.5), rng.lognormal(np.log(2.6), 0.5))
    seconds = np.where(backchannel, 0.4, seconds)
    gap = np.where(rng.random(total) < 0.03, -0.6, rng.uniform(0.15, 0.9, total))
    step = seconds + gap
    clock = np.cumsum(step)
    start = clock - step - np.repeat(clock[offsets] - step[offsets], per_call)
    start = np.maximum(start, 0.0)
    end_s = start + seconds
    question = (role == 0) & (rng.random(total) < question_rate[rep_of])
    question |= (role == 1) & (rng.random(total) < 0.25)
    texts, first = _templates()
    template = first[stage_of, role, question.astype(np.int8)] + rng.integers(0, 8, total)
    template = np.where(backchannel, len(texts) - 1, template)
    offer_first = offsets + counts[:, :3].sum(axis=1)  # each call's first offer utterance
    said = offer_first[forbidden]
    template[said], role[said], backchannel[said] = len(texts) - 2, 0, False

    durations = np.maximum.reduceat(end_s, offsets) + 1.0 if total else np.zeros(n)
    calls_frame = pd.DataFrame(
        {
            "call_no": np.arange(n, dtype=np.int32),
            "rep": rep.astype(np.int32),
            "started_at": started,
            "duration": durations,
            "channels": np.where(rng.random(n) < 0.5, 2, 1).astype(np.int32),
            "segment": segment.astype(np.int8),
            "campaign": campaign.astype(np.int8),
            "crm_outcome": np.where(rng.random(n) < 0.9, outcome, -1).astype(np.int8),
            "end_stage": end.astype(np.int8),
            "skipped": skipped & (end > 1),
            "objection": objection,
            "ended_by_rep": ended_by_rep,
            "forbidden_idx": np.where(forbidden, offer_first - offsets, -1).astype(np.int32),
            "confidence": rng.beta(6, 3, n).astype(np.float32),
        }
    )
    utterances = pd.DataFrame(
        {
            "call_no": call_of,
            "idx": idx,
            "role": role,
            "start_s": start,
            "end_s": end_s,
            "template": template.astype(np.int16),
            "stage": stage_of,
            "confidence": rng.beta(8, 2, total).astype(np.float32),
            "backchannel": backchannel,
        }
    )
    return calls_frame, utterances, texts


def load(con, calls: pd.DataFrame, utterances: pd.DataFrame, texts: list[str]) -> dict[str, float]:
    """Insert generated calls into the product's tables and compute their stored metrics."""
    from salescalls.db import conversation, store
    from salescalls.script.spec import load_script

    timings = {}
    started = time.perf_counter()
    store.save_script(con, load_script(Path(__file__).resolve().parent.parent / "data" / "scripts" / "demo.yaml"))
    con.register("gen_calls", calls)
    con.register("gen_utterances", utterances)
    reps = [f"Rep {i:03d}" for i in range(int(calls["rep"].max()) + 1)]
    key = "md5(g.call_no::VARCHAR) || md5((g.call_no + 1000000000)::VARCHAR)"  # 64 hex, like the audio sha256
    con.execute(
        f"""
        INSERT INTO calls (call_id, file, external_id, rep, started_at, duration, channels, sample_rate, codec,
                           language, segment, campaign, crm_outcome, script_id, script_version, stage_model,
                           whisper_model, diarization, role_method, role_confidence, processed_at, scored_at)
        SELECT {key}, 'call-' || call_no || '.flac', 'crm-' || call_no, (?::VARCHAR[])[rep + 1], started_at,
               duration, channels, 8000, 'flac', 'en', (?::VARCHAR[])[segment + 1], (?::VARCHAR[])[campaign + 1],
               CASE WHEN crm_outcome >= 0 THEN (?::VARCHAR[])[crm_outcome + 1] END, 'demo-broadband', 1,
               'bench', 'base', CASE channels WHEN 2 THEN 'channels' ELSE 'pyannote' END,
               CASE channels WHEN 2 THEN 'channel' ELSE 'text' END, 0.9, now(), now()
        FROM gen_calls g ORDER BY g.call_no
        """,
        [reps, list(SEGMENTS), list(CAMPAIGNS), list(OUTCOMES)],
    )
    timings["calls"] = time.perf_counter() - started
    started = time.perf_counter()
    con.execute(
        f"""
        INSERT INTO utterances (call_id, idx, speaker, role, start_s, end_s, text, stage, confidence, backchannel)
        SELECT {key}, idx, CASE role WHEN 0 THEN 'ch0' ELSE 'ch1' END, CASE role WHEN 0 THEN 'rep' ELSE 'customer' END,
               start_s, end_s, (?::VARCHAR[])[template + 1], (?::VARCHAR[])[stage + 1], confidence, backchannel
        FROM gen_utterances g
        """,
        [texts, list(STAGES)],
    )
    timings["utterances"] = time.perf_counter() - started
    started = time.perf_counter()
    stage_list = list(STAGES)
    con.execute(
        f"""
        INSERT INTO call_results (call_id, call_no, end_stage, ended_by, detected_outcome, stages_reached,
                                  stages_skipped, out_of_order, forbidden, predicted_outcome, outcome_confidence,
                                  controlled)
        SELECT c.call_id, c.call_no, (?::VARCHAR[])[end_stage + 1],
               CASE WHEN ended_by_rep THEN 'rep' ELSE 'customer' END,
               NULL,
               list_filter(?::VARCHAR[], (s, i) -> (i - 1 <= end_stage OR i = 7)
                                                     AND NOT (i = 2 AND skipped) AND NOT (i = 5 AND NOT objection)),
               CASE WHEN skipped THEN ['qualification'] ELSE [] END, [],
               CASE WHEN forbidden_idx >= 0
                    THEN json_array(json_object('rule', 'unauthorised_discount', 'phrase', 'half price',
                                                'utterance', forbidden_idx, 'role', 'rep'))
                    ELSE '[]' END,
               CASE WHEN g.crm_outcome >= 0 THEN (?::VARCHAR[])[g.crm_outcome + 1] ELSE 'refusal' END, confidence, '[]'
        FROM gen_calls g JOIN calls c ON c.call_id = {key}
        """,
        [stage_list, stage_list, list(OUTCOMES)],
    )
    timings["results"] = time.perf_counter() - started
    started = time.perf_counter()
    conversation.refresh(con)
    store.refresh_reps(con)
    con.execute("CHECKPOINT")
    timings["metrics"] = time.perf_counter() - started
    con.unregister("gen_calls")
    con.unregister("gen_utterances")
    return timings


# ---- the same answers in pandas ---------------------------------------------------------------


def pandas_tables(con) -> dict[str, pd.DataFrame]:
    """The tables the queries read, in memory: call ids as integer codes and texts as categories, so
    pandas is not slowed by 40 M Python strings (reading them is not timed)."""
    calls = con.execute(
        "SELECT call_no, call_id, file, rep, started_at, segment, campaign, crm_outcome, script_id, script_version, "
        "stage_model FROM calls"
    ).df()
    results = con.execute("SELECT * EXCLUDE (call_id) FROM call_results").df()
    utterances = con.execute(
        "SELECT c.call_no, u.idx, u.role, u.start_s, u.stage, u.text, u.confidence, u.backchannel "
        "FROM utterances u JOIN calls c USING (call_id)"
    ).df()
    for column in ("role", "stage", "text"):
        utterances[column] = utterances[column].astype("category")
    return {"calls": calls, "results": results, "utterances": utterances}


def _joined(tables) -> pd.DataFrame:
    """Calls with their results: the join every query starts from (on the call number, as in DuckDB)."""
    return tables["calls"].merge(tables["results"], on="call_no")


def _outcome(calls: pd.DataFrame) -> pd.Series:
    from salescalls.records import MIN_CONFIDENCE

    model = calls["predicted_outcome"].where(calls["outcome_confidence"] >= MIN_CONFIDENCE)
    return calls["crm_outcome"].fillna(calls["detected_outcome"]).fillna(model).fillna("unknown")


def pandas_funnel(tables) -> pd.DataFrame:
    """funnel.dropoff: per script version and stage, with the stage models that labelled the calls."""
    from salescalls.db.sql import SUCCESS_OUTCOMES
    from salescalls.insights.stats import wilson_interval

    calls = _joined(tables).assign(outcome=lambda f: _outcome(f))
    script = ["script_id", "script_version"]
    position = {stage: i for i, stage in enumerate(STAGES)}
    sign_off, script_end = len(STAGES) - 1, len(STAGES) - 2
    calls["furthest"] = [
        max((position[s] for s in reached if position.get(s, sign_off) < sign_off), default=-1)
        for reached in calls["stages_reached"]
    ]
    calls["signed_off"] = [STAGES[sign_off] in reached for reached in calls["stages_reached"]]
    calls["complete"] = calls["end_stage"].map(position).eq(script_end) | calls["outcome"].isin(SUCCESS_OUTCOMES)
    occurred = calls[[*script, "stages_reached"]].explode("stages_reached").groupby(script + ["stages_reached"]).size()
    ended = calls.assign(
        by_customer=calls["ended_by"] == "customer",
        by_rep=calls["ended_by"] == "rep",
        dropped=~calls["complete"],
        dropped_by_customer=~calls["complete"] & (calls["ended_by"] == "customer"),
    )
    grouped = ended.groupby(script + ["end_stage"]).agg(
        ended_here=("call_no", "size"),
        dropped=("dropped", "sum"),
        ended_by_customer=("by_customer", "sum"),
        ended_by_rep=("by_rep", "sum"),
        dropped_by_customer=("dropped_by_customer", "sum"),
    )
    mix = ended.groupby(script + ["end_stage", "outcome"]).size()
    totals = calls.groupby(script).agg(calls=("call_no", "size"), stage_models=("stage_model", "unique"))
    frames = []
    for (script_id, version), total in totals.iterrows():
        mine = calls[(calls["script_id"] == script_id) & (calls["script_version"] == version)]
        frame = pd.DataFrame({"stage": list(STAGES)})
        key = [(script_id, version, stage) for stage in STAGES]
        frame["calls"], frame["stage_models"] = total["calls"], ", ".join(sorted(total["stage_models"]))
        frame["got_here"] = [
            int((mine["furthest"] >= i).sum())
            if i < sign_off
            else int(((mine["furthest"] == script_end) & mine["signed_off"]).sum())
            for i in range(len(STAGES))
        ]
        frame["occurred"] = occurred.reindex(key, fill_value=0).to_numpy()
        for column in ("ended_here", "dropped", "ended_by_customer", "ended_by_rep", "dropped_by_customer"):
            frame[column] = grouped[column].reindex(key, fill_value=0).to_numpy()
        frame["outcomes"] = [mix.loc[k].to_dict() if k in mix.index.droplevel(3) else {} for k in key]
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["completed"] = frame["ended_here"] - frame["dropped"]
    frame["drop_share"] = frame["dropped"] / frame["got_here"]
    frame["drop_low"], frame["drop_high"] = wilson_interval(frame["dropped"], frame["got_here"])
    return frame


def _errors(calls: pd.DataFrame) -> pd.DataFrame:
    from salescalls.insights.rep_errors import FEW_QUESTIONS, HIGH_TALK_RATIO, LONG_MONOLOGUE

    reached = calls["stages_reached"]
    offered = np.fromiter(("offer" in r for r in reached), bool, len(calls))
    closed = np.fromiter(("close" in r for r in reached), bool, len(calls))
    return pd.DataFrame(
        {
            "call_no": calls["call_no"],
            "rep": calls["rep"],
            "started_at": calls["started_at"],
            "skipped_required_stage": calls["stages_skipped"].str.len() > 0,
            "stages_out_of_order": calls["out_of_order"].str.len() > 0,
            "forbidden_phrase": calls["forbidden"] != "[]",
            "no_close_attempt": offered & ~closed,
            "long_monologue": calls["longest_monologue"].fillna(0) > LONG_MONOLOGUE,
            "talks_too_much": calls["talk_ratio"].fillna(0) > HIGH_TALK_RATIO,
            "few_questions": (reached.str.len() > 1) & (calls["rep_questions"].fillna(0) < FEW_QUESTIONS),
            "interrupts": calls["rep_interruptions"].fillna(0) > 0,
        }
    )


def pandas_error_counts(calls: pd.DataFrame) -> pd.DataFrame:
    from salescalls.insights.rep_errors import ERRORS

    errors = _errors(calls)
    counts = errors.groupby("rep")[list(ERRORS)].sum()
    counts.insert(0, "calls", errors.groupby("rep").size())
    return counts.reset_index()


def pandas_profile(tables, rep: str) -> pd.DataFrame:
    from salescalls.insights.rep_errors import profile_from_counts

    return profile_from_counts(pandas_error_counts(_joined(tables)), rep)


def pandas_ratings(calls: pd.DataFrame, period: str | None = None) -> pd.DataFrame:
    from salescalls.insights.scorecard import BALANCED_TALK, rate

    outcome = _outcome(calls)
    reached = calls["stages_reached"]
    offered = np.fromiter(("offer" in r for r in reached), bool, len(calls))
    closed = np.fromiter(("close" in r for r in reached), bool, len(calls))
    flags = pd.DataFrame(
        {
            "rep": calls["rep"],
            "period": calls["started_at"]
            .dt.to_period({"month": "M", "week": "W", "day": "D", "quarter": "Q"}[period])
            .dt.start_time
            if period
            else pd.NaT,
            "conversion_k": outcome.isin(["sale", "meeting"]),
            "conversion_n": outcome != "unknown",
            "stages_covered_k": calls["stages_skipped"].str.len() == 0,
            "stages_covered_n": True,
            "close_attempted_k": offered & closed,
            "close_attempted_n": offered,
            "clean_language_k": calls["forbidden"] == "[]",
            "clean_language_n": True,
            "balanced_talk_k": calls["talk_ratio"].between(*BALANCED_TALK),
            "balanced_talk_n": calls["talk_ratio"].notna(),
        }
    )
    counts = flags.groupby(["rep", "period"], dropna=False).sum().reset_index()
    counts.insert(2, "calls", flags.groupby(["rep", "period"], dropna=False).size().to_numpy())
    return rate(counts.sort_values(["rep", "period"], kind="stable").reset_index(drop=True))


def pandas_plan(tables, rep: str, examples: int = 2) -> list[dict]:
    """The training plan's gaps, example calls and contrasts, as coaching.training_plan finds them."""
    from salescalls.insights import coaching, scorecard
    from salescalls.insights.rep_errors import profile_from_counts

    calls, utterances = _joined(tables), tables["utterances"]
    profile = profile_from_counts(pandas_error_counts(calls), rep)
    rated = pandas_ratings(calls)
    mine = rated[rated["rep"] == rep]
    missed_names = [
        k.name for k in scorecard.KPI_TARGETS if len(mine) and mine.iloc[-1][f"{k.name}_status"] == "missed"
    ]
    missed = {scorecard.KPI_ERRORS[name]: name for name in missed_names if name in scorecard.KPI_ERRORS}
    gaps = profile[
        (profile["errors"] > 0) & (~(profile["rate"] <= profile["team_rate"]) | profile["error"].isin(missed))
    ]
    gaps = gaps.copy()
    gaps["difference"] = gaps["rate"] - gaps["team_rate"].fillna(0)
    gaps["missed_kpi"] = gaps["error"].map(missed)
    gaps = gaps.sort_values(
        ["flagged", "missed_kpi", "difference", "p_value"], ascending=[False, True, False, True], na_position="last"
    )
    must = gaps["missed_kpi"].notna() | gaps["flagged"]
    gaps = pd.concat([gaps[must], gaps[~must].head(max(0, coaching.PLAN_GAPS - int(must.sum())))])
    top = [r for r in scorecard.top_quartile(rated) if r != rep]
    errors = _errors(calls)
    by_no = calls.set_index("call_no")
    skipped = calls[(calls["rep"] == rep)]["stages_skipped"].explode().dropna().value_counts()
    focus_stage = sorted(skipped[skipped == skipped.max()].index)[0] if len(skipped) else None
    plan = []
    used_moments, used_contrasts = set(), set()
    own_moments = {}
    for error in sorted(gaps["error"], key=lambda e: e not in coaching.SPECIFIC_ERRORS):
        mine = errors[(errors["rep"] == rep) & errors[error]]
        mine = mine.assign(call_id=by_no.loc[mine["call_no"], "call_id"].to_numpy())
        chosen = mine.sort_values(["started_at", "call_id"], ascending=[False, True]).head(examples)
        spoken = utterances[utterances["call_no"].isin(chosen["call_no"]) & ~utterances["backchannel"]]
        moments = []
        for call_no in chosen["call_no"]:
            result = by_no.loc[call_no].to_dict()
            result["forbidden_idx"] = (
                json.loads(result["forbidden"])[0]["utterance"] if result["forbidden"] != "[]" else None
            )
            result["focus_stage"] = focus_stage if error == "skipped_required_stage" else None
            rows = spoken[spoken["call_no"] == call_no].sort_values("idx")
            rows = rows.astype({"role": str, "stage": str, "text": str}).to_dict("records")
            moment = coaching.locate(error, result, rows, list(STAGES))
            if moment is not None and (result["call_id"], float(moment["start_s"])) not in used_moments:
                used_moments.add((result["call_id"], float(moment["start_s"])))
                stage = coaching._contrast_stage(error, result, moment, "close")
                moments.append((result["call_id"], round(float(moment["start_s"]), 3), stage))
        own_moments[error] = moments
    for error in gaps["error"]:
        moments = own_moments[error]
        contrast = None
        stage = moments[0][2] if moments else (focus_stage if error == "skipped_required_stage" else None)
        if stage and top:
            good = errors[errors["rep"].isin(top) & ~errors[error]]
            good = good.assign(call_id=by_no.loc[good["call_no"], "call_id"].to_numpy())
            good = good.sort_values(["started_at", "call_id"], ascending=[False, True]).head(coaching.CONTRAST_CALLS)
            pool = utterances[
                utterances["call_no"].isin(good["call_no"])
                & (utterances["stage"] == stage)
                & (utterances["role"] == "rep")
                & ~utterances["backchannel"]
            ]
            pool = pool.assign(call_id=by_no.loc[pool["call_no"], "call_id"].to_numpy())
            pool = pool[[(c, i) not in used_contrasts for c, i in zip(pool["call_id"], pool["idx"], strict=True)]]
            if len(pool):
                wants = error in ("few_questions", "talks_too_much", "long_monologue")
                pool = pool.assign(
                    question=pool["text"].astype(str).map(is_question) & wants,
                    started_at=by_no.loc[pool["call_no"], "started_at"].to_numpy(),
                )
                best = pool.sort_values(
                    ["question", "confidence", "started_at", "call_id", "idx"],
                    ascending=[False, False, False, True, True],
                ).iloc[0]
                used_contrasts.add((best["call_id"], best["idx"]))
                contrast = (best["call_id"], round(float(best["start_s"]), 3))
        plan.append({"error": error, "examples": moments, "contrast": contrast})
    return plan


# ---- the run ---------------------------------------------------------------------------------


def _timed(function, repeats: int) -> tuple[float, float, object]:
    """(first run, median of the repeats after it, result) in seconds."""
    started = time.perf_counter()
    result = function()
    first = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return first, statistics.median(times) if times else first, result


def _peak_memory_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _build(calls: int, reps: int, path: Path, report: Path) -> None:
    from salescalls.db import store

    started = time.perf_counter()
    calls_frame, utterances, texts = generate(calls, reps)
    generated = time.perf_counter() - started
    print(f"generated {len(calls_frame):,} calls and {len(utterances):,} utterances in {generated:.1f} s", flush=True)
    with store.writer(path) as con:
        started = time.perf_counter()
        steps = load(con, calls_frame, utterances, texts)
        load_seconds = time.perf_counter() - started
    summary = {"generate_s": generated, "load_s": load_seconds, "steps": steps, "utterances": len(utterances)}
    report.write_text(json.dumps(summary))


def time_rescore(path: Path, models_dir: Path, baseline_calls: int) -> dict:
    """`salescalls rescore` on every stored call (in batches), against the call-by-call loop it
    replaced on the first `baseline_calls` calls, in the same run; both must store the same stages."""
    from salescalls.db import store
    from salescalls.learning import review
    from salescalls.pipeline import label_stages
    from salescalls.script import stage_versions
    from salescalls.script.spec import load_script

    script = load_script(Path(__file__).resolve().parent.parent / "data" / "scripts" / "demo.yaml")
    model = stage_versions.load_model(models_dir, script)
    with store.writer(path) as con:
        first = con.execute("SELECT call_id, language FROM calls ORDER BY call_id LIMIT ?", [baseline_calls]).fetchall()
        review.use_stored_vectors(
            con,
            model.classifier.encoder,
            [t for (t,) in con.execute("SELECT DISTINCT text FROM utterances").fetchall()],
        )
        started = time.perf_counter()
        one_by_one = {}
        for call_id, language in first:  # the loop rescore ran before it went in batches
            utterances = store.stored_utterances(con, call_id)
            review.use_stored_vectors(con, model.classifier.encoder, [u.text for u in utterances])
            scored, score = label_stages(utterances, script, model, language)
            store.save_rescored(con, call_id, scored, score, model.name, script)
            one_by_one[call_id] = [u.stage for u in scored]
        baseline_s = time.perf_counter() - started
        started = time.perf_counter()
        calls, _ = review.rescore(
            con, script, models_dir, progress=lambda n, total: print(f"\rrescore {n:,}/{total:,}", end="", flush=True)
        )
        batched_s = time.perf_counter() - started
        print()
        stored = store.stored_utterances_of(con, list(one_by_one))
    assert all([u.stage for u in stored[c]] == stages for c, stages in one_by_one.items()), "rescore differs"
    result = {
        "calls": calls,
        "seconds": round(batched_s, 1),
        "calls_per_s": round(calls / batched_s, 1),
        "one_by_one_calls": len(first),
        "one_by_one_calls_per_s": round(len(first) / baseline_s, 1),
        "speedup": round((calls / batched_s) / (len(first) / baseline_s), 1),
    }
    print(
        f"rescore: {calls:,} calls in {batched_s / 60:.1f} min ({result['calls_per_s']:,.0f} calls/s); "
        f"call by call {result['one_by_one_calls_per_s']:,.0f} calls/s; {result['speedup']}x"
    )
    return result


def main(argv: list[str] | None = None) -> dict:
    from salescalls.db import store
    from salescalls.insights import coaching, funnel, rep_errors, scorecard

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each query after the first")
    parser.add_argument("--db", type=Path, help="database file (default: a temporary one, deleted after)")
    parser.add_argument("--json", default="bench/results/scale.json")
    parser.add_argument("--no-report", action="store_true", help="skip timing the HTML report's build")
    parser.add_argument("--rescore", action="store_true", help="also time rescoring every call (a retrain)")
    parser.add_argument("--rescore-baseline", type=int, default=300, help="calls rescored one by one to compare")
    args = parser.parse_args(argv)

    workdir = tempfile.TemporaryDirectory(prefix="salescalls-scale-")
    path = args.db or Path(workdir.name) / "scale.duckdb"
    path.unlink(missing_ok=True)
    # Generating and loading run in a child process, so their memory peak is measured apart from the queries'.
    report = Path(workdir.name) / "load.json"
    child = multiprocessing.get_context("spawn").Process(target=_build, args=(args.calls, args.reps, path, report))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"generating or loading failed (exit code {child.exitcode})")
    built = json.loads(report.read_text())
    generated, load_seconds, steps, n_utterances = (
        built["generate_s"],
        built["load_s"],
        built["steps"],
        built["utterances"],
    )
    load_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    size_gb = path.stat().st_size / 2**30
    print(f"loaded in {load_seconds:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in steps.items())}); {size_gb:.2f} GB")

    with store.reader(path) as con:
        # The rep whose plan is timed: the one skipping required stages most (a plan with content).
        rep = con.execute(
            "SELECT c.rep FROM calls c JOIN call_results r USING (call_id) GROUP BY c.rep "
            "ORDER BY avg((len(r.stages_skipped) > 0)::INT) DESC, c.rep LIMIT 1"
        ).fetchone()[0]
        queries = {
            "funnel": lambda: funnel.dropoff(con),
            "rep profile": lambda: rep_errors.error_profile(con, rep),
            "ratings by month": lambda: scorecard.ratings(con, period="month"),
            "training plan": lambda: coaching.training_plan(con, rep),
        }
        duck = {name: _timed(query, args.repeats) for name, query in queries.items()}
        site = None
        if not args.no_report:  # the whole site without audio (there are no recordings): every rep's plan
            from salescalls.report import site as report

            site = report.build(path, Path(workdir.name) / "report", report.ReportOptions(audio=False))
            print(f"report: {len(site.pages):,} pages in {site.seconds:.1f} s", flush=True)
        duck_peak = _peak_memory_gb()
        tables = pandas_tables(con)
    pandas_queries = {
        "funnel": lambda: pandas_funnel(tables),
        "rep profile": lambda: pandas_profile(tables, rep),
        "ratings by month": lambda: pandas_ratings(_joined(tables), "month"),
        "training plan": lambda: pandas_plan(tables, rep),
    }
    panda = {name: _timed(query, args.repeats) for name, query in pandas_queries.items()}

    # Both sides must give the same answers.
    d_funnel, p_funnel = duck["funnel"][2].set_index("stage"), panda["funnel"][2].set_index("stage")
    for column in ("got_here", "occurred", "ended_here", "dropped", "completed"):
        assert (d_funnel[column] == p_funnel[column]).all(), column
    assert d_funnel["outcomes"].tolist() == p_funnel["outcomes"].tolist()
    columns = ["errors", "calls", "team_errors", "flagged"]
    assert duck["rep profile"][2][columns].equals(panda["rep profile"][2][columns])
    d_rate, p_rate = duck["ratings by month"][2], panda["ratings by month"][2]
    assert d_rate["rating"].fillna(0).tolist() == p_rate["rating"].fillna(0).tolist()
    assert np.allclose(d_rate["conversion"].fillna(-1), p_rate["conversion"].fillna(-1))
    plan = duck["training plan"][2]
    d_plan = [
        {
            "error": row["error"],
            "examples": [m.call_id for m in row["examples"]],
            "contrast": (row["contrast"].call_id, round(row["contrast"].at, 3)) if row["contrast"] else None,
        }
        for row in plan.to_dict("records")
    ]
    p_plan = [
        {"error": g["error"], "examples": [m[0] for m in g["examples"]], "contrast": g["contrast"]}
        for g in panda["training plan"][2]
    ]
    assert d_plan == p_plan, (d_plan, p_plan)

    rows = []
    for name in queries:
        rows.append(
            {
                "query": name,
                "duckdb_first_s": duck[name][0],
                "duckdb_s": duck[name][1],
                "pandas_s": panda[name][1],
                "speedup": panda[name][1] / duck[name][1],
            }
        )
    summary = {
        **stamp(),
        "calls": args.calls,
        "utterances": n_utterances,
        "reps": args.reps,
        "generate_s": generated,
        "load_s": load_seconds,
        "load_steps_s": steps,
        "database_gb": size_gb,
        "peak_rss_generate_and_load_gb": load_peak,
        "peak_rss_duckdb_queries_gb": duck_peak,
        "peak_rss_with_pandas_gb": _peak_memory_gb(),
        "duckdb_memory_limit": os.environ.get("SALESCALLS_DB_MEMORY", "DuckDB default (80 % of RAM)"),
        "rep": rep,
        "queries": rows,
        "report_s": site and site.seconds,
        "report_pages": site and len(site.pages),
        "same_answers": True,
    }
    print(f"\n{args.calls:,} calls, {n_utterances:,} utterances; load {load_seconds:.1f} s; database {size_gb:.2f} GB")
    print(f"{'query':18} {'DuckDB first':>13} {'DuckDB':>9} {'pandas':>9} {'speed-up':>9}")
    for row in rows:
        print(
            f"{row['query']:18} {row['duckdb_first_s']:12.3f}s {row['duckdb_s']:8.3f}s {row['pandas_s']:8.3f}s "
            f"{row['speedup']:8.1f}x"
        )
    if site is not None:
        print(f"HTML report (no audio): {len(site.pages):,} pages in {site.seconds:.1f} s")
    print(
        f"peak memory: generate + load {load_peak:.2f} GB, DuckDB queries {duck_peak:.2f} GB, "
        f"with the pandas tables {summary['peak_rss_with_pandas_gb']:.2f} GB"
    )
    if args.rescore:
        summary["rescore"] = time_rescore(path, Path(workdir.name) / "models", args.rescore_baseline)
    write_json(args.json, summary)
    workdir.cleanup()
    return summary


if __name__ == "__main__":
    main()
