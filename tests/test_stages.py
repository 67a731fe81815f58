import numpy as np
import pytest

from salescalls.script.classifier import StageClassifier, in_context
from salescalls.script.decode import final_prior, order_prior, posteriors, posteriors_many, viterbi, viterbi_many
from salescalls.script.stages import StageModel, script_training_data, train_from_script
from salescalls.text.nlp import normalise_text


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
    # the goodbye lasts a few utterances, not the rest of the call: staying in it is no likelier
    # than in the other stages by more than a few utterances' worth
    assert 0.7 <= matrix[6, 6] <= 0.9 and np.allclose(matrix[6, :6], matrix[6, 0])
    assert order_prior(1).tolist() == [[1.0]]


def test_viterbi_and_posteriors_on_a_known_chain():
    transitions = np.log(np.array([[0.9, 0.1], [0.1, 0.9]]))
    initial = np.log(np.array([0.5, 0.5]))
    emissions = np.log(np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.1, 0.9]]))
    assert viterbi(emissions, transitions, initial).tolist() == [0, 0, 1, 1]
    marginals = posteriors(emissions, transitions, initial)
    assert np.allclose(marginals.sum(axis=1), 1.0)
    assert marginals[0, 0] > 0.7 and marginals[3, 1] > 0.8


def test_batched_decoding_equals_decoding_each_call():
    # Rescoring decodes many padded calls at once; every path must equal the one-call decoder's
    # and every marginal its value, whatever the lengths, entry penalties and flat emissions.
    rng = np.random.default_rng(7)
    n_states = 5
    transitions = np.log(order_prior(n_states))
    initial = np.log(np.full(n_states, 1 / n_states))
    lengths = np.array([1, 2, 7, 30, 3, 30, 12])
    padded = np.zeros((len(lengths), lengths.max(), n_states))
    entry = np.zeros_like(padded)
    for row, length in enumerate(lengths):
        proba = rng.dirichlet(np.full(n_states, 0.3), size=length)
        proba[rng.random(length) < 0.2] = 1 / n_states  # back-channels: flat
        padded[row, :length] = np.log(proba)
        entry[row, :length] = np.log(0.1) * (rng.random((length, n_states)) < 0.3)
    for log_entry in (None, entry):
        paths = viterbi_many(padded, lengths, transitions, initial, log_entry)
        marginals = posteriors_many(padded, lengths, transitions, initial, log_entry)
        for row, length in enumerate(lengths):
            own = None if log_entry is None else log_entry[row, :length]
            emissions = padded[row, :length]
            assert paths[row, :length].tolist() == viterbi(emissions, transitions, initial, own).tolist()
            assert np.allclose(marginals[row, :length], posteriors(emissions, transitions, initial, own), atol=1e-12)


def test_a_model_labels_calls_together_as_it_labels_each_alone():
    model = _decoder(leaders=("rep", "both", "customer"), final=final_prior(3))
    rng = np.random.default_rng(3)
    calls = []
    for length in (4, 1, 9, 4, 0, 25):
        emission = rng.dirichlet(np.ones(3), size=length)
        informative = (rng.random(length) > 0.2).tolist()
        roles = rng.choice(["rep", "customer", ""], size=length).tolist()
        calls.append((emission, informative, roles))
    together = model._decode_many(calls)
    assert [len(labels) for labels in together] == [4, 1, 9, 4, 0, 25]
    for call, labels in zip(calls, together, strict=True):
        alone = model._decode(*call) if len(call[0]) else []
        assert [label.stage for label in labels] == [label.stage for label in alone]
        assert np.allclose([label.confidence for label in labels], [label.confidence for label in alone])


def _decoder(leaders=(), final=None) -> StageModel:
    return StageModel(
        script_id="s",
        script_version=1,
        stages=("offer", "close", "farewell"),
        classifier=None,
        transitions=order_prior(3),
        initial=np.array([0.8, 0.1, 0.1]),
        name="test",
        leaders=leaders,
        final=final,
    )


