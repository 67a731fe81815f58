from salescalls.records import ScoredUtterance
from salescalls.script.score import find_phrases, score_call


def call(*turns):
    """turns: (role, stage, text[, backchannel]) -> scored utterances one second apart."""
    return [
        ScoredUtterance(
            "ch0" if t[0] == "rep" else "ch1", t[0], float(i), i + 0.9, t[2], t[1], 0.9, t[3] if len(t) > 3 else False
        )
        for i, t in enumerate(turns)
    ]


def test_complete_call_ends_at_close_and_the_rep_ends_it(demo_script):
    utterances = call(
        ("rep", "greeting", "Hello, Sam from BrightLine."),
        ("rep", "qualification", "How many people work there?"),
        ("rep", "needs", "What bothers you most?"),
        ("rep", "offer", "Our fibre plan is forty nine euros."),
        ("rep", "close", "Shall I set up the order?"),
        ("customer", "close", "Yes, send me the contract."),
        ("rep", "farewell", "Thank you, goodbye."),
        ("customer", "farewell", "Bye."),
    )
    score = score_call(utterances, demo_script)
    assert score.end_stage == "close"
    assert score.ended_by == "rep"
    assert score.stages_reached == ("greeting", "qualification", "needs", "offer", "close", "farewell")
    assert score.stages_skipped == () and score.out_of_order == ()
    assert score.detected_outcome == "sale"


def test_customer_hangs_up_at_the_offer(demo_script):
    utterances = call(
        ("rep", "greeting", "Hello."),
        ("rep", "needs", "What bothers you?"),
        ("rep", "offer", "Our plan is half price, a special discount just for you."),
        ("customer", "farewell", "Sorry, not interested. Goodbye."),
    )
    score = score_call(utterances, demo_script)
    assert (score.end_stage, score.ended_by) == ("offer", "customer")
    assert score.stages_skipped == ("qualification",)  # the call went past it without it
    assert score.detected_outcome == "refusal"
    assert [(hit.rule, hit.phrase, hit.utterance) for hit in score.forbidden] == [
        ("unauthorised_discount", "half price", 2),
        ("unauthorised_discount", "special discount just for you", 2),
    ]


def test_out_of_order_and_back_channels(demo_script):
    utterances = call(
        ("rep", "greeting", "Hello."),
        ("rep", "needs", "What bothers you?"),
        ("customer", "close", "Mm-hmm.", True),  # a back-channel never counts
        ("rep", "qualification", "How many people work there?"),
        ("customer", "qualification", "Ten."),
    )
    score = score_call(utterances, demo_script)
    assert score.stages_reached == ("greeting", "needs", "qualification")
    assert score.out_of_order == ("qualification",)
    assert score.end_stage == "qualification" and score.ended_by == "customer"


def test_only_the_rep_can_say_forbidden_phrases(demo_script):
    utterances = call(("customer", "objection", "Your rival offered half price."))
    assert score_call(utterances, demo_script).forbidden == ()


def test_empty_and_farewell_only_calls(demo_script):
    empty = score_call([], demo_script)
    assert (empty.end_stage, empty.ended_by, empty.stages_reached) == (None, None, ())
    only_bye = score_call(call(("customer", "farewell", "Bye.")), demo_script)
    assert only_bye.end_stage == "farewell" and only_bye.ended_by == "customer"


def test_phrases_match_whole_words_only():
    utterances = call(("rep", "offer", "Call me back-up line"), ("rep", "offer", "Please call me back."))
    hits = find_phrases(utterances, {"callback": ["call me back"]})
    assert [hit.utterance for hit in hits] == [0, 1]  # "back-up" normalises to "back up": a word match
    assert find_phrases(call(("rep", "x", "nothalf price")), {"d": ["half price"]}) == []


def test_controlled_phrases_are_reported_apart_from_forbidden(demo_script):
    utterances = [
        ScoredUtterance("a", "rep", 0.0, 2.0, "Our plan comes with free installation.", "offer", 0.9),
        ScoredUtterance("b", "customer", 2.0, 3.0, "Installation is free? Great.", "offer", 0.9),
    ]
    score = score_call(utterances, demo_script)
    assert [(h.rule, h.phrase, h.role) for h in score.controlled] == [
        ("free_installation_offer", "free installation", "rep")
    ]  # the customer repeating it is not the rep's promise
    assert score.forbidden == ()


def test_one_misheard_sentence_after_the_goodbye_does_not_move_the_end_stage(demo_script):
    # The recogniser heard "I need a name" in "that's all I need today"; the model called it needs.
    utterances = call(
        ("rep", "greeting", "Hello, Sam from BrightLine."),
        ("rep", "needs", "What bothers you most?"),
        ("rep", "offer", "Our fibre plan is forty nine euros."),
        ("rep", "close", "Shall I set up the order?"),
        ("customer", "close", "Yes, send me the contract."),
        ("rep", "farewell", "Thank you, goodbye."),
        ("customer", "needs", "I need a name."),
        ("customer", "farewell", "Bye."),
    )
    score = score_call(utterances, demo_script)
    assert (score.end_stage, score.ended_by) == ("close", "rep")
    # ...nor does it count as reaching needs after the fact, and nothing was skipped for it.
    assert score.stages_reached == ("greeting", "needs", "offer", "close", "farewell")
    without_the_stray = score_call(utterances[:6] + utterances[7:], demo_script)
    assert score.end_stage == without_the_stray.end_stage and score.stages_skipped == without_the_stray.stages_skipped
    # A stray at the very end (no goodbye after it) is part of the goodbye as well.
    assert score_call(utterances[:7], demo_script).end_stage == "close"


def test_a_call_that_goes_on_after_anything_else_ends_where_it_really_ended(demo_script):
    utterances = call(
        ("rep", "greeting", "Hello."),
        ("rep", "offer", "Our fibre plan is forty nine euros."),
        ("rep", "farewell", "Is there anything else I can do for you?"),
        ("customer", "objection", "Actually, that is more than we pay now."),
        ("rep", "objection", "One outage costs you more than the difference."),
        ("customer", "farewell", "I'll think about it, bye."),
    )
    score = score_call(utterances, demo_script)
    assert (score.end_stage, score.ended_by) == ("objection", "customer")
    assert "objection" in score.stages_reached
