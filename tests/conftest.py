"""Shared fixtures: the demo script, tiny generated recordings, the real models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from salescalls.config import Settings
from salescalls.models import missing
from salescalls.script import load_script

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"
DEMO_SCRIPT = ROOT / "data" / "scripts" / "demo.yaml"


@pytest.fixture(scope="session")
def demo_script():
    return load_script(DEMO_SCRIPT)


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
    gaps = missing(settings.models_dir, settings.whisper_model)
    if gaps:
        pytest.fail(f"speech models missing ({'; '.join(gaps)}): run `make setup` or `salescalls models setup`")
    return settings
