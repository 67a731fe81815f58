"""Nightly Prefect flow: new recordings in an inbox -> scored calls in DuckDB.

    salescalls run data/demo                   # the same flow from the CLI
    python flows/nightly.py data/demo          # or directly
    salescalls serve INBOX --cron "0 2 * * *"  # on a schedule (a Prefect server keeps it)

The per-call work runs where `salescalls.engine` says: in this process, on local worker
processes, or on a Dask cluster (SALESCALLS_WORKERS, SALESCALLS_DASK_ADDRESS). Tasks pass paths
and ids, never audio or models. Workers (`analyse`) stage each result as a
JSON file; the flow itself is the single DuckDB writer and stores results as they complete, so
a run that is killed loses at most the calls in flight, and the next run stores whatever was
staged and skips every call already stored (calls are keyed by the sha256 of their audio).
"""

# ruff: noqa: I001  (salescalls first: it switches telemetry off before Prefect reads its settings)
from __future__ import annotations

import salescalls  # noqa: F401
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from salescalls import analytics, audio, engine, inbox, report, search, store
from salescalls.coaching import KPI_TARGETS, load_targets
from salescalls.config import Settings
from salescalls.pipeline import analyse_call, models_loaded
from salescalls.records import CallRecord
from salescalls.script import load_script
from salescalls.transcribe import ModelMissingError


@task(retries=2, retry_delay_seconds=2, cache_policy=NONE, task_run_name="fingerprint {path}")
def fingerprint(path: str) -> str:
    """sha256 of the file: the call's identity (retried: network shares hiccup)."""
    return audio.content_hash(path)


@task(cache_policy=NONE, tags=["salescalls-analyse"], task_run_name="analyse {path}")
def analyse(path: str, call_id: str, metadata: dict[str, str], settings: Settings) -> dict:
    """Run the speech and stage pipeline on one recording; stage the result, return its path.

    A file that is not usable audio, or that makes the pipeline fail, comes back with an
    `error` (the flow quarantines it and goes on); missing models stop the run instead, since
    every other call would fail the same way. Every answer says which worker process ran it,
    how often that process has loaded the models, and its memory.
    """
    started = time.perf_counter()
    try:
        record = analyse_call(path, settings, load_script(settings.script), call_id, metadata)
    except ModelMissingError:
        raise
    except audio.AudioError as error:
        return {"path": path, "call_id": call_id, "error": str(error), **_worker()}
    except Exception as error:  # one bad call must not stop the night
        return {"path": path, "call_id": call_id, "error": f"processing failed: {_one_line(error)}", **_worker()}
    staged = inbox.stage_result(settings.work_dir, record)
    return {
        "path": path,
        "call_id": call_id,
        "staged": str(staged),
        "duration": record.duration,
        "seconds": round(time.perf_counter() - started, 2),
        **_worker(),
    }


def _worker() -> dict:
    """Who ran the call and its memory, once what the call freed is given back."""
    engine.release_memory()
    rss_mb, peak = engine.memory_mb()
    return {"worker": engine.worker_name(), "models_loaded": models_loaded(), "rss_mb": rss_mb, "peak_rss_mb": peak}


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or "no message"
    return f"{type(error).__name__}: {text[:300]}"


def problem_kind(reason: str) -> str:
    """A quarantine reason's kind for the run's error tally: the words before the detail."""
    return reason.split(":", 1)[0].split("(", 1)[0].strip() or "unknown"


@task(cache_policy=NONE, task_run_name="report {folder}")
def write_report(
    database: str, folder: str, script: str | None = None, targets: str | None = None, period: str = "auto"
) -> dict:
    """Rebuild the HTML report from the database (read-only), with the trackers and reasons of the
    call script at `script` and the team's KPI `targets` file; returns where it is and what it holds."""
    logger = get_run_logger()
    options = report.ReportOptions(
        script=load_script(script) if script else None,
        targets=load_targets(targets) if targets else KPI_TARGETS,
        period=period,
    )
    site = report.build(database, folder, options, progress=logger.info)
    if site.audio_missing:
        logger.warning(f"report: {len(site.audio_missing)} recordings not found: {', '.join(site.audio_missing[:5])}")
    return {"index": str(site.index.resolve()), "pages": len(site.pages), "audio": site.audio}


def _report_link(settings: Settings, site: dict) -> str:
    """The report's address for the run summary: the team's URL when configured, else the file."""
    if settings.report_url:
        return settings.report_url.rstrip("/") + "/index.html"
    return Path(site["index"]).as_uri()


