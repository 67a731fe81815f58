import json

import pytest

from salescalls.script.outcomes import CallEnd, OutcomeClassifier, reconcile
from tests.conftest import DEMO


def demo_call_ends():
    ends, known = [], []
    for path in sorted(DEMO.glob("c*.json")):
        truth = json.loads(path.read_text())
        turns = sorted(truth["turns"], key=lambda t: t["start"])
        ends.append(
            CallEnd(
                tuple(t["text"] for t in turns),
                tuple(t["role"] for t in turns),
                tuple(t["stage"] for t in turns),
                truth["end_stage"],
                truth["ended_by"],
                "en",
            )
        )
        known.append(truth["outcome"])
    return ends, known


def test_outcome_model_learns_how_calls_end():
    ends, known = demo_call_ends()
    model = OutcomeClassifier().fit(ends, known)
    assert set(model.classes_) == set(known) and not hasattr(OutcomeClassifier(), "model_")
    sale = CallEnd(
        ("Shall I send the contract now?", "Yes, send me the contract, let's do it.", "Great, thank you, bye."),
        ("rep", "customer", "rep"),
        ("close", "close", "farewell"),
        "close",
        "rep",
        "en",
    )
    refusal = CallEnd(
        ("It costs forty euros a month.", "No thanks, we are not interested.", "Goodbye."),
        ("rep", "customer", "customer"),
        ("offer", "objection", "farewell"),
        "objection",
        "customer",
        "en",
    )
    assert list(model.predict([sale, refusal])) == ["sale", "refusal"]
    assert model.predict_proba([sale]).sum() == pytest.approx(1.0)


def test_outcome_model_needs_two_outcomes():
    ends, _ = demo_call_ends()
    with pytest.raises(ValueError, match="at least two outcomes"):
        OutcomeClassifier().fit(ends[:3], ["sale"] * 3)


def test_reconcile_trusts_crm_then_phrases_then_a_confident_model():
    assert reconcile("meeting", "sale", "refusal", 0.99) == ("meeting", "crm")
    assert reconcile(None, "sale", "refusal", 0.99) == ("sale", "phrases")
    assert reconcile(None, None, "refusal", 0.9) == ("refusal", "model")
    assert reconcile(None, None, "refusal", 0.4) == (None, None)
    assert reconcile("", None, None, None) == (None, None)


def test_call_end_leaves_back_channels_out():
    from salescalls.records import ScoredUtterance
    from salescalls.script.outcomes import call_end

    utterances = [
        ScoredUtterance("a", "rep", 0, 2, "Shall I send the contract?", "close", 0.9),
        ScoredUtterance("b", "customer", 1, 1.2, "Mhm.", "close", 0.9, True),
        ScoredUtterance("b", "customer", 2, 3, "Yes, send it.", "close", 0.9),
    ]
    ending = call_end(utterances, "close", "customer", "en")
    assert ending.texts == ("Shall I send the contract?", "Yes, send it.") and ending.roles == ("rep", "customer")
    assert (ending.end_stage, ending.ended_by, ending.language) == ("close", "customer", "en")
