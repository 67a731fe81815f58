"""The analysts' notebooks run top to bottom against the demo calls' database and show its answers."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"


def execute(name: str) -> str:
    """Run a notebook in a fresh kernel (cwd: the checkout) and return all its text output."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


@pytest.fixture
def demo_db(monkeypatch, truth_database):
    monkeypatch.setenv("SALESCALLS_DB", str(truth_database))
    return truth_database


def test_notebooks_hold_no_logic_of_their_own():
    """Code cells import the package and call it; no functions or classes are defined in them."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                assert "def " not in cell.source and "class " not in cell.source, path.name
                assert not cell.get("outputs"), f"{path.name}: commit notebooks without outputs"


def test_explore_dropoff_shows_the_demo_funnel(demo_db, demo_truths):
    text = execute("explore_dropoff.ipynb")
    occurred = sum(any(t["stage"] == "greeting" for t in truth["turns"]) for truth in demo_truths)
    ended = sum(truth["end_stage"] == "greeting" for truth in demo_truths)
    assert f"{len(demo_truths)} calls" in text
    # every call got to the greeting; the one that ended there dropped (no sale, not the script's end)
    assert any(
        line.split()[:4] == ["greeting", str(len(demo_truths)), str(occurred), str(ended)] for line in text.splitlines()
    )
    assert "weakest stages (drop-off share against the other stages'" in text
    assert "period from" in text  # the weekly split


def test_rep_training_plan_shows_boris_plan(demo_db):
    text = execute("rep_training_plan.ipynb")
    assert "Training plan for Boris Ivanov" in text
    assert "a required stage was skipped" in text
    assert "Alex Morgan" in text and "Claire Dubois" in text  # the team's ratings