def _store_staged(settings: Settings, staged: Path, run_id: str) -> CallRecord:
    record = CallRecord.from_json(staged.read_text(encoding="utf-8"))
    with store.writer(settings.database) as con:
        store.save_call(con, record, run_id)
        store.end_attempt(con, record.call_id)
    staged.unlink()
    return record


def _set_aside(
    settings: Settings,
    run_id: str,
    path: str | Path,
    call_id: str | None,
    reason: str,
    counts: dict[str, int],
    problems: Counter[str],
) -> None:
    """Quarantine a file with its reason: moved out of the inbox, a row in `quarantine`, counted."""
    moved = inbox.quarantine(path, settings.quarantine_dir, reason, run_id, call_id)
    with store.writer(settings.database) as con:
        store.save_quarantine(con, str(path), call_id, reason, run_id, str(moved))
        if call_id:
            store.end_attempt(con, call_id)  # put back in the inbox, it gets a fresh try
    counts["quarantined"] += 1
    problems[problem_kind(reason)] += 1


KILLS_BEFORE_SETTING_ASIDE = 2  # runs killed while a recording was in flight: then it is the likely cause


def _killed_the_run(runs: int) -> str:
    return (
        f"killed the run: {runs} runs stopped while analysing this recording (a crash, or out of memory); "
        "set aside so the other calls go on"
    )


@flow(name="salescalls-nightly", task_runner=ThreadPoolTaskRunner(max_workers=1))
def nightly(
    inbox_dir: str,
    database: str | None = None,
    metadata: str | None = None,
    script: str | None = None,
    language: str | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
) -> dict:
    """Process every new recording in `inbox_dir`; returns counts of what happened.

    One run at a time per database: a second run started meanwhile stops with a clear message.
    Holding that lock, any run still marked running was killed or crashed, and is marked so."""
    settings = Settings.from_env(
        database=database, script=script, language=language, workers=workers, dask_address=dask_address
    )
    with inbox.run_lock(settings.database):
        return _run(inbox_dir, settings, metadata)


