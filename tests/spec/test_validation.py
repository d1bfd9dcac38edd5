"""Every mistake in a workflow file is reported with its line, column, field path, a stable
code and a message saying how to fix it, all problems of a file in one pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagtier import SpecError
from dagtier.spec import json_schema, load_workflow, parse_workflow


def problems(text: str) -> list[tuple[str, int | None, int | None, str]]:
    with pytest.raises(SpecError) as info:
        parse_workflow(text, "flow.yaml")
    return [(i.path, i.line, i.column, i.code) for i in info.value.issues]


def only_issue(text: str) -> tuple[str, str | None]:
    with pytest.raises(SpecError) as info:
        parse_workflow(text, "flow.yaml")
    assert len(info.value.issues) == 1, info.value
    return info.value.issues[0].message, info.value.issues[0].hint


def test_yaml_syntax_error_names_where_the_unclosed_quote_began() -> None:
    """An unclosed quote is reported where the scanner gave up and where the quote began."""
    text = "name: x\nnodes:\n  a:\n    prompt: 'unclosed\n"
    assert problems(text) == [("", 5, 1, "yaml-syntax")]
    message, hint = only_issue(text)
    assert message.startswith("YAML syntax error: while scanning a quoted scalar")
    assert "(it began on line 4, column 13)" in message
    assert hint and "quotes" in hint


def test_yaml_syntax_error_bad_indentation() -> None:
    """A mapping value in the wrong place is a yaml-syntax issue at its line."""
    text = "name: x\nnodes:\n  a:\n    prompt: hi\n   bad: indent\n"
    [(path, line, _col, code)] = problems(text)
    assert (path, line, code) == ("", 5, "yaml-syntax")


def test_unknown_key_suggests_the_close_field() -> None:
    """A misspelt field is located at its key and suggests the right name."""
    text = "name: x\nnodes:\n  a:\n    prompt: hi\n    depends: []\n"
    assert problems(text) == [("nodes.a.depends", 5, 5, "unknown-field")]
    assert only_issue(text) == ("unknown field 'depends'", "did you mean 'depends_on'?")


def test_unknown_key_without_a_close_match_lists_the_allowed_fields() -> None:
    """With nothing close, the hint lists the fields a node accepts."""
    _, hint = only_issue("name: x\nnodes:\n  a:\n    prompt: hi\n    zzzzzz: 1\n")
    assert hint is not None and hint.startswith("allowed fields: ")
    assert "depends_on" in hint and "prompt" in hint


def test_unknown_key_in_a_policy() -> None:
    """Unknown keys inside a policy are reported at the key, with did-you-mean."""
    text = "name: x\nnodes:\n  a:\n    prompt: hi\n    policy: {kind: cascade, strat: 2}\n"
    assert problems(text) == [("nodes.a.policy.strat", 5, 29, "unknown-field")]
    assert only_issue(text)[1] == "did you mean 'start'?"


def test_missing_required_fields_are_all_listed() -> None:
    """Both a missing workflow name and a node without a prompt are reported."""
    text = "nodes:\n  a:\n    depends_on: []\n"
    assert problems(text) == [
        ("name", 1, 1, "missing-field"),
        ("nodes.a.prompt", 3, 5, "missing-field"),
    ]
    with pytest.raises(SpecError) as info:
        parse_workflow(text, "flow.yaml")
    assert [i.message for i in info.value.issues] == [
        "required field 'name' is missing",
        "required field 'prompt' is missing",
    ]


def test_wrong_type_says_what_was_expected_and_what_was_given() -> None:
    """A string where an integer belongs reads 'expected an integer', code wrong-type."""
    text = "name: x\nnodes:\n  a:\n    prompt: hi\n    max_tokens: lots\n"
    assert problems(text) == [("nodes.a.max_tokens", 5, 17, "wrong-type")]
    assert only_issue(text)[0] == "expected an integer, got 'lots'"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("temperature", "hot", "expected a number, got 'hot'"),
        ("depends_on", "b", "expected a list, got 'b'"),
        ("prompt", "[1, 2]", "expected a string, got [1, 2]"),
        ("cache", "sometimes", "expected true or false, got 'sometimes'"),
    ],
)
def test_wrong_types_of_each_kind(field: str, value: str, expected: str) -> None:
    """Each wrong type names the type the field takes."""
    prompt = "" if field == "prompt" else "    prompt: hi\n"
    text = f"name: x\nnodes:\n  a:\n{prompt}    {field}: {value}\n"
    [(path, _l, _c, code)] = problems(text)
    assert (path, code) == (f"nodes.a.{field}", "wrong-type")
    assert only_issue(text)[0] == expected


def test_unknown_dependency_suggests_the_close_node() -> None:
    """depends_on naming no node is located at the entry, with did-you-mean."""
    text = (
        "name: x\nnodes:\n  summarize:\n    prompt: hi\n"
        "  b:\n    prompt: hi\n    depends_on: [summarize, sumarize]\n"
    )
    assert problems(text) == [("nodes.b.depends_on[1]", 7, 29, "unknown-dependency")]
    assert only_issue(text) == ("no node named 'sumarize'", "did you mean 'summarize'?")


def test_unknown_dependency_with_nothing_close_lists_the_nodes() -> None:
    """Without a close match the hint lists the defined nodes."""
    text = "name: x\nnodes:\n  a:\n    prompt: hi\n  b:\n    prompt: hi\n    depends_on: [zzz]\n"
    assert only_issue(text) == ("no node named 'zzz'", "nodes defined: a, b")


def test_cycle_prints_the_cycle_path() -> None:
    """A dependency cycle is one issue that prints the cycle in order."""
    text = (
        "name: x\nnodes:\n"
        "  a:\n    prompt: hi\n    depends_on: [c]\n"
        "  b:\n    prompt: hi\n    depends_on: [a]\n"
        "  c:\n    prompt: '{{ b }}'\n    depends_on: [b]\n"
    )
    assert problems(text) == [("nodes.a.depends_on", 5, 17, "dependency-cycle")]
    message, hint = only_issue(text)
    assert message == "dependency cycle: a -> b -> c -> a"
    assert hint == "remove one of these dependencies; a workflow must be a DAG"


def test_self_dependency() -> None:
    """A node depending on itself is its own, clearer issue."""
    text = "name: x\nnodes:\n  a:\n    prompt: hi\n    depends_on: [a]\n"
    assert problems(text) == [("nodes.a.depends_on[0]", 5, 18, "self-dependency")]


def test_template_problems_unknown_name_non_ancestor_and_undeclared_input() -> None:
    """A prompt using a node that is not upstream, an unknown name and an undeclared input
    yields three issues, each with a hint that fixes it."""
    text = (
        "name: x\ninputs:\n  text: string\nnodes:\n"
        "  a:\n    prompt: '{{ inputs.txt }} {{ b }} {{ zz }}'\n"
        "  b:\n    prompt: hi\n"
    )
    with pytest.raises(SpecError) as info:
        parse_workflow(text, "flow.yaml")
    got = [(i.path, i.line, i.column, i.code, i.message, i.hint) for i in info.value.issues]
    assert got == [
        (
            "nodes.a.prompt",
            6,
            13,
            "not-an-ancestor",
            "template refers to node 'b', which is not upstream of 'a'",
            "add 'b' to depends_on of 'a'",
        ),
        (
            "nodes.a.prompt",
            6,
            13,
            "unknown-template-name",
            "template refers to unknown name 'zz'",
            "templates may use inputs.NAME or an upstream node id (a, b)",
        ),
        (
            "nodes.a.prompt",
            6,
            13,
            "undeclared-input",
            "template uses undeclared input 'txt'",
            "did you mean 'text'?",
        ),
    ]


def test_template_may_use_any_ancestor_not_only_parents() -> None:
    """A grandparent's output is upstream, so using it is fine."""
    wf = parse_workflow(
        "name: x\nnodes:\n  a:\n    prompt: hi\n  b:\n    prompt: hi\n    depends_on: [a]\n"
        "  c:\n    prompt: '{{ a }}'\n    depends_on: [b]\n"
    )
    assert list(wf.nodes) == ["a", "b", "c"]


