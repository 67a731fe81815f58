"""The stage bench runs on any labelled dialogue file: here the demo calls' ground truth."""

import json

from bench import stages as bench
from salescalls.nightly.inbox import read_metadata
from tests.conftest import DEMO, DEMO_SCRIPT


def demo_dialogues(path):
    """The demo calls' ground truth as a labelled dialogue file, each call's campaign as its domain."""
    campaigns = {row["call_id"]: row["campaign"] for row in read_metadata(DEMO / "calls.csv").rows.values()}
    lines = []
    for truth_file in sorted(DEMO.glob("c*.json")):
        truth = json.loads(truth_file.read_text())
        turns = [
            {"speaker": "agent" if t["role"] == "rep" else "customer", "text": t["text"], "stage": t["stage"]}
            for t in sorted(truth["turns"], key=lambda t: t["start"])
        ]
        lines.append(
            json.dumps(
                {
                    "call_id": truth_file.stem,
                    "turns": turns,
                    "outcome": truth["outcome"],
                    "meta": {"last_stage_before_farewell": truth["end_stage"], "domains": [campaigns[truth_file.stem]]},
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bench_reports_every_system_cold_cross_validated_and_on_left_out_domains(tmp_path):
    data = demo_dialogues(tmp_path / "demo.jsonl")
    arguments = [str(data), "--script", str(DEMO_SCRIPT), "--folds", "2", "--min-domain-calls", "3"]
    report = bench.main([*arguments, "--json", str(tmp_path / "r.json"), "--vectors", str(tmp_path / "v.npz")])
    results = report["sets"][str(data)]["results"]
    systems = {
        "keywords",
        "tfidf+lr",
        "salescalls-words",
        "salescalls",
        "salescalls-per-utterance",
        "salescalls-adapted",
    }
    assert set(results) >= systems | {"comparison"}
    for system in systems:
        for setting in ("cold", "cv"):
            assert 0.0 <= results[system][setting]["macro_f1"] <= 1.0
            assert results[system][setting]["turns"] > 100
        # every campaign with 3+ calls was left out once: trained on the others, tested on it
        assert len(results[system]["domains"]["per_domain"]) >= 2
    # On the demo's own (error-free) transcripts the cold-start model must place most turns.
    assert results["salescalls"]["cold"]["accuracy"] >= 0.8
    assert (tmp_path / "v.npz").is_file()  # the sentence vectors are kept for the next run
    assert json.loads((tmp_path / "r.json").read_text())["folds"] == 2
    outcome = report["sets"][str(data)]["outcomes"]
    assert outcome["calls"] == 14 and 0.0 <= outcome["accuracy"] <= 1.0


def test_bad_dialogue_line_names_the_line(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"turns": [{"speaker": "agent", "text": "hi", "stage": "greeting"}]}\n{"oops": 1}\n')
    try:
        bench.load_dialogues(data)
    except SystemExit as error:
        assert "bad.jsonl:2: not a labelled dialogue" in str(error)
    else:
        raise AssertionError("a malformed line must be reported")


def test_the_languages_bench_maps_a_teams_stages_onto_its_english_script_by_position():
    from bench import languages
    from salescalls.script.spec import load_script

    folder, own_path, others = languages.TEAMS["ru"]
    english_path = others["cross-lingual"]
    own, english = load_script(languages.ROOT / own_path), load_script(languages.ROOT / english_path)
    assert len(own.stage_names) == len(english.stage_names)
    same = languages.typed_calls(languages.ROOT / folder, own, own)
    mapped = languages.typed_calls(languages.ROOT / folder, own, english)
    assert [d.end_stage for d in same] == [
        "закрытие",
        "закрытие",
        "презентация",
        "приветствие",
        "возражения",
        "квалификация",
    ]
    assert [d.end_stage for d in mapped] == ["close", "close", "offer", "greeting", "objection", "qualification"]
    assert all(len(a.call.texts) == len(b.call.texts) for a, b in zip(same, mapped, strict=True))
