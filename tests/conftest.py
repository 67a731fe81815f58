"""Shared fixtures: the demo script, tiny generated recordings, the real models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from salescalls.config import Settings
from salescalls.learning import evaluate
from salescalls.nightly.inbox import read_metadata
from salescalls.script.spec import load_script
from salescalls.speech.models import missing

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"
DEMO_SCRIPT = ROOT / "data" / "scripts" / "demo.yaml"


def demo_inbox(folder: Path, names: tuple[str, ...]) -> Path:
    """An inbox holding these demo recordings and their rows of the demo's calls.csv."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(DEMO / name, folder / name)
    lines = (DEMO / "calls.csv").read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines[1:] if line.split(",")[1] in names]
    (folder / "calls.csv").write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
    return folder


CRASH_ON_LOAD = """
# Loaded at interpreter start (sitecustomize): a process that opens a recording whose name starts
# with SALESCALLS_TEST_CRASH_ON dies at once (SIGKILL), as a decoder crash or the OOM killer would.
import os, signal

def _arm():
    import salescalls.speech.audio as audio

    prefix, real = os.environ["SALESCALLS_TEST_CRASH_ON"], audio.load

    def load(path, *args, **kwargs):
        if os.path.basename(str(path)).startswith(prefix):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, *args, **kwargs)

    audio.load = load

if os.environ.get("SALESCALLS_TEST_CRASH_ON"):
    _arm()
"""


def crash_on_load(folder: Path, prefix: str) -> dict[str, str]:
    """Environment for child processes that die opening recordings named `prefix`*."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(CRASH_ON_LOAD, encoding="utf-8")
    path = os.pathsep.join([str(folder), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {"PYTHONPATH": path, "SALESCALLS_TEST_CRASH_ON": prefix}


@pytest.fixture(autouse=True)
def _report_outside_the_checkout(monkeypatch, tmp_path_factory):
    """Runs of the flow in tests write their HTML report to a temporary folder, never data/report."""
    if "SALESCALLS_REPORT_DIR" not in os.environ:
        monkeypatch.setenv("SALESCALLS_REPORT_DIR", str(tmp_path_factory.mktemp("report") / "site"))
    monkeypatch.setenv("SALESCALLS_INBOX_SETTLE", os.environ.get("SALESCALLS_INBOX_SETTLE", "0.2"))


@pytest.fixture(scope="session")
def demo_script():
    return load_script(DEMO_SCRIPT)


@pytest.fixture(scope="session")
def demo_truths() -> list[dict]:
    """The demo calls' ground-truth files, each with its calls.csv row under "crm"."""
    csv = read_metadata(DEMO / "calls.csv").rows
    return [{**truth, "crm": csv[truth["file"]]} for _, truth in evaluate.truth_files(DEMO)]


@pytest.fixture(scope="session")
def truth_database(tmp_path_factory, demo_truths, demo_script) -> Path:
    """A database holding the 14 demo calls exactly as their ground truth describes them (no models
    needed), each pointing at its recording in data/demo."""
    return write_truth_database(tmp_path_factory.mktemp("truth") / "demo-truth.duckdb", demo_script, demo_truths, DEMO)


def write_truth_database(path: Path, script, truths: list[dict], folder: Path) -> Path:
    """A database of `truths` (ground-truth calls with their calls.csv row under "crm") scored
    against `script`, each pointing at its recording in `folder`."""
    return evaluate.write_truth_database(path, script, [(t, t["crm"], str(folder / t["file"])) for t in truths])


def write_tone(
    path: Path,
    seconds: float = 1.0,
    rate: int = 16000,
    channels: int = 1,
    amplitude: float = 0.3,
    frequency: float = 220.0,
) -> Path:
    """A sine tone (each channel its own frequency) written with soundfile."""
    t = np.arange(int(seconds * rate)) / rate
    data = np.stack([amplitude * np.sin(2 * np.pi * frequency * (c + 1) * t) for c in range(channels)], axis=1)
    sf.write(path, data if channels > 1 else data[:, 0], rate)
    return path


@pytest.fixture(scope="session")
def model_settings() -> Settings:
    """Settings whose models must be in place: the speech tests fail (not skip) without them."""
    settings = Settings.from_env(
        models_dir=ROOT / os.environ.get("SALESCALLS_MODELS_DIR", "models"), script=DEMO_SCRIPT, language="en"
    )
    gaps = missing(settings.models_dir, settings.whisper_model, engine="all")
    if gaps:
        pytest.fail(f"speech models missing ({'; '.join(gaps)}): run `make setup` or `salescalls models setup`")
    return settings