def test_template_syntax_error_in_a_block_points_at_its_line() -> None:
    """A Jinja syntax error inside a block scalar points at the template's own line."""
    text = "name: x\nnodes:\n  a:\n    prompt: |\n      line one\n      {{ oops\n"
    [(path, line, _col, code)] = problems(text)
    assert (path, code) == ("nodes.a.prompt", "template-syntax")
    assert line == 6


def test_outputs_templates_are_checked() -> None:
    """An output referring to an unknown node is reported under outputs."""
    text = "name: x\nnodes:\n  a:\n    prompt: hi\noutputs:\n  result: '{{ aa }}'\n"
    assert problems(text) == [("outputs.result", 6, 11, "unknown-template-name")]
    assert only_issue(text)[1] == "did you mean 'a'?"


@pytest.mark.parametrize(
    ("policy", "path", "column"),
    [
        ("{kind: static, tier: 4}", "nodes.a.policy.tier", 34),
        ("{kind: cascade, start: 0}", "nodes.a.policy.start", 36),
        ("{kind: adaptive, max_tier: 5}", "nodes.a.policy.max_tier", 40),
    ],
)
def test_unknown_tier_says_what_tiers_are(policy: str, path: str, column: int) -> None:
    """A tier outside 1-3 gets code unknown-tier and a message explaining the tiers."""
    text = f"name: x\nnodes:\n  a:\n    prompt: hi\n    policy: {policy}\n"
    assert problems(text) == [(path, 5, column, "unknown-tier")]
    message, _ = only_issue(text)
    assert message.startswith("tier must be 1, 2 or 3 (1 cheap, 2 mid, 3 frontier), got ")


