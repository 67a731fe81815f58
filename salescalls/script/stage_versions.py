"""Stage-model versions on disk: models/stages/<script id>/v<N>/{model.pkl, model.json}, one active.

Every `salescalls train` saves its candidate as the script's next version, with a JSON sidecar
(library versions, training data, the held-out comparison with the model it would replace). The
*active* version (`active.json` beside the versions; 0 is the cold-start model trained from the
script itself) is what the nightly run and `rescore` use. `train` activates its candidate only
when it measured at least as well as the active model; a person can activate any version, or go
back to the cold start, with `salescalls models use`.
"""

from __future__ import annotations

import copy
import functools
import json
import pickle
from datetime import datetime
from pathlib import Path

import numpy as np

from salescalls import i18n
from salescalls.errors import InputError
from salescalls.script.spec import Script
from salescalls.script.stages import MEANING_DECODING, StageModel, train_from_script

COLD_START = 0  # the version number of the cold-start model (the script's own examples)


class VersionError(InputError):
    """A model version that cannot be used; the message says what to do."""


def model_root(models_dir: Path, script_id: str) -> Path:
    return Path(models_dir) / "stages" / script_id


def saved_versions(models_dir: Path, script_id: str) -> list[int]:
    root = model_root(models_dir, script_id)
    if not root.is_dir():
        return []
    return sorted(int(p.name[1:]) for p in root.glob("v*") if p.name[1:].isdigit() and (p / "model.pkl").is_file())


def sidecar(models_dir: Path, script_id: str, version: int) -> dict:
    path = model_root(models_dir, script_id) / f"v{version}" / "model.json"
    return json.loads(path.read_text(encoding="utf-8"))


def save_model(model: StageModel, models_dir: Path, training: dict) -> Path:
    """Store a trained model as the script's next version (not yet active), with its sidecar.

    `training` describes the data and its measurements (labelled calls, utterances, data hash,
    held-out comparison); the sidecar adds library versions and the script it belongs to.
    """
    import sklearn
    import spacy

    version = (saved_versions(models_dir, model.script_id) or [0])[-1] + 1
    folder = model_root(models_dir, model.script_id) / f"v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    model = copy.copy(model)
    model.name = f"{model.script_id}@{model.script_version}:stages-v{version}"
    by_meaning = getattr(model, "meaning_classifier", None) is not None
    record = {
        "name": model.name,
        "version": version,
        "script_id": model.script_id,
        "script_version": model.script_version,
        "stages": list(model.stages),
        "encoder": getattr(model.classifier, "encoder", None),
        # calls in another language than these are read by their meaning alone (StageModel.reads_by_meaning)
        "languages": list(getattr(model, "languages", ())),
        "meaning_only_for_other_languages": by_meaning,
        # calls read by meaning are decoded as `for_other_languages` says, whatever `decoding` is
        "decoder": {
            "sequence_weight": model.sequence_weight,
            "decoding": model.decoding,
            "for_other_languages": MEANING_DECODING if by_meaning else None,
        },
        "created_at": datetime.now().isoformat(timespec="seconds"),
        "libraries": {"scikit-learn": sklearn.__version__, "spacy": spacy.__version__, "numpy": np.__version__},
        "training": training,
    }
    temporary = folder / "model.pkl.partial"
    temporary.write_bytes(pickle.dumps(model))
    temporary.replace(folder / "model.pkl")
    (folder / "model.json").write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")
    return folder


def active_version(models_dir: Path, script_id: str) -> int | None:
    """The version a person or `train` made active; None when none was chosen (the newest is used)."""
    path = model_root(models_dir, script_id) / "active.json"
    if not path.is_file():
        return None
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["version"])
    except (ValueError, KeyError, TypeError):
        return None


def set_active(models_dir: Path, script: Script, version: int, reason: str) -> None:
    """Make a saved version (or COLD_START) the one calls are scored with."""
    if version != COLD_START:
        if version not in saved_versions(models_dir, script.id):
            known = ", ".join(f"v{v}" for v in saved_versions(models_dir, script.id)) or "none"
            raise VersionError(
                i18n._(
                    "no stage model v{version} for script {script} (saved: {known}; 0 is the cold start)",
                    version=version,
                    script=script.id,
                    known=known,
                )
            )
        if tuple(sidecar(models_dir, script.id, version)["stages"]) != script.stage_names:
            raise VersionError(
                i18n._(
                    "stage model v{version} was trained for other stages than {script} v{script_version} has: "
                    "train a new one (salescalls train)",
                    version=version,
                    script=script.id,
                    script_version=script.version,
                )
            )
    root = model_root(models_dir, script.id)
    root.mkdir(parents=True, exist_ok=True)
    record = {"version": version, "chosen_at": datetime.now().isoformat(timespec="seconds"), "reason": reason}
    temporary = root / "active.json.partial"
    temporary.write_text(json.dumps(record, indent=1), encoding="utf-8")
    temporary.replace(root / "active.json")


