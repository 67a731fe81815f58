"""Nightly Prefect flow: new recordings in an inbox -> scored calls in DuckDB.

    salescalls run data/demo                   # the same flow from the CLI
    python flows/nightly.py data/demo          # or directly
    salescalls serve INBOX --cron "0 2 * * *"  # on a schedule (a Prefect server keeps it)

The per-call work runs where `salescalls.nightly.engine` says: in this process, on local worker
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
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from salescalls.insights import funnel
from salescalls.speech import audio
from salescalls.nightly import engine, faults, inbox
from salescalls.report import site as report
from salescalls.db import search, store
from salescalls.insights.scorecard import KPI_TARGETS, load_targets
from salescalls.config import Settings
from salescalls import i18n
from salescalls.errors import SetupError, UsageError
from salescalls.nightly.ledger import KILLS_BEFORE_SETTING_ASIDE, RunLedger, killed_the_run, one_line
from salescalls.pipeline import analyse_call, models_loaded
from salescalls.script.spec import Script, ScriptError, load_script
from salescalls.speech.transcribe import ModelMissingError


@task(retries=2, retry_delay_seconds=2, cache_policy=NONE, task_run_name="fingerprint {path}")
def fingerprint(path: str) -> str:
    """sha256 of the file: the call's identity (retried: network shares hiccup)."""
    return audio.content_hash(path)


@task(cache_policy=NONE, tags=["salescalls-analyse"], task_run_name="analyse {path}")
def analyse(
    path: str, call_id: str, metadata: dict[str, str], settings: Settings, script: Script | None = None
) -> dict:
    """Run the speech and stage pipeline on one recording against the run's `script` (default: the
    one settings name); stage the result, return its path.

    A file that is not usable audio, or that makes the pipeline fail, comes back with an
    `error` (the flow quarantines it and goes on); missing models stop the run instead, since
    every other call would fail the same way. Every answer says which worker process ran it,
    how often that process has loaded the models, and its memory.
    """
    started = time.perf_counter()
    try:
        record = analyse_call(path, settings, script or load_script(settings.script), call_id, metadata)
    except ModelMissingError:
        raise
    except Exception as error:  # whose fault it is, the flow decides from the verdict
        failure = faults.classify(error)
        verdict = {"error": failure.reason, "fault": failure.kind, "error_class": failure.error_class}
        return {"path": path, "call_id": call_id, **verdict, **_worker()}
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