def test_unknown_tier_of_a_judge_check_and_in_defaults() -> None:
    """Tiers are checked wherever they appear: defaults and judge checks."""
    text = (
        "name: x\ndefaults:\n  policy: {kind: static, tier: '2'}\n"
        "nodes:\n  a:\n    prompt: hi\n    checks:\n      - {type: judge, tier: 9}\n"
    )
    assert problems(text) == [
        ("defaults.policy.tier", 3, 32, "unknown-tier"),
        ("nodes.a.checks[0].tier", 8, 29, "unknown-tier"),
    ]


def test_unknown_policy_kind_suggests_the_close_kind() -> None:
    """A misspelt policy kind is located at the kind and suggests the right one."""
    text = "name: x\nnodes:\n  a:\n    prompt: hi\n    policy: {kind: statik, tier: 1}\n"
    assert problems(text) == [("nodes.a.policy.kind", 5, 20, "invalid-choice")]
    assert only_issue(text) == (
        "unknown kind 'statik'; expected one of: static, cascade, adaptive",
        "did you mean 'static'?",
    )


def test_impossible_cascade_start_above_max() -> None:
    """A cascade starting above its max tier is impossible-policy, with the fix."""
    text = "name: x\nnodes:\n  a:\n    prompt: hi\n    policy: {kind: cascade, start: 3, max: 2}\n"
    assert problems(text) == [("nodes.a.policy", 5, 13, "impossible-policy")]
    assert only_issue(text)[0] == (
        "start tier 3 is above max tier 2: the cascade could never run; "
        "set start <= max (e.g. start: 2)"
    )


def test_impossible_adaptive_min_above_max() -> None:
    """An adaptive policy whose min tier is above its max is impossible-policy."""
    text = (
        "name: x\nnodes:\n  a:\n    prompt: hi\n"
        "    policy: {kind: adaptive, min_tier: 3, max_tier: 1}\n"
    )
    assert problems(text) == [("nodes.a.policy", 5, 13, "impossible-policy")]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[3, 1]", "fix_worth [low, high] has low 3 above high 1; write [1, 3]"),
        ("[1, 2, 3]", "fix_worth must be a number or [low, high] of numbers > 0"),
        ("0", "fix_worth must be a number > 0"),
        ("cheap", "fix_worth must be a number > 0"),
    ],
)
def test_bad_fix_worth_says_what_it_means(value: str, message: str) -> None:
    """fix_worth is a number or a [low, high] range of max-tier calls; anything else is
    bad-fix-worth at the field, saying what the numbers mean."""
    text = (
        "name: x\nnodes:\n  a:\n    prompt: hi\n"
        f"    policy: {{kind: adaptive, fix_worth: {value}}}\n"
    )
    [(path, line, _col, code)] = problems(text)
    assert (path, line, code) == ("nodes.a.policy.fix_worth", 5, "bad-fix-worth")
    assert only_issue(text)[0].startswith(message)


def test_fix_worth_accepts_a_number_or_a_range() -> None:
    text = (
        "name: x\nnodes:\n  a:\n    prompt: hi\n    policy: {kind: adaptive, fix_worth: [1, 4]}\n"
        "  b:\n    prompt: hi\n    policy: {kind: adaptive, fix_worth: 2}\n"
        "  c:\n    prompt: hi\n    policy: {kind: cascade, fix_worth: 3}\n"
    )
    wf = parse_workflow(text, "flow.yaml")
    assert wf.node_policy("a").fix_worth == (1.0, 4.0)  # type: ignore[union-attr]
    assert wf.node_policy("b").fix_worth == 2.0  # type: ignore[union-attr]
    assert wf.node_policy("c").fix_worth == 3.0  # type: ignore[union-attr]