def _run(inbox_dir: str, settings: Settings, metadata: str | None) -> dict:
    logger = get_run_logger()
    call_script = load_script(settings.script)  # a broken script stops the run before any work
    run_id = str(uuid.uuid4())
    inbox_path = Path(inbox_dir)
    crm = inbox.read_metadata(metadata or inbox_path / "calls.csv")
    for problem in crm.problems:
        logger.warning(problem)
    run_engine = engine.engine_for(settings, _api_url())
    reports: dict[str, dict] = {}  # worker process -> its latest report (models loaded, memory)
    memory: list[dict] = []  # after each call: the worker's resident and peak memory (flat, or a leak)

    with store.writer(settings.database) as con:
        for stale in store.interrupt_stale_runs(con):
            logger.warning(f"run {stale} never finished (killed or crashed); this run completes its work")
        killed = store.killed_attempts(con)  # call_id -> (runs killed while it was in flight, file)
        for runs, file in killed.values():
            logger.warning(f"{Path(file).name} was being analysed when {runs} run(s) were killed")
        store.start_run(con, run_id, str(inbox_path))
        store.save_script(con, call_script)
    counts = {"files_seen": 0, "calls_added": 0, "calls_skipped": 0, "quarantined": 0, "files_waiting": 0}
    problems: Counter[str] = Counter({"CRM metadata problems": len(crm.problems)} if crm.problems else {})
    try:
        for staged in inbox.staged_results(settings.work_dir):  # left by a run that was stopped
            record = _store_staged(settings, staged, run_id)
            counts["calls_added"] += 1
            logger.info(f"stored {record.file} staged by an earlier run")
        with store.writer(settings.database) as con:
            known = store.known_call_ids(con)

        found = inbox.scan(inbox_path, skip=(settings.quarantine_dir, settings.work_dir))
        files = [path for path in found if not _refuse(path, inbox_path, settings, run_id, counts, problems)]
        files, busy = inbox.settled(files, settings.inbox_settle)
        for path in busy:
            logger.warning(f"{path.name}: still being copied (size changing); left for the next run")
        counts["files_waiting"] = len(busy)
        counts["files_seen"] = len(found) - len(busy)
        hashes = [future.result() for future in fingerprint.map([str(f) for f in files])]
        todo = []
        for path, call_id in zip(files, hashes, strict=True):
            if call_id in known:
                counts["calls_skipped"] += 1
                continue
            known.add(call_id)  # a second copy of the same audio in this batch is skipped too
            runs_killed = killed.get(call_id, (0, ""))[0]
            if runs_killed >= KILLS_BEFORE_SETTING_ASIDE:  # else it would stop every night at this file
                reason = _killed_the_run(runs_killed)
                _set_aside(settings, run_id, path, call_id, reason, counts, problems)
                logger.error(f"{path.name}: quarantined: {reason}")
                continue
            todo.append((path, call_id))
        logger.info(
            f"{len(files)} recordings in {inbox_path}: {len(todo)} new, {counts['calls_skipped']} already stored"
        )

        _analyse_all(todo, crm, settings, run_engine, run_id, counts, problems, reports, memory)
    except BaseException as error:
        with store.writer(settings.database) as con:
            store.forget_attempts(con, run_id)  # it stopped by itself: its calls in flight did not kill it
            usage = _usage(run_engine, reports)
            store.finish_run(con, run_id, "failed", message=_one_line(error), errors=dict(problems), **counts, **usage)
        raise
    with store.writer(settings.database) as con:
        store.finish_run(con, run_id, "completed", errors=dict(problems), **counts, **_usage(run_engine, reports))
        if counts["calls_added"] or not search.has_index(con):  # DuckDB's fts index does not follow writes
            index = search.build_index(con)
            logger.info(index.get("note") or f"search index: {index['indexed']} utterances")
    with store.reader(settings.database) as con:
        table = analytics.dropoff_table(analytics.dropoff(con, call_script.id))
    site, report_line = None, "The HTML report is switched off (SALESCALLS_REPORT_DIR=off)."
    if settings.report_dir is not None:
        try:  # the calls are stored already: a report that fails is logged, not a failed run
            targets = str(settings.targets) if settings.targets else None
            site = write_report(
                str(settings.database), str(settings.report_dir), str(settings.script), targets, settings.report_period
            )
            report_line = f"[Open the report]({_report_link(settings, site)}) ({site['pages']} pages)."
        except Exception as error:
            logger.error(f"the HTML report could not be written: {type(error).__name__}: {error}")
            report_line = f"The HTML report could not be written: {type(error).__name__}: {error}"
    create_markdown_artifact(
        key="salescalls-run-summary",
        markdown=f"# salescalls run {run_id}\n\nInbox `{inbox_path}`: {counts['files_seen']} recordings, "
        f"{counts['calls_added']} added, {counts['calls_skipped']} already stored, {counts['quarantined']} "
        f"quarantined{_problems_line(problems)}.\n\n{report_line}\n\n"
        f"## Drop-off by script stage\n\n```\n{table}\n```\n",
        description="Calls processed by the nightly run, the script drop-off table and a link to the report",
    )
    logger.info(f"stored in {settings.database}; `salescalls dropoff` prints the drop-off table")
    return {
        "run_id": run_id,
        "database": str(settings.database),
        "report": site and site["index"],
        **counts,
        "errors": dict(problems),
        **_usage(run_engine, reports),
        "memory": memory,
    }


def _refuse(
    path: Path, inbox_path: Path, settings: Settings, run_id: str, counts: dict[str, int], problems: Counter[str]
) -> bool:
    """Quarantine a file refused before it is read (a link leaving the inbox); True when refused."""
    reason = inbox.refused(path, inbox_path)
    if reason is None:
        return False
    _set_aside(settings, run_id, path, None, reason, counts, problems)
    get_run_logger().warning(f"{path.name}: quarantined: {reason}")
    return True


def _problems_line(problems: Counter[str]) -> str:
    return f" ({', '.join(f'{kind}: {n}' for kind, n in sorted(problems.items()))})" if problems else ""


def _usage(run_engine: engine.Engine, reports: dict[str, dict]) -> dict:
    """The run's resource columns from what the workers reported."""
    writer_peak = engine.memory_mb()[1]
    return {
        "engine": run_engine.name,
        "workers": len(reports),
        "models_loaded": max((r["models_loaded"] for r in reports.values()), default=0),
        "peak_rss_mb": max([writer_peak, *(r["peak_rss_mb"] for r in reports.values())]),
    }


