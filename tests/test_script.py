import pytest

from salescalls.script.spec import ScriptError, load_script, parse_script
from tests.conftest import DEMO_SCRIPT

VALID = """\
script: mini
version: 2
languages: [en, ru]
stages:
  - name: greeting
    required: true
    speaker: rep
    examples:
      rep:
        en: ["Hello, this is Ann from Acme."]
        ru: ["Здравствуйте, это Анна из Акме."]
  - name: close
    required: false
    speaker: both
    examples:
      customer:
        en: [Send me the contract.]
outcomes:
  sale:
    en: [send me the contract]
"""


def test_demo_script_loads(demo_script):
    assert demo_script.id == "demo-broadband"
    assert demo_script.stage_names == (
        "greeting",
        "qualification",
        "needs",
        "offer",
        "objection",
        "close",
        "farewell",
    )
    assert not demo_script.stage("objection").required
    assert set(demo_script.languages) == {"en", "ru", "hu"}
    assert demo_script.outcomes.keys() == {"sale", "meeting", "callback", "refusal"}
    for stage in demo_script.stages:  # every stage can be recognised in every language
        languages = {lang for by_language in stage.examples.values() for lang in by_language}
        assert languages == {"en", "ru", "hu"}, stage.name


def test_valid_minimal_script():
    script = parse_script(VALID, "mini.yaml")
    assert (script.id, script.version, script.stage_names) == ("mini", 2, ("greeting", "close"))
    assert script.stage("greeting").examples["rep"]["ru"] == ("Здравствуйте, это Анна из Акме.",)
    assert len(script.sha256) == 64


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("speaker: rep", "speaker: manager"), r"mini.yaml:7: stage 'greeting': speaker must be one of"),
        (("version: 2", "version: two"), r"mini.yaml:2: version must be a whole number"),
        (("  - name: close", "  - name: greeting"), r"mini.yaml:12: stage 'greeting' is defined twice"),
        (
            ("    required: false", "    required: maybe"),
            r"mini.yaml:13: stage 'close': required must be true or false",
        ),
        (
            ("        en: [Send me", "        de: [Send me"),
            r"mini.yaml:17: language 'de' .* not in the script's languages",
        ),
        (("outcomes:", "outcome:"), r"mini.yaml:18: unknown key 'outcome' in the script"),
        (("  - name: close", "  - name: off_script"), r"mini.yaml:12: stage name 'off_script'"),
        (("      customer:", "      client:"), r"mini.yaml:16: stage 'close': examples are keyed by role"),
        (("languages: [en, ru]", "languages: [en, ru"), r"mini.yaml:\d+: not valid YAML"),
    ],
)
def test_errors_name_file_and_line(edit, message):
    old, new = edit
    assert old in VALID
    with pytest.raises(ScriptError, match=message):
        parse_script(VALID.replace(old, new, 1), "mini.yaml")


def test_missing_stages_and_empty_files():
    with pytest.raises(ScriptError, match=r"x.yaml:1: missing 'stages'"):
        parse_script("script: a\nversion: 1\nlanguages: [en]\n", "x.yaml")
    with pytest.raises(ScriptError, match=r"x.yaml:1: the script is empty"):
        parse_script("", "x.yaml")


def test_unreadable_file(tmp_path):
    with pytest.raises(ScriptError, match="cannot read"):
        load_script(tmp_path / "nope.yaml")


def test_prompt_uses_vocabulary():
    assert "BrightLine" in load_script(DEMO_SCRIPT).prompt()
    assert parse_script(VALID).prompt() is None


LABELLED_SET = """\
name: booking_service_call_v2
unit: turn
speakers: [agent, customer]
stages:
  - name: needs
    order: 2
    required: true
    examples: ["I need a hotel .", "What area ?"]
  - name: greeting
    order: 1
    required: false
    description: Hello.
    examples: ["Hi , can you help me ?"]
outcomes:
  sale: a booking was made
"""


def test_a_labelled_set_script_is_read_in_its_order():
    from salescalls.script.spec import ANY_ROLE, parse_script

    script = parse_script(LABELLED_SET, "set.yaml")
    assert (script.id, script.version, script.stage_names) == ("booking_service_call_v2", 2, ("greeting", "needs"))
    assert script.stage("needs").required and script.stage("needs").examples == {
        ANY_ROLE: {"en": ("I need a hotel .", "What area ?")}
    }
    assert list(script.outcomes) == ["sale"]


def test_a_labelled_set_script_with_a_bad_stage_names_the_line():
    from salescalls.script.spec import ScriptError, parse_script

    bad = LABELLED_SET.replace("    required: false\n", "    required: maybe\n")
    with pytest.raises(ScriptError, match=r"set.yaml:\d+: stage 'greeting': required must be true or false"):
        parse_script(bad, "set.yaml")


def test_a_script_without_usable_examples_is_refused_with_its_line(tmp_path):
    no_words = VALID.replace("en: [Send me the contract.]", 'en: ["...", "?!"]')
    with pytest.raises(ScriptError, match=r"^<script>:12: stage 'close' has no usable example phrase"):
        parse_script(no_words)
    labelled_set = (
        "name: x_v1\nstages:\n  - {name: a, order: 1, examples: ['Hello there']}\n"
        "  - {name: b, order: 2, examples: ['123']}\n"
    )
    with pytest.raises(ScriptError, match=r"stage 'b' has no usable example phrase"):
        parse_script(labelled_set)
    from typer.testing import CliRunner

    from salescalls.cli import app

    path = tmp_path / "team.yaml"
    path.write_text(no_words, encoding="utf-8")
    result = CliRunner().invoke(app, ["script", "check", str(path)])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "team.yaml:12:" in result.output


def test_success_outcomes_are_the_scripts_own_or_the_default_it_has():
    assert parse_script(VALID, "mini.yaml").success == ("sale",)  # the default ones the script names
    without = VALID[: VALID.index("outcomes:")]
    assert parse_script(without, "mini.yaml").success == ("sale", "meeting")  # no outcomes: the default
    own = VALID + "  demo_booked:\n    en: [see you on tuesday]\nsuccess: [demo_booked, sale]\n"
    assert parse_script(own, "mini.yaml").success == ("demo_booked", "sale")
    with pytest.raises(ScriptError, match=r"mini.yaml:2\d: success outcome 'won' is not one of the script's outcomes"):
        parse_script(VALID + "success: [won]\n", "mini.yaml")


def test_stage_order_is_read_from_either_format_and_a_bad_one_names_its_line():
    assert parse_script(VALID, "mini.yaml").stage_order == "strict"  # without the key
    assert parse_script(VALID + "stage_order: free\n", "mini.yaml").stage_order == "free"
    assert parse_script(LABELLED_SET + "stage_order: loose\n", "set.yaml").stage_order == "loose"
    bad = r"^mini.yaml:2\d: stage_order must be one of strict, loose, free, not 'any'$"
    with pytest.raises(ScriptError, match=bad):
        parse_script(VALID + "stage_order: any\n", "mini.yaml")
