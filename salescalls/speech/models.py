"""Where the speech models come from: a local folder, a shared offline copy, or the official sources.

Layout of SALESCALLS_MODELS_DIR (default `models/`):
    whisper/<name>.pt                        openai-whisper checkpoint (e.g. base.pt)
    pyannote/segmentation-3.0/pytorch_model.bin + pyannote/campplus_cn_en_common.pt
                                             offline diarization (segmentation + CAM++ embedding)
 or pyannote/pipeline/config.yaml            an official pyannote pipeline downloaded with HF_TOKEN
"""

from __future__ import annotations

import os
from pathlib import Path

from salescalls.speech.transcribe import ModelMissingError, whisper_weights

OFFICIAL_PIPELINE = "pyannote/speaker-diarization-community-1"
SHARED_ENV = "SALESCALLS_SHARED_MODELS"


def diarization_ready(models_dir: Path) -> bool:
    base = Path(models_dir) / "pyannote"
    offline = (base / "segmentation-3.0" / "pytorch_model.bin").is_file() and (
        base / "campplus_cn_en_common.pt"
    ).is_file()
    return offline or (base / "pipeline" / "config.yaml").is_file()


def missing(models_dir: Path, whisper_model: str = "base") -> list[str]:
    """What the speech layer still needs, as human-readable items (empty when ready)."""
    gaps = []
    if not whisper_weights(models_dir, whisper_model).is_file():
        gaps.append(f"whisper '{whisper_model}' ({whisper_weights(models_dir, whisper_model)})")
    if not diarization_ready(models_dir):
        gaps.append(f"pyannote diarization ({Path(models_dir) / 'pyannote'})")
    return gaps


def find_shared(start: Path | None = None) -> Path | None:
    """An offline model folder with the same layout: $SALESCALLS_SHARED_MODELS, else a
    `shared/models` beside the project or any folder above it."""
    if os.environ.get(SHARED_ENV):
        candidate = Path(os.environ[SHARED_ENV])
        return candidate if candidate.is_dir() else None
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        candidate = folder / "shared" / "models"
        if (candidate / "whisper").is_dir() or (candidate / "pyannote").is_dir():
            return candidate
    return None


def link_shared(models_dir: Path, shared: Path) -> list[str]:
    """Symlink the shared whisper/ and pyannote/ folders into models_dir where absent."""
    models_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for name in ("whisper", "pyannote"):
        target, source = models_dir / name, shared / name
        if source.is_dir() and not target.exists() and not target.is_symlink():
            target.symlink_to(os.path.relpath(source.resolve(), models_dir.resolve()))
            done.append(f"linked {target} -> {source}")
    return done


def fetch_official(models_dir: Path, whisper_model: str = "base", token: str | None = None) -> list[str]:
    """Download OpenAI's whisper checkpoint and, with a Hugging Face token, pyannote's pipeline."""
    import whisper

    done = []
    if not whisper_weights(models_dir, whisper_model).is_file():
        if whisper_model not in whisper._MODELS:
            raise ModelMissingError(f"unknown whisper model '{whisper_model}'")
        folder = Path(models_dir) / "whisper"
        folder.mkdir(parents=True, exist_ok=True)
        downloaded = Path(whisper._download(whisper._MODELS[whisper_model], str(folder), in_memory=False))
        if downloaded != whisper_weights(models_dir, whisper_model):
            downloaded.rename(whisper_weights(models_dir, whisper_model))
        done.append(f"downloaded whisper '{whisper_model}' from OpenAI")
    if not diarization_ready(models_dir):
        if not token:
            raise ModelMissingError(
                "pyannote diarization weights are missing and no HF_TOKEN is set: accept the terms of "
                f"{OFFICIAL_PIPELINE} on huggingface.co and export HF_TOKEN, or point SALESCALLS_SHARED_MODELS "
                "at an offline copy"
            )
        from huggingface_hub import snapshot_download

        snapshot_download(OFFICIAL_PIPELINE, local_dir=str(Path(models_dir) / "pyannote" / "pipeline"), token=token)
        done.append(f"downloaded {OFFICIAL_PIPELINE} from Hugging Face")
    return done


def setup(models_dir: Path, whisper_model: str = "base") -> list[str]:
    """Make the models available: keep what is there, link a shared copy, else download."""
    return setup_from(models_dir, whisper_model, find_shared())


def setup_from(models_dir: Path, whisper_model: str, shared: Path | None) -> list[str]:
    if not missing(models_dir, whisper_model):
        return [f"models ready in {models_dir}"]
    actions = link_shared(models_dir, shared) if shared is not None else []
    if missing(models_dir, whisper_model):
        try:
            actions += fetch_official(models_dir, whisper_model, os.environ.get("HF_TOKEN"))
        except ModelMissingError:
            raise
        except Exception as error:  # no network, hub refused, ...
            raise ModelMissingError(
                f"could not download the models ({type(error).__name__}: {error}); still missing: "
                f"{', '.join(missing(models_dir, whisper_model))}. Put them in {models_dir} or set "
                f"{SHARED_ENV} to an offline copy"
            ) from None
    return actions