def _analyse_all(
    todo: list[tuple[Path, str]],
    crm: inbox.Metadata,
    settings: Settings,
    run_engine: engine.Engine,
    run_id: str,
    counts: dict[str, int],
    problems: Counter[str],
    reports: dict[str, dict],
    memory: list[dict],
) -> None:
    """Analyse the new calls on the engine, at most its limit at a time, and store each result
    as it comes back (this process is the only database writer). Counts, problems and the
    workers' reports about themselves are filled in as calls finish, so a failed run keeps them."""
    logger = get_run_logger()
    if not todo:
        return
    with run_engine.runner as runner:
        limit = run_engine.in_flight()
        logger.info(f"{len(todo)} calls on {run_engine.name}, at most {limit} at a time")
        queue = iter(todo)
        pending: dict = {}

        def submit_next() -> None:
            for path, call_id in queue:  # takes one, if any are left
                parameters = {
                    "path": str(path),
                    "call_id": call_id,
                    "metadata": crm.rows.get(path.name, {}),
                    "settings": run_engine.settings,
                }
                with store.writer(settings.database) as con:  # a run killed now knows what was in flight
                    store.start_attempt(con, call_id, str(path), run_id)
                pending[runner.submit(analyse, parameters=parameters)] = (str(path), call_id)
                return

        for _ in range(limit):
            submit_next()
        done = 0
        while pending:
            future = next(as_completed(list(pending)))
            path, call_id = pending.pop(future)
            submit_next()
            done += 1
            try:
                result = future.result()
            except ModelMissingError:
                raise
            except Exception as error:  # the worker itself died (out of memory, killed): that call only
                lost = f"processing failed: worker lost: {_one_line(error)}"
                result = {"path": path, "call_id": call_id, "error": lost}
            if "worker" in result:
                reports[result["worker"]] = result
                memory.append({key: result[key] for key in ("worker", "rss_mb", "peak_rss_mb")} | {"call": done})
            name = Path(path).name
            if "error" in result:
                _set_aside(settings, run_id, path, call_id, result["error"], counts, problems)
                logger.warning(f"[{done}/{len(todo)}] {name}: quarantined: {result['error']}")
                continue
            record = _store_staged(settings, Path(result["staged"]), run_id)
            counts["calls_added"] += 1
            logger.info(
                f"[{done}/{len(todo)}] {name}: {record.duration:.0f} s of audio in {result['seconds']:.1f} s "
                f"on {result['worker']}, ends at {record.score.end_stage} ({record.score.ended_by}), "
                f"{len(record.utterances)} utterances"
            )
            if record.role_note:  # stored with the call too (calls.role_note)
                logger.warning(f"[{done}/{len(todo)}] {name}: roles: {record.role_note}")
    for worker, report_ in sorted(reports.items()):
        logger.info(
            f"worker {worker}: models loaded {report_['models_loaded']} times, "
            f"{report_['rss_mb']:.0f} MB resident, peak {report_['peak_rss_mb']:.0f} MB"
        )


def _api_url() -> str | None:
    """The Prefect API this flow reports to (a temporary local one when none is configured)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.api_url)


DEPLOYMENT = "nightly"  # the deployment's name: salescalls-nightly/nightly in Prefect


def schedule(cron: str, timezone: str | None = None):
    """A Prefect cron schedule, checked now (a typo must not wait for the night to show)."""
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.schedules import Cron
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron, timezone=timezone or "UTC")
    except ValidationError as error:
        detail = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise ValueError(f"schedule: {detail} (e.g. --cron '0 2 * * *' --timezone Europe/Budapest)") from None
    return Cron(cron, timezone=timezone or "UTC")


def serve(inbox_dir: str, cron: str, timezone: str | None = None, name: str = DEPLOYMENT, **parameters) -> None:
    """Register the nightly deployment with the Prefect server and run it on `cron` until stopped.

    This process waits for scheduled runs and starts each in a subprocess (one at a time); the
    server (PREFECT_API_URL) keeps the schedule, the run history and the logs.
    """
    from prefect.deployments.runner import EntrypointType

    given = {key: value for key, value in parameters.items() if value is not None}
    nightly.serve(
        name=name,
        schedule=schedule(cron, timezone),
        parameters={"inbox_dir": inbox_dir, **given},
        description="New recordings in the inbox -> transcribed, scored calls in DuckDB, and the HTML report",
        tags=["salescalls"],
        limit=1,  # one run at a time (the run lock would refuse a second anyway)
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


if __name__ == "__main__":
    print(nightly(sys.argv[1] if len(sys.argv) > 1 else "data/demo"))