def load_model(models_dir: Path, script: Script) -> StageModel:
    """The active model for this script (same id and stages), else the cold-start model.

    With no active version chosen, the newest saved version with the script's stages is used. A
    model trained for an older version of the script is used as long as the stages are the same;
    when the team changes the stages, the cold-start model takes over until retraining.
    """
    chosen = active_version(models_dir, script.id)
    if chosen == COLD_START:
        return train_from_script(script)
    candidates = [chosen] if chosen is not None else list(reversed(saved_versions(models_dir, script.id)))
    for version in candidates:
        folder = model_root(models_dir, script.id) / f"v{version}"
        if not (folder / "model.pkl").is_file():
            continue
        if tuple(sidecar(models_dir, script.id, version)["stages"]) != script.stage_names:
            continue
        model = copy.copy(_unpickle(folder / "model.pkl", (folder / "model.pkl").stat().st_mtime_ns))
        model.script_version = script.version  # a copy: the cached model stays as it was saved
        return model
    return train_from_script(script)


def versions(models_dir: Path, script: Script) -> list[dict]:
    """Every version of the script's stage model with what it measured, the cold start first."""
    active = active_version(models_dir, script.id)
    saved = saved_versions(models_dir, script.id)
    in_use = (
        active
        if active is not None
        else next(
            (v for v in reversed(saved) if tuple(sidecar(models_dir, script.id, v)["stages"]) == script.stage_names),
            COLD_START,
        )
    )
    rows = [{"version": COLD_START, "name": train_from_script(script).name, "created_at": None, "active": in_use == 0}]
    for version in saved:
        record = sidecar(models_dir, script.id, version)
        training = record.get("training", {})
        comparison = training.get("comparison") or {}
        rows.append(
            {
                "version": version,
                "name": record["name"],
                "created_at": record.get("created_at"),
                "active": in_use == version,
                "stages_match": tuple(record["stages"]) == script.stage_names,
                "labelled_calls": training.get("labelled_calls"),
                "labelled_utterances": training.get("labelled_utterances"),
                "held_out_accuracy": comparison.get("candidate_accuracy"),
                "replaced_accuracy": comparison.get("current_accuracy"),
                "promoted": training.get("promoted"),
                "verdict": training.get("verdict"),
            }
        )
    return rows


@functools.lru_cache(maxsize=8)
def _unpickle(path: Path, mtime_ns: int) -> StageModel:
    """Loaded once per process and file version (the mtime is part of the cache key)."""
    with path.open("rb") as file:
        return _ModelUnpickler(file).load()  # our own file, written by save_model


# Where the classes of models saved before the package had layers live now: a team's trained
# models keep loading (pickle names each class by its module).
MOVED_MODULES = {
    "salescalls.stages": "salescalls.script.stages",
    "salescalls.outcomes": "salescalls.script.outcomes",
    "salescalls.encoder": "salescalls.text.encoder",
    "salescalls.nlp": "salescalls.text.nlp",
    "salescalls.script": "salescalls.script.spec",
    "salescalls.roles": "salescalls.script.roles",
}


# Names that left a module that is still there, looked up after MOVED_MODULES: (module, name) ->
# the module that defines the name now. When stages.py was split, the classifier and its Context
# went to classifier.py: models saved before name salescalls.script.stages.StageClassifier (or
# salescalls.stages.StageClassifier). stages.py still imports both, but a saved model must not
# depend on what a module happens to import. normalise_text was defined in salescalls.stages
# before it moved to text/nlp.py (the TF-IDF preprocessor of old classifiers).
MOVED_NAMES = {
    ("salescalls.script.stages", "StageClassifier"): "salescalls.script.classifier",
    ("salescalls.script.stages", "Context"): "salescalls.script.classifier",
    ("salescalls.script.stages", "normalise_text"): "salescalls.text.nlp",
}


class _ModelUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        module = MOVED_MODULES.get(module, module)
        return super().find_class(MOVED_NAMES.get((module, name), module), name)
