"""The cold start adapted to a team's own calls without labels (salescalls adapt)."""

import shutil

import numpy as np
from typer.testing import CliRunner

from salescalls.cli import app
from salescalls.script import stage_versions
from salescalls.script.adapt import ADAPT_SHARE, UnlabelledCall, adapt, confident_examples
from salescalls.script.stages import train_from_script
from tests.conftest import DEMO_SCRIPT, write_truth_database

ROLES = ("rep", "customer", "rep", "customer", "rep", "customer", "rep", "customer")


def team_calls(n: int = 12) -> list[UnlabelledCall]:
    """Calls of a team that sells "Turbo Fibre": a product name the script's examples never use."""
    return [
        UnlabelledCall(
            (
                "Good morning, this is Anna from BrightLine, do you have a minute?",
                "Yes, go ahead.",
                "How many people work at your company?",
                f"About {i + 5} people.",
                f"Our Turbo Fibre plan is {30 + i} euros a month and includes a backup line, Turbo Fibre is our best.",
                "We are locked in with our provider, it is too expensive to switch, we are locked in.",
                "Shall I send you the contract today?",
                "Thanks, goodbye.",
            ),
            ROLES,
            "en",
        )
        for i in range(n)
    ]


def stage_of(model, text: str, role: str) -> tuple[str, float]:
    emission = model.emissions([text], [role], "en")[0]
    return model.stages[int(np.argmax(emission))], float(emission.max())


def test_the_team_s_own_words_are_learned_from_its_calls_without_labels(demo_script):
    cold = train_from_script(demo_script, encoder=None)
    adapted, adaptation = adapt(demo_script, team_calls(), encoder=None)
    assert adapted.name.startswith("adapted:demo-broadband@1:")
    assert adaptation.calls == 12 and adaptation.utterances == 84  # "Thanks, goodbye." is too short to teach
    # The product name alone says nothing to the script's examples; the team's offers taught it.
    assert stage_of(cold, "Turbo Fibre then.", "rep")[0] != "offer"
    assert stage_of(adapted, "Turbo Fibre then.", "rep")[0] == "offer"
    assert stage_of(adapted, "We are locked in.", "customer")[1] > stage_of(cold, "We are locked in.", "customer")[1]
    # The transitions stay the script's order: only the words were learned.
    assert np.array_equal(adapted.transitions, cold.transitions)


def test_examples_are_balanced_per_stage_and_never_back_channels(demo_script):
    calls = team_calls(30)
    quiet = [UnlabelledCall(c.texts, c.roles, c.language, (True, False) * 4) for c in calls]  # customers' turns off
    examples, adaptation = confident_examples(train_from_script(demo_script, encoder=None), quiet)
    assert adaptation.utterances == 120 and adaptation.per_stage == max(1, round(ADAPT_SHARE * 120))
    assert all(count <= adaptation.per_stage for count in adaptation.examples.values())
    assert sum(adaptation.examples.values()) == len(examples)
    assert {context.role for context, _ in examples} == {"rep"}  # no customer turn was a candidate
    examples, _ = confident_examples(train_from_script(demo_script, encoder=None), calls)
    assert "Thanks, goodbye." not in {context.text for context, _ in examples}  # nor a reply of two words
    assert all(stage in demo_script.stage_names for _, stage in examples)


def test_adapt_is_used_only_when_measured_or_chosen(tmp_path, truth_database, demo_script, demo_truths):
    env = {"SALESCALLS_MODELS_DIR": str(tmp_path / "models"), "SALESCALLS_SCRIPT": str(DEMO_SCRIPT)}
    db = tmp_path / "calls.duckdb"
    shutil.copy(truth_database, db)

    def run(*arguments):
        result = CliRunner().invoke(app, [*arguments, "--db", str(db)], env=env)
        return result.exit_code, result.output

    code, output = run("adapt")
    assert code == 0, output
    assert "examples from 14 stored calls" in output and "no labels to measure the adapted model on" in output
    record = stage_versions.sidecar(tmp_path / "models", "demo-broadband", 1)["training"]
    assert record["adaptation"]["calls"] == 14 and record["comparison"] is None and not record["promoted"]
    assert len(record["adaptation"]["taken"]) == sum(record["adaptation"]["examples"].values())
    assert stage_versions.active_version(tmp_path / "models", "demo-broadband") == 0  # unmeasured: not used
    result = CliRunner().invoke(app, ["models", "use", "1"], env=env)  # a person chooses it
    assert result.exit_code == 0 and "stages-v1" in result.output
    assert run("rescore")[0] == 0

    # With labels the adapted candidate is measured against the active (adapted) model, rebuilt
    # per fold from the examples its sidecar keeps, like any other.
    from tests.test_training import demo_corpus

    assert run("labels", "import", str(demo_corpus(tmp_path / "labels.jsonl", 3)))[0] == 0
    code, output = run("adapt")
    assert code == 0, output
    record = stage_versions.sidecar(tmp_path / "models", "demo-broadband", 2)["training"]
    assert record["comparison"]["held_out_utterances"] > 0 and "held-out accuracy" in output
    promoted = record["comparison"]["candidate_accuracy"] >= record["comparison"]["current_accuracy"]
    assert record["promoted"] == promoted
    assert stage_versions.active_version(tmp_path / "models", "demo-broadband") == (2 if promoted else 1)

    few = write_truth_database(tmp_path / "few.duckdb", demo_script, demo_truths[:3], tmp_path)
    result = CliRunner().invoke(app, ["adapt", "--db", str(few)], env=env)
    assert result.exit_code == 1 and "adapting needs at least 10" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