def test_duplicate_node_id_is_reported_with_the_first_line() -> None:
    """A node id used twice names both lines; the other problems are still reported."""
    text = "name: x\nnodes:\n  a:\n    prompt: hi\n  a:\n    prompt: ho\n    depends_on: [zz]\n"
    assert problems(text) == [
        ("nodes.a", 5, 3, "duplicate-node-id"),
        ("nodes.a.depends_on[0]", 7, 18, "unknown-dependency"),
    ]
    with pytest.raises(SpecError) as info:
        parse_workflow(text, "flow.yaml")
    assert info.value.issues[0].message == "node id 'a' is used twice (first on line 3)"


def test_duplicate_key_elsewhere() -> None:
    """A field given twice in a node is duplicate-key."""
    text = "name: x\nnodes:\n  a:\n    prompt: hi\n    prompt: ho\n"
    assert problems(text) == [("nodes.a.prompt", 5, 5, "duplicate-key")]


def test_empty_workflow() -> None:
    """A workflow with no nodes is empty-workflow."""
    text = "name: x\nnodes: {}\n"
    assert problems(text) == [("nodes", 2, 8, "empty-workflow")]
    assert only_issue(text)[0] == "the workflow has no nodes; add at least one under 'nodes:'"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n"])
def test_empty_or_non_mapping_document(text: str) -> None:
    """An empty file or a non-mapping document is not-a-mapping at line 1."""
    assert problems(text) == [("", 1, 1, "not-a-mapping")]


def test_invalid_node_id_and_reserved_id() -> None:
    """Node ids must be identifiers templates can name, and not Jinja's reserved names."""
    text = "name: x\nnodes:\n  my-node:\n    prompt: hi\n  inputs:\n    prompt: hi\n"
    assert problems(text) == [
        ("nodes.my-node", 3, 3, "invalid-node-id"),
        ("nodes.inputs", 5, 3, "reserved-node-id"),
    ]


def test_one_pass_reports_model_and_graph_problems_together() -> None:
    """A type error does not hide the unknown dependency, the cycle or the template issue."""
    text = (
        "name: x\nnodes:\n"
        "  a:\n    prompt: hi\n    max_tokens: lots\n    depends_on: [bb]\n"
        "  b:\n    prompt: '{{ a }}'\n"
        "  c:\n    prompt: hi\n    policy: {kind: static, tier: 7}\n    depends_on: [d]\n"
        "  d:\n    prompt: hi\n    depends_on: [c]\n"
    )
    assert problems(text) == [
        ("nodes.a.max_tokens", 5, 17, "wrong-type"),
        ("nodes.a.depends_on[0]", 6, 18, "unknown-dependency"),
        ("nodes.b.prompt", 8, 13, "not-an-ancestor"),
        ("nodes.c.policy.tier", 11, 34, "unknown-tier"),
        ("nodes.c.depends_on", 12, 17, "dependency-cycle"),
    ]


def test_error_text_lists_count_path_position_code_and_hint() -> None:
    """The rendered error follows the documented anatomy."""
    with pytest.raises(SpecError) as info:
        parse_workflow(
            "name: x\nnodes:\n  a:\n    prompt: hi\n    depends: []\n", "flows/review.yaml"
        )
    assert str(info.value) == (
        "1 problem in flows/review.yaml\n"
        "  nodes.a.depends  (line 5, col 5)\n"
        "      unknown field 'depends'  [code=unknown-field]\n"
        "      hint: did you mean 'depends_on'?"
    )


def test_missing_file(tmp_path: Path) -> None:
    """A missing workflow file is a SpecError naming the file, not an OSError."""
    with pytest.raises(SpecError) as info:
        load_workflow(tmp_path / "nope.yaml")
    assert [i.code for i in info.value.issues] == ["file-not-found"]


VALID = """\
name: triage
description: sort a ticket
inputs:
  ticket: string
  lang: {type: string, default: en}
defaults:
  max_tokens: 300
nodes:
  classify:
    prompt: "Classify: {{ inputs.ticket }}"
    policy: {kind: static, tier: 1}
    output:
      schema: {type: object, properties: {category: {type: string}}, required: [category]}
  answer:
    depends_on: [classify]
    prompt: "Answer a {{ classify.category }} ticket in {{ inputs.lang }}"
    policy: {kind: cascade, start: 1, max: 3}
    checks:
      - {type: length, min: 10}
  review:
    depends_on: [answer]
    prompt: "Review {{ answer }}"
    policy: {kind: adaptive, target: 0.8}
outputs:
  reply: "{{ answer }}"
"""


