import numpy as np
import pytest

from salescalls.stages import (
    StageClassifier,
    normalise_text,
    order_prior,
    posteriors,
    script_training_data,
    train_from_script,
    viterbi,
)


def test_normalise_text():
    assert normalise_text("  Hello,   WORLD!  It’s me. ") == "hello world it's me"
    assert normalise_text("Здравствуйте, это Анна!") == "здравствуйте это анна"


def test_order_prior_is_a_transition_matrix_that_follows_the_script():
    required = [True, True, True, True, False, True, True]
    matrix = order_prior(7, required)
    assert np.allclose(matrix.sum(axis=1), 1.0)
    assert (matrix > 0).all()  # nothing is impossible, only unlikely
    for i in range(6):
        assert matrix[i, i] == matrix[i].max()  # stages last several utterances
    assert matrix[1, 2] > matrix[1, 3] > matrix[1, 4]  # skipping required stages costs
    assert matrix[3, 4] == pytest.approx(matrix[3, 5])  # skipping an optional stage is free
    assert matrix[0, 6] > matrix[0, 5]  # a call can end (sign-off) at any point


def test_viterbi_and_posteriors_on_a_known_chain():
    transitions = np.log(np.array([[0.9, 0.1], [0.1, 0.9]]))
    initial = np.log(np.array([0.5, 0.5]))
    emissions = np.log(np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.1, 0.9]]))
    assert viterbi(emissions, transitions, initial).tolist() == [0, 0, 1, 1]
    marginals = posteriors(emissions, transitions, initial)
    assert np.allclose(marginals.sum(axis=1), 1.0)
    assert marginals[0, 0] > 0.7 and marginals[3, 1] > 0.8


def test_classifier_follows_the_sklearn_conventions(demo_script):
    X, y = script_training_data(demo_script)
    classifier = StageClassifier(C=2.0)
    assert classifier.get_params()["C"] == 2.0
    assert not hasattr(classifier, "model_")  # nothing happens before fit
    classifier.fit(X, y)
    assert set(classifier.classes_) == set(demo_script.stage_names)
    proba = classifier.predict_proba([("How many people work in your office?", "rep")])
    assert proba.shape == (1, 7) and proba.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        StageClassifier().fit([("a", "rep")], [])


@pytest.mark.parametrize(
    ("text", "role", "stage"),
    [
        # paraphrases, not the script's own examples
        ("Good morning, Jo here, I'm ringing from BrightLine.", "rep", "greeting"),
        ("How many staff do you have at the moment?", "rep", "qualification"),
        ("Our connection keeps dropping when we are on video calls.", "customer", "needs"),
        ("The fibre package costs forty nine euros a month.", "rep", "offer"),
        ("Honestly that's more than we pay at the moment.", "customer", "objection"),
        ("Can I send over the contract today?", "rep", "close"),
        ("Thanks so much for your time, goodbye.", "rep", "farewell"),
        ("Сколько человек работает у вас в офисе?", "rep", "qualification"),
        ("Это дороже, чем мы платим сейчас.", "customer", "objection"),
        ("Спасибо, до свидания.", "customer", "farewell"),
        ("Hányan dolgoznak most az irodában?", "rep", "qualification"),
        ("Elküldhetem ma a szerződést?", "rep", "close"),
        ("Köszönöm, viszonthallásra.", "customer", "farewell"),
    ],
)
def test_cold_start_model_recognises_clear_utterances(demo_script, text, role, stage):
    model = train_from_script(demo_script)
    (emission,) = model.emissions([text], [role])
    assert model.stages[int(np.argmax(emission))] == stage


def test_sequence_decoding_keeps_calls_in_script_order(demo_script):
    model = train_from_script(demo_script)
    call = [
        ("Hello, this is Sam from BrightLine.", "rep"),
        ("Hi.", "customer"),
        ("Which provider do you use today?", "rep"),
        ("City Cable.", "customer"),
        ("What is the biggest problem with it?", "rep"),
        ("It drops every afternoon.", "customer"),
        ("Our fibre plan has a backup line and costs forty nine euros.", "rep"),
        ("Shall I set up the order?", "rep"),
        ("Yes, go ahead.", "customer"),
        ("Thank you, goodbye.", "rep"),
    ]
    labels = model.label([t for t, _ in call], [r for _, r in call])
    stages = [label.stage for label in labels]
    positions = [demo_script.position(s) for s in stages]
    assert positions == sorted(positions)  # never goes back in this straightforward call
    assert stages[0] == "greeting" and stages[-1] == "farewell" and "offer" in stages
    assert all(0.0 < label.confidence <= 1.0 for label in labels)


def test_back_channels_take_the_stage_around_them(demo_script):
    model = train_from_script(demo_script)
    texts = ["Our fibre plan gives you five hundred megabits.", "Goodbye.", "It costs forty nine euros a month."]
    labels = model.label(texts, ["rep", "customer", "rep"], informative=[True, False, True])
    assert [label.stage for label in labels] == ["offer", "offer", "offer"]


def test_empty_call(demo_script):
    assert train_from_script(demo_script).label([], []) == []