@task(cache_policy=NONE, task_run_name="report {folder}")
def write_report(
    database: str,
    folder: str,
    script: str | None = None,
    targets: str | None = None,
    period: str = "auto",
    calls_per_stage: int = 20,
    examples: int = 2,
    audio: bool = True,
    language: str = "en",
) -> dict:
    """Rebuild the HTML report from the database (read-only), with the trackers and reasons of the
    call script at `script` and the team's KPI `targets` file; returns where it is and what it holds."""
    logger = get_run_logger()
    options = report.ReportOptions(
        script=load_script(script) if script else None,
        targets=load_targets(targets) if targets else KPI_TARGETS,
        period=period,
        calls_per_stage=calls_per_stage,
        examples=examples,
        audio=audio,
        language=language,
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
    ledger = RunLedger(settings, str(uuid.uuid4()))
    inbox_path = Path(inbox_dir)
    call_script = script_for_run(settings, inbox_path, ledger.run_id)
    crm = inbox.read_metadata(metadata or inbox_path / "calls.csv")
    for problem in crm.problems:
        logger.warning(problem)
    if crm.problems:
        ledger.problems["CRM metadata problems"] = len(crm.problems)
    run_engine = engine.engine_for(settings, _api_url())
    for stale in ledger.start(inbox_path, call_script):
        logger.warning(f"run {stale} never finished (killed or crashed); this run completes its work")
    for runs, file in ledger.killed.values():
        logger.warning(f"{Path(file).name} was being analysed when {runs} run(s) were killed")
    try:
        todo = _new_calls(inbox_path, ledger)
        _analyse_all(todo, crm, call_script, run_engine, ledger)
    except BaseException as error:
        ledger.failed(error, run_engine)
        raise
    ledger.completed(run_engine)
    with store.writer(settings.database, migrate_first=False) as con:
        if ledger.counts["calls_added"] or not search.has_index(con):  # DuckDB's fts index does not follow writes
            index = search.build_index(con)
            logger.info(index.get("note") or f"search index: {index['indexed']} utterances")
    site, report_line = _report(settings)
    with store.reader(settings.database) as con:
        table = funnel.dropoff_table(funnel.dropoff(con, call_script.id))
    counts = ledger.counts
    create_markdown_artifact(
        key="salescalls-run-summary",
        markdown=f"# salescalls run {ledger.run_id}\n\nInbox `{inbox_path}`: {counts['files_seen']} recordings, "
        f"{counts['calls_added']} added, {counts['calls_skipped']} already stored, {counts['quarantined']} "
        f"quarantined{ledger.problems_line()}.\n\n{report_line}\n\n"
        f"## Drop-off by script stage\n\n```\n{table}\n```\n",
        description="Calls processed by the nightly run, the script drop-off table and a link to the report",
    )
    logger.info(f"stored in {settings.database}; `salescalls dropoff` prints the drop-off table")
    return {
        "run_id": ledger.run_id,
        "database": str(settings.database),
        "report": site and site["index"],
        **counts,
        "errors": dict(ledger.problems),
        **ledger.usage(run_engine),
        "memory": ledger.memory,
    }


def script_for_run(settings: Settings, inbox_dir: Path, run_id: str | None = None) -> Script:
    """The run's call script. One that cannot be used stops the run before any work, recorded as a
    failed run so `salescalls runs` and a monitor see it (the CLI asks before Prefect starts)."""
    try:
        return load_script(settings.script)
    except ScriptError as error:
        RunLedger(settings, run_id or str(uuid.uuid4())).refused(inbox_dir, error)
        raise


def _new_calls(inbox_path: Path, ledger: RunLedger) -> list[tuple[Path, str]]:
    """Store what a stopped run staged, then find the inbox's settled recordings not stored yet,
    each with its call id; refused files and recordings that killed runs before are set aside."""
    logger, settings, counts = get_run_logger(), ledger.settings, ledger.counts
    for staged in inbox.staged_results(settings.work_dir):  # left by a run that was stopped
        record = ledger.store_staged(staged)
        logger.info(f"stored {record.file} staged by an earlier run")
    known = ledger.known_calls()
    found = inbox.scan(
        inbox_path, skip=tuple(filter(None, (settings.quarantine_dir, settings.work_dir, settings.report_dir)))
    )
    files = [path for path in found if not _refuse(path, inbox_path, ledger)]
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
        runs_killed = ledger.runs_killed_by(call_id)
        if runs_killed >= KILLS_BEFORE_SETTING_ASIDE:  # else it would stop every night at this file
            reason = killed_the_run(runs_killed)
            ledger.set_aside(path, call_id, reason)
            logger.error(f"{path.name}: quarantined: {reason}")
            continue
        todo.append((path, call_id))
    logger.info(f"{len(files)} recordings in {inbox_path}: {len(todo)} new, {counts['calls_skipped']} already stored")
    return todo


def _report(settings: Settings) -> tuple[dict | None, str]:
    """Rebuild the report (the calls are stored already: a report that fails is logged, not a failed run)."""
    if settings.report_dir is None:
        return None, "The HTML report is switched off (SALESCALLS_REPORT_DIR=off)."
    try:
        targets = str(settings.targets) if settings.targets else None
        site = write_report(
            str(settings.database),
            str(settings.report_dir),
            str(settings.script),
            targets,
            settings.report_period,
            settings.report_calls_per_stage,
            settings.report_examples,
            settings.report_audio,
            settings.ui_language,
        )
    except Exception as error:
        get_run_logger().error(f"the HTML report could not be written: {type(error).__name__}: {error}")
        return None, f"The HTML report could not be written: {type(error).__name__}: {error}"
    return site, f"[Open the report]({_report_link(settings, site)}) ({site['pages']} pages)."


def _refuse(path: Path, inbox_path: Path, ledger: RunLedger) -> bool:
    """Quarantine a file refused before it is read (a link leaving the inbox); True when refused."""
    reason = inbox.refused(path, inbox_path)
    if reason is None:
        return False
    ledger.set_aside(path, None, reason)
    get_run_logger().warning(f"{path.name}: quarantined: {reason}")
    return True


def _analyse_all(
    todo: list[tuple[Path, str]], crm: inbox.Metadata, script: Script, run_engine: engine.Engine, ledger: RunLedger
) -> None:
    """Analyse the new calls on the engine, at most its limit at a time, and store each result
    as it comes back (this process is the only database writer). The ledger's counts, problems
    and the workers' reports about themselves are filled in as calls finish, so a failed run keeps them."""
    logger = get_run_logger()
    if not todo:
        return
    streak = faults.FailureStreak(ledger.settings.same_failures)

    def set_aside(released: list[tuple[str, str | None, str]]) -> None:
        for held_path, held_id, reason in released:
            ledger.set_aside(held_path, held_id, reason)
            logger.warning(f"{Path(held_path).name}: quarantined: {reason}")

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
                    "script": script,  # the one the run started with, even if the file changes meanwhile
                }
                ledger.attempt(call_id, str(path))
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
                lost = f"processing failed: worker lost: {one_line(error)}"
                result = {"path": path, "call_id": call_id, "error": lost, "fault": faults.RECORDING}
            ledger.worker_said(result, done)
            name = Path(path).name
            if "error" in result:
                kind = result.get("fault", faults.SUSPECT)
                failure = faults.Failure(kind, result.get("error_class", result["error"]), result["error"])
                if kind == faults.SUSPECT:
                    logger.warning(f"[{done}/{len(todo)}] {name}: failed: {result['error']}")
                set_aside(streak.failed(path, call_id, failure))
                continue
            set_aside(streak.succeeded())
            record = ledger.store_staged(Path(result["staged"]))
            logger.info(
                f"[{done}/{len(todo)}] {name}: {record.duration:.0f} s of audio in {result['seconds']:.1f} s "
                f"on {result['worker']}, ends at {record.score.end_stage} ({record.score.ended_by}), "
                f"{len(record.utterances)} utterances"
            )
            if record.role_note:  # stored with the call too (calls.role_note)
                logger.warning(f"[{done}/{len(todo)}] {name}: roles: {record.role_note}")
        set_aside(streak.ended())  # fewer than the limit in a row at the end: the recordings' own
    for worker, report_ in sorted(ledger.reports.items()):
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
        raise UsageError(
            i18n._("schedule: {detail} (e.g. --cron '0 2 * * *' --timezone Europe/Budapest)", detail=detail)
        ) from None
    return Cron(cron, timezone=timezone or "UTC")


def serve(inbox_dir: str, cron: str, timezone: str | None = None, name: str = DEPLOYMENT, **parameters) -> None:
    """Register the nightly deployment with the Prefect server and run it on `cron` until stopped.

    This process waits for scheduled runs and starts each in a subprocess (one at a time); the
    server (PREFECT_API_URL) keeps the schedule, the run history and the logs.
    """
    from prefect.client.orchestration import get_client
    from prefect.deployments.runner import EntrypointType

    with get_client(sync_client=True) as client:  # a wrong URL: one line now, not a traceback later
        problem = client.api_healthcheck()
    if problem is not None:
        raise SetupError(
            i18n._(
                "cannot reach the Prefect server at {url} ({problem}): start it with "
                "`prefect server start`, or fix PREFECT_API_URL (README: Operations)",
                url=client.api_url,
                problem=one_line(problem),
            )
        )
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