def test_a_stage_the_rep_leads_is_not_started_by_the_customer():
    # After the offer, a customer line that reads a little like the close ("call me back next
    # week") is not the start of the close; the same words from the rep are.
    emission = np.array([[0.9, 0.05, 0.05], [0.3, 0.6, 0.1], [0.3, 0.6, 0.1], [0.05, 0.05, 0.9]])
    led = _decoder(leaders=("rep", "rep", "both"))
    customer = [s.stage for s in led._decode(emission, None, ["rep", "customer", "customer", "customer"])]
    rep = [s.stage for s in led._decode(emission, None, ["rep", "rep", "rep", "customer"])]
    unled = [s.stage for s in _decoder()._decode(emission, None, ["rep", "customer", "customer", "customer"])]
    assert customer == ["offer", "offer", "offer", "farewell"]
    assert rep == unled == ["offer", "close", "close", "farewell"]


def test_a_call_ends_in_the_sign_off_unless_its_last_words_say_otherwise():
    emission = np.array([[0.9, 0.05, 0.05], [0.05, 0.6, 0.35]])  # a misheard "goodbye" at the end
    assert [s.stage for s in _decoder()._decode(emission, None)] == ["offer", "close"]
    ending = _decoder(final=final_prior(3))
    assert [s.stage for s in ending._decode(emission, None)] == ["offer", "farewell"]
    clear = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]])  # a clear close still ends the call there
    assert [s.stage for s in ending._decode(clear, None)] == ["offer", "close"]


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


@pytest.mark.parametrize("encoder", [None, "e5-small"])
def test_scores_without_the_feature_matrix_equal_the_regressions(demo_script, encoder):
    # Prediction applies each block's weights per distinct text instead of stacking the features;
    # it must be the same decision function, for many classes and for two.
    X, y = script_training_data(demo_script)
    # The examples once more as one call in script order, so the neighbour features get weights.
    X = X + in_context([text for text, _, _ in X], [role for _, role, _ in X], "en")
    y = y + y
    calls = [
        in_context(
            ["Hello, this is Anna from BrightLine.", "Hi.", "How many people work there?", "About ten."],
            ["rep", "customer", "rep", ""],
            "en",
        ),
        in_context(["Сколько человек работает у вас?", "Десять."], ["rep", "customer"], "ru"),
    ]
    rows = [row for call in calls for row in call] + [("Köszönöm, viszonthallásra.", "customer")]
    for labels in (y, ["farewell" if stage == "farewell" else "other" for stage in y]):
        classifier = StageClassifier(encoder=encoder, calibrate=False).fit(X, labels)
        expected = classifier.model_.decision_function(classifier._features(rows))
        assert np.allclose(classifier._decision(rows), expected, rtol=1e-9, atol=1e-9)


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


def script_in_one_language(language: str):
    """The demo script with only one language's examples and phrases."""
    import yaml

    from salescalls.script.spec import parse_script
    from tests.conftest import DEMO_SCRIPT

    raw = yaml.safe_load(DEMO_SCRIPT.read_text(encoding="utf-8"))
    raw["languages"] = [language]
    raw["stages"] = [
        {**st, "examples": {r: {language: p[language]} for r, p in st["examples"].items() if language in p}}
        for st in raw["stages"]
    ]
    raw["outcomes"] = {o: {language: p[language]} for o, p in raw["outcomes"].items() if language in p}
    for kind in ("forbidden", "controlled"):
        raw[kind] = [{**rule, "phrases": {language: rule["phrases"][language]}} for rule in raw[kind]]
    return parse_script(yaml.safe_dump(raw, allow_unicode=True), f"demo-{language}.yaml")


# Paraphrases, none of them a script example, in the languages the script was NOT written in.
RU_HU_CALL = [
    ("Добрый день, это Ольга из компании БрайтЛайн, удобно сейчас говорить?", "rep", "greeting"),
    ("Сколько человек у вас сейчас в штате?", "rep", "qualification"),
    ("У нас постоянно пропадает интернет, когда мы созваниваемся с клиентами.", "customer", "needs"),
    ("Тариф стоит сорок девять евро в месяц и включает резервный канал.", "rep", "offer"),
    ("Это слишком дорого, нам сейчас дешевле.", "customer", "objection"),
    ("Давайте я сегодня пришлю вам договор на подпись?", "rep", "close"),
    ("Спасибо, всего хорошего, до свидания.", "customer", "farewell"),
    ("Jó napot, Tóth Eszter vagyok a BrightLine-tól, ráér most két percre?", "rep", "greeting"),
    ("Hány munkatársuk van jelenleg?", "rep", "qualification"),
    ("Folyton megszakad az internet, amikor videóhívásunk van.", "customer", "needs"),
    ("A csomag havi negyvenkilenc euróba kerül, és tartalék vonal is jár hozzá.", "rep", "offer"),
    ("Ez túl drága, most kevesebbet fizetünk.", "customer", "objection"),
    ("Elküldhetem még ma a szerződést aláírásra?", "rep", "close"),
    ("Köszönöm, viszontlátásra.", "customer", "farewell"),
]
EN_CALL = [
    ("Good morning, this is Olga from BrightLine, is now a good time?", "rep", "greeting"),
    ("How many staff do you have at the moment?", "rep", "qualification"),
    ("Our internet keeps cutting out when we talk to clients.", "customer", "needs"),
    ("The plan is forty nine euros a month and includes a backup line.", "rep", "offer"),
    ("That's too expensive, we pay less right now.", "customer", "objection"),
    ("Shall I send you the contract to sign today?", "rep", "close"),
    ("Thanks, all the best, goodbye.", "customer", "farewell"),
]


