"""The team's call script: a versioned YAML file, validated with file:line errors."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from salescalls import i18n
from salescalls.errors import InputError
from salescalls.records import DEFAULT_SUCCESS

ROLES = ("rep", "customer")
SPEAKERS = ("rep", "customer", "both")
OFF_SCRIPT = "off_script"  # the label of an utterance no stage fits
# Names (stages, outcomes, trackers, reasons) are lower-case words in any alphabet joined by
# underscores: a Russian team's stage is `приветствие`, a Hungarian one's `köszöntés`.
_NAME = re.compile(r"^(?!_)[^\W\d][\w]*$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_WORD = re.compile(r"[^\W\d_]", re.UNICODE)  # a letter, in any script
_TOP_KEYS = {
    "script",
    "version",
    "title",
    "languages",
    "vocabulary",
    "stages",
    "outcomes",
    "forbidden",
    "controlled",
    "trackers",
    "reasons",
    "success",
    "stage_order",
}
# How closely a team's calls follow the order of its stages (`stage_order:`), which decides how
# the stage model reads a call until labels decide it (salescalls.script.stages.STAGE_ORDER_DECODING).
STAGE_ORDERS = ("strict", "loose", "free")
_STAGE_KEYS = {"name", "required", "speaker", "description", "examples"}
_RULE_KEYS = {"name", "description", "phrases"}

Phrases = dict[str, tuple[str, ...]]  # language -> phrases


class ScriptError(InputError):
    """An invalid script; the message starts with file:line."""


@dataclass(frozen=True)
class Stage:
    name: str  # identifier used everywhere (analytics, labels)
    required: bool  # a complete call must contain it
    speaker: str  # who leads it: rep, customer or both
    description: str  # what happens in this stage, for people
    examples: dict[str, Phrases]  # role -> language -> example phrases


@dataclass(frozen=True)
class PhraseRule:
    name: str  # e.g. unauthorised_discount
    description: str  # why it matters
    phrases: Phrases  # language -> phrases that trigger it


@dataclass(frozen=True)
class Script:
    id: str  # script identifier, stored with every scored call
    version: int  # bumped by the team on every meaningful edit
    title: str  # human title
    languages: tuple[str, ...]  # languages the examples are written in
    stages: tuple[Stage, ...]  # in the order a call should go
    outcomes: dict[str, Phrases]  # outcome -> language -> marker phrases
    forbidden: tuple[PhraseRule, ...]  # phrases reps must not say
    vocabulary: tuple[str, ...]  # names and terms to prime the speech recogniser with
    sha256: str  # hash of the file's text, to tell edits apart
    controlled: tuple[PhraseRule, ...] = ()  # phrases allowed only with approval (special offers)
    trackers: dict[str, Phrases] = field(default_factory=dict)  # concept -> language -> phrases to find in calls
    reasons: dict[str, Phrases] = field(default_factory=dict)  # why customers leave -> language -> examples
    success: tuple[str, ...] = DEFAULT_SUCCESS  # outcomes that make a call a success wherever it ended
    stage_order: str = "strict"  # how closely calls follow the stages' order: one of STAGE_ORDERS

    @functools.cached_property  # asked for per utterance when 100,000 calls are rescored
    def stage_names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def position(self, name: str) -> int:
        """0-based order of a stage in the script."""
        return self.stage_names.index(name)

    def prompt(self, language: str | None = None) -> str | None:
        """Whisper initial prompt: the script's vocabulary, so names are spelled the team's way."""
        return ", ".join(self.vocabulary) + "." if self.vocabulary else None


def load_script(path: str | Path) -> Script:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScriptError(
            i18n._("{path}: cannot read the script: {reason}", path=path, reason=error.strerror or error)
        ) from None
    except UnicodeDecodeError as error:
        raise ScriptError(
            i18n._(
                "{path}: not UTF-8 text (byte {byte}); save the script as UTF-8 and try again",
                path=path,
                byte=error.start,
            )
        ) from None
    return parse_script(text, str(path))


def parse_script(text: str, source: str = "<script>") -> Script:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ScriptError(
            i18n._(
                "{where}: not valid YAML: {problem}", where=f"{source}{line}", problem=getattr(error, "problem", error)
            )
        ) from None
    if root is None:
        raise ScriptError(i18n._("{source}:1: the script is empty", source=source))
    if isinstance(root, yaml.MappingNode) and {str(k.value) for k, _ in root.value} >= {"name", "stages"}:
        return _labelled_set_script(root, text, source)
    parser = _Parser(source)
    top = parser.mapping(root, i18n._("the script"), _TOP_KEYS)
    script_id = parser.text(parser.need(top, "script", root), "script")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", script_id):
        parser.fail(top["script"], i18n._("script id may hold letters, digits, '.', '_' and '-' only"))
    version = parser.value(parser.need(top, "version", root))
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        parser.fail(top["version"], i18n._("version must be a whole number >= 1"))
    languages = tuple(parser.text_list(parser.need(top, "languages", root), "languages"))
    for language_node in top["languages"].value:
        if not _LANGUAGE.match(str(language_node.value)):
            parser.fail(
                language_node,
                i18n._("'{language}' is not a language code like en, ru, hu", language=language_node.value),
            )
    parser.languages = languages

    stages_node = parser.need(top, "stages", root)
    if not isinstance(stages_node, yaml.SequenceNode) or not stages_node.value:
        parser.fail(stages_node, i18n._("stages must be a non-empty list"))
    stages = [parser.stage(node) for node in stages_node.value]
    for node, stage in zip(stages_node.value, stages, strict=True):
        parser.need_usable_examples(node, stage)
    seen: dict[str, int] = {}
    for node, stage in zip(stages_node.value, stages, strict=True):
        if stage.name in seen:
            parser.fail(node, i18n._("stage '{stage}' is defined twice", stage=stage.name))
        seen[stage.name] = 1

    named: dict[str, dict[str, Phrases]] = {"outcomes": {}, "trackers": {}, "reasons": {}}
    kinds = {
        "outcomes": i18n.N_("outcome '{name}'"),
        "trackers": i18n.N_("tracker '{name}'"),
        "reasons": i18n.N_("reason '{name}'"),
    }
    for section, found in named.items():
        for key_node, value_node in parser.pairs(top[section], section) if section in top else []:
            name = str(key_node.value)
            what = i18n._(kinds[section], name=name)
            if not _NAME.match(name) or name != name.lower():
                parser.fail(key_node, i18n._("{what} must be lower-case words joined by underscores", what=what))
            # a tracker or reason may be said in any language the calls have, not only the examples'
            found[name] = parser.phrases(value_node, what, any_language=section != "outcomes")
    outcomes = named["outcomes"]
    rules: dict[str, list[PhraseRule]] = {"forbidden": [], "controlled": []}
    for kind in rules:
        if kind in top:
            node = top[kind]
            if not isinstance(node, yaml.SequenceNode):
                parser.fail(node, i18n._("{kind} must be a list of rules", kind=kind))
            rules[kind] = [parser.rule(item) for item in node.value]
    vocabulary = tuple(parser.text_list(top["vocabulary"], "vocabulary")) if "vocabulary" in top else ()
    return Script(
        success=parser.success(top.get("success"), outcomes),
        id=script_id,
        version=version,
        title=parser.text(top["title"], "title") if "title" in top else script_id,
        languages=languages,
        stages=tuple(stages),
        outcomes=outcomes,
        forbidden=tuple(rules["forbidden"]),
        controlled=tuple(rules["controlled"]),
        vocabulary=vocabulary,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        trackers=named["trackers"],
        reasons=named["reasons"],
        stage_order=parser.stage_order(top.get("stage_order")),
    )


ANY_ROLE = "any"  # examples of a labelled-set script, which does not say who speaks them


def _labelled_set_script(root: yaml.MappingNode, text: str, source: str) -> Script:
    """The stage-set format of labelled dialogue collections (such as ../shared/eval/dialogues).

    `name` (id, an `_vN` suffix is the version), `stages` with `name`, `order`, `required`,
    `description` and a flat list of `examples` (either side), `outcomes` as name -> description.
    Such a script has no per-role or per-language examples, no outcome phrases and no forbidden
    phrases; its examples train the cold-start model without a role.
    """
    parser = _Parser(source)
    top = {str(k.value): v for k, v in root.value}
    script_id = parser.text(top["name"], "name")
    match = re.search(r"_v(\d+)$", script_id)
    languages = tuple(parser.text_list(top["languages"], "languages")) if "languages" in top else ("en",)
    stages_node = top["stages"]
    if not isinstance(stages_node, yaml.SequenceNode) or not stages_node.value:
        parser.fail(stages_node, i18n._("stages must be a non-empty list"))
    stages = []
    for node in stages_node.value:
        fields = {str(k.value): v for k, v in parser.pairs(node, i18n._("a stage"))}
        name = parser.text(parser.need(fields, "name", node), i18n._("stage name"))
        order = parser.value(fields["order"]) if "order" in fields else len(stages) + 1
        required = parser.value(fields["required"]) if "required" in fields else False
        if not isinstance(required, bool):
            parser.fail(fields["required"], i18n._("stage '{stage}': required must be true or false", stage=name))
        examples = parser.text_list(
            parser.need(fields, "examples", node), i18n._("stage '{stage}' examples", stage=name)
        )
        description = parser.text(fields["description"], "description") if "description" in fields else ""
        stage = Stage(name, required, "both", description, {ANY_ROLE: {languages[0]: tuple(examples)}})
        parser.need_usable_examples(node, stage)
        stages.append((order, stage))
    outcomes = {}
    if "outcomes" in top:
        outcomes = {str(k.value): {} for k, _ in parser.pairs(top["outcomes"], "outcomes")}
    return Script(
        success=parser.success(top.get("success"), outcomes),
        id=script_id,
        version=int(match.group(1)) if match else 1,
        title=script_id,
        languages=languages,
        stages=tuple(stage for _, stage in sorted(stages, key=lambda pair: pair[0])),
        outcomes=outcomes,
        forbidden=(),
        vocabulary=(),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        stage_order=parser.stage_order(top.get("stage_order")),
    )


class _Parser:
    """Walks the composed YAML nodes so every error can name its line."""

    def __init__(self, source: str):
        self.source = source
        self.languages: tuple[str, ...] = ()
        self._loader = yaml.SafeLoader("")

    def fail(self, node: yaml.Node, message: str):
        raise ScriptError(f"{self.source}:{node.start_mark.line + 1}: {message}")

    def value(self, node: yaml.Node):
        return self._loader.construct_object(node, deep=True)

    def need(self, mapping: dict, key: str, parent: yaml.Node) -> yaml.Node:
        if key not in mapping:
            self.fail(parent, i18n._("missing '{key}'", key=key))
        return mapping[key]

    def pairs(self, node: yaml.Node, where: str) -> list[tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, i18n._("{where} must be a mapping", where=where))
        return list(node.value)

    def mapping(self, node: yaml.Node, where: str, allowed: set[str]) -> dict[str, yaml.Node]:
        result = {}
        for key_node, value_node in self.pairs(node, where):
            key = str(key_node.value)
            if key not in allowed:
                allowed_keys = ", ".join(sorted(allowed))
                self.fail(
                    key_node,
                    i18n._(
                        "unknown key '{key}' in {where} (allowed: {allowed})",
                        key=key,
                        where=where,
                        allowed=allowed_keys,
                    ),
                )
            result[key] = value_node
        return result

    def text(self, node: yaml.Node, where: str) -> str:
        value = self.value(node)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or not str(value).strip():
            self.fail(node, i18n._("{where} must be non-empty text", where=where))
        return str(value).strip()

    def stage_order(self, node: yaml.Node | None) -> str:
        """The script's `stage_order:`, one of STAGE_ORDERS; without the key, strict."""
        if node is None:
            return "strict"
        value = self.text(node, "stage_order")
        if value not in STAGE_ORDERS:
            self.fail(
                node,
                i18n._(
                    "stage_order must be one of {choices}, not '{value}'", choices=", ".join(STAGE_ORDERS), value=value
                ),
            )
        return value

    def success(self, node: yaml.Node | None, outcomes: dict) -> tuple[str, ...]:
        """The script's `success:` outcomes, each one the script names; without the key, the
        default ones the script has (all of them when it names no outcomes)."""
        if node is None:
            return tuple(o for o in DEFAULT_SUCCESS if o in outcomes) if outcomes else DEFAULT_SUCCESS
        names = self.text_list(node, "success")
        for item, name in zip(node.value, names, strict=True):
            if outcomes and name not in outcomes:
                self.fail(
                    item,
                    i18n._(
                        "success outcome '{name}' is not one of the script's outcomes: {outcomes}",
                        name=name,
                        outcomes=", ".join(outcomes),
                    ),
                )
        return tuple(dict.fromkeys(names))

    def text_list(self, node: yaml.Node, where: str) -> list[str]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.fail(node, i18n._("{where} must be a non-empty list", where=where))
        item_of = i18n._("an item of {where}", where=where)
        return [self.text(item, item_of) for item in node.value]

    def phrases(self, node: yaml.Node, where: str, any_language: bool = False) -> Phrases:
        result = {}
        for key_node, value_node in self.pairs(node, i18n._("{where} (language -> phrases)", where=where)):
            language = str(key_node.value)
            if any_language and not _LANGUAGE.match(language):
                self.fail(
                    key_node,
                    i18n._(
                        "'{language}' in {where} is not a language code like en, ru, hu", language=language, where=where
                    ),
                )
            if not any_language and language not in self.languages:
                self.fail(
                    key_node,
                    i18n._(
                        "language '{language}' in {where} is not in the script's languages {languages}",
                        language=language,
                        where=where,
                        languages=list(self.languages),
                    ),
                )
            result[language] = tuple(self.text_list(value_node, f"{where} [{language}]"))
        return result

    def stage(self, node: yaml.Node) -> Stage:
        fields = self.mapping(node, i18n._("a stage"), _STAGE_KEYS)
        name = self.text(self.need(fields, "name", node), i18n._("stage name"))
        if not _NAME.match(name) or name != name.lower() or name == OFF_SCRIPT:
            self.fail(
                fields["name"],
                i18n._(
                    "stage name '{name}' must be lower-case words joined by underscores, not '{off}'",
                    name=name,
                    off=OFF_SCRIPT,
                ),
            )
        required = self.value(self.need(fields, "required", node))
        if not isinstance(required, bool):
            self.fail(fields["required"], i18n._("stage '{stage}': required must be true or false", stage=name))
        speaker = self.text(self.need(fields, "speaker", node), "speaker")
        if speaker not in SPEAKERS:
            self.fail(
                fields["speaker"],
                i18n._("stage '{stage}': speaker must be one of {speakers}", stage=name, speakers=", ".join(SPEAKERS)),
            )
        examples = {}
        examples_node = self.need(fields, "examples", node)
        for role_node, phrases_node in self.pairs(examples_node, i18n._("stage '{stage}' examples", stage=name)):
            role = str(role_node.value)
            if role not in ROLES:
                self.fail(
                    role_node,
                    i18n._(
                        "stage '{stage}': examples are keyed by role ({roles}), not '{role}'",
                        stage=name,
                        roles=", ".join(ROLES),
                        role=role,
                    ),
                )
            examples[role] = self.phrases(
                phrases_node, i18n._("stage '{stage}' {role} examples", stage=name, role=role)
            )
        if not any(examples.values()):
            self.fail(node, i18n._("stage '{stage}' has no example phrases", stage=name))
        description = self.text(fields["description"], "description") if "description" in fields else ""
        return Stage(name=name, required=required, speaker=speaker, description=description, examples=examples)

    def need_usable_examples(self, node: yaml.Node, stage: Stage) -> None:
        """A stage is learned from its examples: at least one must hold a word."""
        phrases = [p for by_language in stage.examples.values() for ps in by_language.values() for p in ps]
        if not any(_WORD.search(p) for p in phrases):
            self.fail(
                node,
                i18n._(
                    "stage '{stage}' has no usable example phrase (none holds a word): add real examples",
                    stage=stage.name,
                ),
            )

    def rule(self, node: yaml.Node) -> PhraseRule:
        fields = self.mapping(node, i18n._("a phrase rule"), _RULE_KEYS)
        name = self.text(self.need(fields, "name", node), i18n._("rule name"))
        return PhraseRule(
            name=name,
            description=self.text(fields["description"], "description") if "description" in fields else "",
            phrases=self.phrases(self.need(fields, "phrases", node), i18n._("rule '{name}'", name=name)),
        )
