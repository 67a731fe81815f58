import numpy as np
import pytest
from typer.testing import CliRunner

from salescalls.cli import app
from salescalls.db import store
from salescalls.speech import models
from salescalls.speech.transcribe import ModelMissingError
from tests.conftest import DEMO_SCRIPT

runner = CliRunner()


def test_script_check_reports_stages_or_the_failing_line(tmp_path):
    ok = runner.invoke(app, ["script", "check", str(DEMO_SCRIPT)])
    assert ok.exit_code == 0 and "script demo-broadband v1" in ok.output and "objection (optional)" in ok.output
    assert "stage order: strict" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO_SCRIPT.read_text().replace("speaker: rep", "speaker: robot", 1))
    result = runner.invoke(app, ["script", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:" in result.output and "speaker must be one of" in result.output


@pytest.mark.parametrize(
    ("language", "valid", "invalid"),
    [
        (
            "ru",
            ("скрипт demo-broadband v1", "objection (необязательный)"),
            "этап 'greeting': speaker должно быть одним из",
        ),
        ("hu", ("demo-broadband forgatókönyv, v1", "objection (nem kötelező)"), "'greeting' szakasz: a speaker értéke"),
    ],
)
def test_script_check_speaks_the_team_s_language(tmp_path, language, valid, invalid):
    env = {"SALESCALLS_UI_LANGUAGE": language}
    ok = runner.invoke(app, ["script", "check", str(DEMO_SCRIPT)], env=env)
    assert ok.exit_code == 0 and all(part in ok.output for part in valid), ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO_SCRIPT.read_text().replace("speaker: rep", "speaker: robot", 1))
    result = runner.invoke(app, ["script", "check", str(bad)], env=env)
    assert result.exit_code == 1 and f"{bad}:" in result.output and invalid in result.output, result.output
    assert "must be one of" not in result.output


def test_dropoff_without_a_database_says_what_to_do(tmp_path):
    result = runner.invoke(app, ["dropoff", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 1 and "run `salescalls run INBOX` first" in result.output


def test_dropoff_on_an_empty_database(tmp_path):
    with store.writer(tmp_path / "empty.duckdb"):
        pass
    result = runner.invoke(app, ["dropoff", "--db", str(tmp_path / "empty.duckdb")])
    assert result.exit_code == 0 and "no scored calls yet" in result.output


def test_dropoff_filters_and_names_the_weakest_stages(tmp_path, demo_script):
    from tests.test_store import record

    path = tmp_path / "calls.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        for n in range(12):
            reached = ("greeting", "qualification", "needs", "offer")
            store.save_call(con, record(f"{n:064d}", "offer" if n < 9 else "needs", "customer", reached, "refusal"))
    result = runner.invoke(app, ["dropoff", "--db", str(path), "--segment", "warm", "--since", "2026-11-01"])
    assert result.exit_code == 0, result.output
    assert "95% interval" in result.output and "got this far" in result.output
    assert "offer: 9 of 12 calls dropped here (75%," in result.output
    assert "no stage's drop-off is significantly higher" not in result.output  # 9 of 12 against 3 of 36 is
    assert (
        runner.invoke(app, ["dropoff", "--db", str(path), "--segment", "WARM"]).output
        == runner.invoke(app, ["dropoff", "--db", str(path), "--segment", "warm"]).output
    )  # any case
    result = runner.invoke(app, ["dropoff", "--db", str(path), "--segment", "hot"])
    assert result.exit_code == 2, result.output
    assert (
        "no client temperature 'hot' among the stored calls; the client temperatures there are: warm" in result.output
    )
    result = runner.invoke(app, ["dropoff", "--db", str(path), "--since", "last tuesday"])
    assert result.exit_code == 2 and "--since must be a date" in result.output
    result = runner.invoke(app, ["dropoff", "--db", str(path), "--since", "2026-11-30", "--until", "2026-11-01"])
    assert result.exit_code == 2 and "--since 2026-11-30 is after --until 2026-11-01" in result.output
    result = runner.invoke(app, ["dropoff", "--db", str(path), "--segment", "warm", "--since", "2031-01-01"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "no stored call matches --segment warm --since 2031-01-01; the stored calls are from"
    )


def test_metrics_per_rep_and_per_call(tmp_path, demo_script):
    from tests.test_store import record

    path = tmp_path / "calls.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        store.save_call(con, record("1" * 64, utterances=3))
    by_rep = runner.invoke(app, ["metrics", "--db", str(path)])
    assert by_rep.exit_code == 0 and "Ann O'Neil" in by_rep.output and "longest monologue s" in by_rep.output
    by_call = runner.invoke(app, ["metrics", "--db", str(path), "--by", "call"])
    assert by_call.exit_code == 0 and "111111.wav" in by_call.output
    assert runner.invoke(app, ["metrics", "--db", str(path), "--by", "team"]).exit_code == 2


def test_profile_of_a_rep_and_of_an_unknown_one(tmp_path, demo_script):
    from tests.test_store import record

    path = tmp_path / "calls.duckdb"
    with store.writer(path) as con:
        store.save_script(con, demo_script)
        for n in range(6):
            store.save_call(con, record(f"{n:064d}", rep="Ann" if n < 3 else "Bob"))
    result = runner.invoke(app, ["profile", "Ann", "--db", str(path)])
    assert result.exit_code == 0, result.output
    assert "Ann: 3 calls; team (everyone else): 3 calls" in result.output and "no close attempt" in result.output
    assert runner.invoke(app, ["profile", "ann", "--db", str(path)]).output == result.output  # any case
    result = runner.invoke(app, ["profile", "Zed", "--db", str(path)])
    assert (
        result.exit_code == 2 and "no rep 'Zed' among the stored calls; the reps there are: Ann, Bob" in result.output
    )


def test_run_needs_an_inbox_folder(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "inbox is not a folder" in result.output


def test_analyse_rejects_a_file_that_is_not_audio(tmp_path):
    fake = tmp_path / "call.wav"
    fake.write_text("hello")
    result = runner.invoke(app, ["analyse", str(fake)])
    assert result.exit_code == 1 and "not decodable audio" in result.output


def test_models_check_lists_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESCALLS_MODELS_DIR", str(tmp_path / "empty"))
    result = runner.invoke(app, ["models", "check"])
    assert result.exit_code == 1
    assert "whisper 'base'" in result.output and "pyannote diarization" in result.output


def test_models_are_linked_from_a_shared_offline_copy(tmp_path, monkeypatch):
    shared = tmp_path / "shared" / "models"
    (shared / "whisper").mkdir(parents=True)
    (shared / "whisper" / "base.pt").write_bytes(b"weights")
    (shared / "pyannote" / "segmentation-3.0").mkdir(parents=True)
    (shared / "pyannote" / "segmentation-3.0" / "pytorch_model.bin").write_bytes(b"weights")
    (shared / "pyannote" / "campplus_cn_en_common.pt").write_bytes(b"weights")
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.delenv(models.SHARED_ENV, raising=False)
    assert models.find_shared(project) == shared  # ../shared/models beside the project
    actions = models.setup_from(project / "models", "base", shared)
    assert len(actions) == 2 and (project / "models" / "whisper").is_symlink()
    assert models.missing(project / "models") == []
    assert models.setup_from(project / "models", "base", shared) == [f"models ready in {project / 'models'}"]


def test_a_folder_left_empty_by_a_failed_download_does_not_block_the_shared_copy(tmp_path):
    shared = tmp_path / "shared"
    (shared / "whisper").mkdir(parents=True)
    (shared / "whisper" / "base.pt").write_bytes(b"weights")
    target = tmp_path / "models"
    (target / "whisper").mkdir(parents=True)  # what a download without network leaves behind
    models.link_shared(target, shared)
    assert (target / "whisper").is_symlink() and (target / "whisper" / "base.pt").is_file()


def test_without_a_copy_or_token_setup_says_what_is_missing(tmp_path, monkeypatch):
    target = tmp_path / "models"
    (target / "whisper").mkdir(parents=True)
    (target / "whisper" / "base.pt").write_bytes(b"weights")  # present, so nothing is downloaded
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ModelMissingError, match="no HF_TOKEN is set"):
        models.setup_from(target, "base", shared=None)


def test_config_prints_every_setting_and_where_it_came_from(monkeypatch):
    import json

    from salescalls.config import Settings

    monkeypatch.setenv("SALESCALLS_DB_WAIT", "7")
    monkeypatch.setenv("SALESCALLS_TARGETS", "team/targets.yaml")
    result = CliRunner().invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    shown = {row["setting"]: row for row in json.loads(result.output)}
    assert shown["db_wait"]["value"] == "7.0" and shown["db_wait"]["from"] == "SALESCALLS_DB_WAIT"
    assert shown["targets"]["from"] == "SALESCALLS_TARGETS" and shown["encoder"]["from"] == "default"
    assert set(shown) == {f for f in Settings.__dataclass_fields__ if f != "sources"}
    assert all(row["meaning"] for row in shown.values())  # every setting says what it is
    monkeypatch.setenv("SALESCALLS_REPORT_PERIOD", "year")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 2 and "SALESCALLS_REPORT_PERIOD='year'" in result.output


def test_a_file_that_is_not_a_database_and_a_negative_limit_are_one_line_errors(tmp_path):
    not_a_database = tmp_path / "notes.duckdb"
    not_a_database.write_text("these are notes, not a database\n")
    for command in (["dropoff"], ["review"], ["rating"]):
        result = CliRunner().invoke(app, [*command, "--db", str(not_a_database)])
        assert result.exit_code == 1, (command, result.output)
        assert "is not a DuckDB database" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["review", "--limit", "-3", "--db", str(not_a_database)])
    assert result.exit_code == 2 and "--limit" in result.output


def test_a_bad_setting_ends_any_command_in_one_line_with_the_usage_exit_code(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESCALLS_DB_WAIT", "soon")  # read when the command opens the database
    result = CliRunner().invoke(app, ["dropoff", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2, result.output
    assert "error: SALESCALLS_DB_WAIT='soon': expected seconds" in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # handled, not a crash


def test_every_error_a_user_acts_on_is_a_salescalls_error_and_keeps_its_builtin_base():
    from salescalls.config import SettingsError
    from salescalls.db.store import NotADatabase
    from salescalls.errors import InputError, SalescallsError, SetupError
    from salescalls.learning.corpus import CorpusError
    from salescalls.nightly.inbox import RunInProgress
    from salescalls.script.spec import ScriptError
    from salescalls.script.stage_versions import VersionError
    from salescalls.speech.audio import AudioError
    from salescalls.text.encoder import EncoderError

    for error in (SettingsError, NotADatabase, CorpusError, ScriptError, VersionError, AudioError):
        assert issubclass(error, InputError) and issubclass(error, ValueError), error
    from salescalls.nightly.faults import SystemicFault

    for error in (ModelMissingError, RunInProgress, EncoderError, SystemicFault):
        assert issubclass(error, SetupError) and issubclass(error, RuntimeError), error
    assert all(issubclass(e, SalescallsError) for e in (InputError, SetupError))
    assert SettingsError.exit_code == 2 and ScriptError.exit_code == 1


def test_report_options_come_from_settings_and_bad_ones_are_refused(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("SALESCALLS_REPORT_CALLS_PER_STAGE", "3")
    monkeypatch.setenv("SALESCALLS_REPORT_AUDIO", "no")
    shown = {row["setting"]: row for row in json.loads(CliRunner().invoke(app, ["config", "--json"]).output)}
    assert shown["report_calls_per_stage"]["value"] == "3" and shown["report_audio"]["value"] == "False"
    assert shown["report_examples"]["from"] == "default"
    monkeypatch.setenv("SALESCALLS_REPORT_EXAMPLES", "0")
    result = CliRunner().invoke(app, ["report", "--db", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "SALESCALLS_REPORT_EXAMPLES=0: expected 1 or more" in result.output


def test_a_larger_whisper_model_is_honoured_where_it_is_asked_for(tmp_path, monkeypatch):
    # A team with internet sets SALESCALLS_WHISPER_MODEL=large-v3-turbo (or small, medium):
    # the check, the loader and the recognition all look for that model, never quietly for base.
    from salescalls.config import Settings
    from salescalls.pipeline import recognise
    from salescalls.speech import transcribe

    (tmp_path / "whisper").mkdir()
    (tmp_path / "whisper" / "base.pt").write_bytes(b"")  # base is there, the asked-for model is not
    monkeypatch.setenv("SALESCALLS_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("SALESCALLS_WHISPER_MODEL", "large-v3-turbo")
    result = CliRunner().invoke(app, ["models", "check"])  # the default engine, faster-whisper
    assert result.exit_code == 1 and "faster-whisper 'large-v3-turbo'" in result.output
    assert str(tmp_path / "faster-whisper" / "large-v3-turbo") in result.output
    result = CliRunner().invoke(app, ["models", "check", "--engine", "openai"])
    assert result.exit_code == 1 and "whisper 'large-v3-turbo'" in result.output
    assert str(tmp_path / "whisper" / "large-v3-turbo.pt") in result.output
    settings = Settings.from_env()
    assert settings.whisper_model == "large-v3-turbo"
    assert settings.sources["whisper_model"] == "SALESCALLS_WHISPER_MODEL"
    asked = []
    monkeypatch.setattr(transcribe, "load_model", lambda models_dir, name, *a: asked.append(name) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        recognise(np.zeros((2, 16000), dtype=np.float32), settings, None)
    assert asked == ["large-v3-turbo"]