def right(model, cases) -> int:
    emission = model.emissions([c[0] for c in cases], [c[1] for c in cases])
    return sum(model.stages[int(k)] == c[2] for k, c in zip(np.argmax(emission, axis=1), cases, strict=True))


@pytest.mark.parametrize(
    ("language", "cases", "at_least"), [("en", RU_HU_CALL, 13), ("ru", EN_CALL, 6), ("hu", EN_CALL, 6)]
)
def test_a_script_in_one_language_maps_calls_in_another(language, cases, at_least):
    from salescalls.script.stages import train

    script = script_in_one_language(language)
    assert script.languages == (language,)
    with_meaning = right(train(script, [], encoder="e5-small"), cases)
    words_only = right(train(script, [], encoder=None), cases)
    assert with_meaning >= at_least, f"{with_meaning} of {len(cases)}"
    assert words_only < with_meaning  # TF-IDF cannot read another language; the sentence encoder can


def _language(text: str) -> str:
    if any("а" <= c <= "я" for c in text.lower()):
        return "ru"
    return "hu" if any(c in "őűáéíöüó" for c in text.lower()) else "en"


def right_in_language(model, cases) -> int:
    """Like `right`, with each utterance's language given, as a stored call has it."""
    found = 0
    for text, role, stage in cases:
        (emission,) = model.emissions([text], [role], _language(text))
        found += model.stages[int(np.argmax(emission))] == stage
    return found


@pytest.mark.parametrize(("language", "cases"), [("en", RU_HU_CALL), ("ru", EN_CALL), ("hu", EN_CALL)])
def test_a_call_in_a_language_no_training_row_has_is_read_by_its_meaning(language, cases):
    from salescalls.script.stages import train

    model = train(script_in_one_language(language), [], encoder="e5-small")
    assert model.languages == (language,) and model.meaning_classifier is not None
    other = _language(cases[0][0])
    assert model.reads_by_meaning(other) and model.reads_by_meaning(other.upper())
    assert not model.reads_by_meaning(language) and not model.reads_by_meaning(None)
    texts, roles = [c[0] for c in cases if _language(c[0]) == other], [c[1] for c in cases if _language(c[0]) == other]
    read = model.emissions(texts, roles, other)
    meaning = model.meaning_classifier
    expected = model._order(meaning.predict_proba(in_context(texts, roles, other)), meaning)
    assert np.allclose(read, expected)
    rows = in_context(texts, roles, other)  # no word columns, and scored block by block all the same
    assert np.allclose(meaning._decision(rows), meaning.model_.decision_function(meaning._features(rows)))
    assert not np.allclose(read, model.emissions(texts, roles, None))  # unknown language: words and meaning
    # By meaning alone the paraphrases come out at least as right as with the script's words too.
    assert right_in_language(model, cases) >= right(model, cases)
    # One batch of calls in different languages reads each call with its own classifier.
    goodbye = {"en": "Thank you, goodbye.", "ru": "Спасибо, до свидания.", "hu": "Köszönöm, viszontlátásra."}
    calls = [(texts, roles, None, other), ([goodbye[language]], ["customer"], None, language)]
    batch = model.label_calls(calls)
    assert batch == [model.label(*call[:2], language=call[3]) for call in calls]


def test_a_words_only_model_reads_every_language_with_its_words(demo_script):
    from salescalls.script.stages import train

    model = train(script_in_one_language("en"), [], encoder=None)
    assert model.meaning_classifier is None and not model.reads_by_meaning("ru")