def test_json_schema_accepts_a_valid_workflow_and_rejects_a_bad_one() -> None:
    """The JSON Schema from `dagtier schema` agrees with the loader on valid and bad files."""
    import yaml
    from jsonschema import Draft202012Validator

    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    assert list(validator.iter_errors(yaml.safe_load(VALID))) == []
    parse_workflow(VALID)
    bad = yaml.safe_load(VALID)
    bad["nodes"]["classify"]["policy"]["tier"] = 4
    assert list(validator.iter_errors(bad))


def test_json_schema_validates_the_shipped_workflows() -> None:
    """Every workflows/*.yaml and examples/*.yaml is valid against the published schema."""
    import yaml
    from jsonschema import Draft202012Validator

    root = Path(__file__).resolve().parents[2]
    files = sorted([*root.glob("workflows/*.yaml"), *root.glob("examples/*.yaml")])
    assert files, "no shipped workflow found"
    validator = Draft202012Validator(json_schema())
    for f in files:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(f.read_text()))]
        assert errors == [], f
        load_workflow(f)


def test_schema_is_json_serialisable() -> None:
    """`dagtier schema` output is plain JSON."""
    assert json.loads(json.dumps(json_schema()))["title"] == "dagtier workflow"


BILLION_LAUGHS = (
    "name: x\nnodes:\n  a:\n    prompt: hi\nlol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10))
)


def test_alias_bomb_is_refused_where_it_expands() -> None:
    """A "billion laughs" document stops with yaml-alias-bomb at the field that expands,
    instead of expanding a billion values."""
    assert problems(BILLION_LAUGHS) == [("lol4", 9, 7, "yaml-alias-bomb")]
    message, hint = only_issue(BILLION_LAUGHS)
    assert message.startswith("aliases (*name) repeat more than 100,000 values here")
    assert hint == "write the repeated values out, or repeat an anchor fewer times"


def test_aliases_in_ordinary_use_are_fine() -> None:
    """One anchored policy repeated on many nodes is read as written."""
    nodes = "".join(f"  n{i}:\n    prompt: hi\n    policy: *p\n" for i in range(200))
    text = "name: x\ndefaults:\n  policy: &p {kind: cascade, start: 1, max: 2}\nnodes:\n" + nodes
    wf = parse_workflow(text, "flow.yaml")
    assert wf.node_policy("n199").max == 2  # type: ignore[union-attr]


def test_a_document_too_large_is_refused_before_parsing() -> None:
    """A file beyond the size limit is document-too-large, with the hint to pass inputs instead."""
    from dagtier._yaml import MAX_DOCUMENT_CHARS

    text = "name: x\n" + "# padding\n" * (MAX_DOCUMENT_CHARS // 10)
    assert problems(text) == [("", MAX_DOCUMENT_CHARS // 10 + 1, None, "document-too-large")]
    assert "inputs at run time" in (only_issue(text)[1] or "")


def test_deeply_nested_document_is_a_spec_error() -> None:
    """Runaway nesting is yaml-too-deep, not a RecursionError traceback."""
    assert problems("[" * 1_200) == [("", None, None, "yaml-too-deep")]


def test_length_check_with_min_above_max() -> None:
    """A length check no answer could pass is impossible-check at the check, with the fix."""
    text = "name: x\nnodes:\n  a:\n    prompt: hi\n    checks:\n      - {type: length, min: 10, max: 5}\n"
    assert problems(text) == [("nodes.a.checks[0]", 6, 9, "impossible-check")]
    assert only_issue(text) == (
        "min 10 is above max 5: no answer could pass this check",
        "set min <= max",
    )


@pytest.mark.parametrize("value", ["1.0e+11", "100000000000", "1025"])
def test_concurrency_beyond_any_provider_limit(value: str) -> None:
    """A concurrency no provider admits is value-too-large at the field, with a sane range."""
    text = f"name: x\nconcurrency: {value}\nnodes:\n  a:\n    prompt: hi\n"
    assert problems(text) == [("concurrency", 2, 14, "value-too-large")]
    message, hint = only_issue(text)
    assert message.endswith("is more than 1024 nodes calling models at once")
    assert hint and "16 to 64" in hint