def test_marginal_decoding_reads_each_utterance_from_the_whole_call(demo_script):
    import dataclasses

    path_model = train_from_script(demo_script)
    marginal_model = dataclasses.replace(path_model, decoding="marginal")
    k = len(path_model.stages)
    rng = np.random.default_rng(3)
    emission = rng.dirichlet(np.ones(k) * 0.7, size=12)
    log_e = np.log(emission)
    log_e[-1] += np.log(path_model.final)
    log_t, log_i = np.log(path_model.transitions), np.log(path_model.initial)
    marginals = posteriors(log_e, log_t, log_i)
    expected_path = viterbi(log_e, log_t, log_i)
    by_marginal = marginal_model._decode(emission, None)
    by_path = path_model._decode(emission, None)
    names = list(path_model.stages)
    assert [names.index(label.stage) for label in by_path if label.stage in names] == [
        s for s, label in zip(expected_path, by_path, strict=True) if label.stage in names
    ]
    for t, label in enumerate(by_marginal):
        if label.stage in names:  # off-script aside, the utterance's most likely stage given the call
            assert names.index(label.stage) == int(np.argmax(marginals[t]))
            assert label.confidence == pytest.approx(marginals[t].max())
    assert [label.stage for label in by_marginal] != [label.stage for label in by_path]  # the choice matters here


def test_a_call_read_by_its_meaning_is_decoded_utterance_by_utterance(demo_script):
    import dataclasses

    from salescalls.script.stages import MEANING_DECODING, train

    assert MEANING_DECODING == "marginal"
    # Per call: one batch decodes each call its own way (random emissions where the two differ).
    path_model = train_from_script(demo_script)
    marginal_model = dataclasses.replace(path_model, decoding="marginal")
    emission = np.random.default_rng(3).dirichlet(np.ones(len(path_model.stages)) * 0.7, size=12)
    calls = [(emission, None, None), (emission, None, None)]
    mixed = path_model._decode_many(calls, ["marginal", "path"])
    assert mixed == [marginal_model._decode(emission, None), path_model._decode(emission, None)]
    assert mixed[0] != mixed[1]
    # An English script on a Russian call reads it by meaning and by marginals; an English call
    # of the same batch keeps the model's path.
    model = train(script_in_one_language("en"), [], encoder="e5-small")
    assert model.decoding == "path"
    russian = [c for c in RU_HU_CALL if _language(c[0]) == "ru"]
    ru_call = ([c[0] for c in russian], [c[1] for c in russian], None, "ru")
    en_call = ([c[0] for c in EN_CALL], [c[1] for c in EN_CALL], None, "en")
    batch = model.label_calls([ru_call, en_call])
    assert batch[0] == dataclasses.replace(model, decoding="marginal").label_calls([ru_call])[0]
    assert batch[1] == model._decode(model.emissions(*en_call[:2], "en"), None, en_call[1])


def test_the_scripts_stage_order_sets_how_the_cold_start_reads_a_call(demo_script):
    from salescalls.script.spec import parse_script
    from tests.conftest import DEMO_SCRIPT

    text = DEMO_SCRIPT.read_text(encoding="utf-8")
    models = {order: train_from_script(parse_script(text + f"\nstage_order: {order}\n")) for order in ("loose", "free")}
    strict = train_from_script(demo_script)
    assert (strict.sequence_weight, strict.decoding) == (1.0, "path")
    assert (models["loose"].sequence_weight, models["loose"].decoding) == (0.3, "marginal")
    assert models["free"].sequence_weight == 0.0
    names = list(strict.stages)
    emission = np.random.default_rng(5).dirichlet(np.ones(len(names)) * 0.7, size=15)
    free = models["free"]._decode(emission, None)
    # free: each utterance on its own, whatever the script's order says
    assert [names.index(label.stage) for label in free if label.stage in names] == [
        int(np.argmax(row)) for row, label in zip(emission, free, strict=True) if label.stage in names
    ]
    loose = models["loose"]
    log_e = np.log(emission)
    log_e[-1] += 0.3 * np.log(loose.final)
    marginals = posteriors(log_e, 0.3 * np.log(loose.transitions), 0.3 * np.log(loose.initial))
    for t, label in enumerate(loose._decode(emission, None)):
        if label.stage in names:
            assert names.index(label.stage) == int(np.argmax(marginals[t]))
    by_order = [[label.stage for label in m._decode(emission, None)] for m in (strict, loose, models["free"])]
    assert by_order[0] != by_order[1] and by_order[1] != by_order[2]  # the choice matters here
