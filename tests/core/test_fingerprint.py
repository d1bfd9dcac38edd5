"""Fingerprints: a stored run resumes only if its nodes still hash the same, so the hashes
of an unchanged workflow must never move (the values below were computed by the code
before the compiled plan existed; a change here strands every stored run)."""

from __future__ import annotations

from core_helpers import python_catalog

import dagtier
from dagtier.fingerprint import workflow_fingerprint
from dagtier.providers.base import Message

WF = """
name: fp
inputs:
  code: string
  lang: {type: string, default: py}
  extra: {type: object, required: false}
defaults:
  max_tokens: 300
nodes:
  a:
    prompt: "Review {{ inputs.code }} in {{ inputs.lang }}"
    policy: {kind: cascade, start: 1, max: 2}
    checks: [{type: judge, tier: 3}]
  b:
    prompt: "All inputs: {{ inputs }}"
    system: "be brief"
    depends_on: [a]
    output: {schema: {type: object}}
    policy: {kind: adaptive, min_tier: 2}
  c:
    prompt: "fixed text"
    temperature: 0.2
    policy: {kind: static, tier: 2}
  d:
    prompt: "{{ a }} and {{ c }}"
    depends_on: [a, c]
    cache: true
outputs:
  final: "{{ d }}"
"""

INPUTS = {"code": "x=1", "lang": "py", "extra": None}


def plan() -> dagtier.Plan:
    return dagtier.compile_workflow(dagtier.parse_workflow(WF), python_catalog())


def test_fingerprints_of_an_unchanged_workflow_are_the_ones_stored_runs_hold() -> None:
    p = plan()
    fps = p.node_fingerprints(INPUTS)
    assert fps == {
        "a": "a4025cb40f456e502e067683db7bc455",
        "c": "d43ef0e1ed6f3c1bbecf61b42bab8a6d",
        "b": "2194685f7eeb6c50d391e8613a657278",
        "d": "01adc1cde9d8419f7ada0eda862f9de2",
    }
    assert workflow_fingerprint(p.workflow, fps) == "d4518d1bc8f0790087a331867e69a68b"


def test_an_input_changes_exactly_the_nodes_that_read_it_and_their_descendants() -> None:
    fps = plan().node_fingerprints({**INPUTS, "code": "x=2"})
    assert fps == {
        "a": "6e1eea8eea0410fde6a927ea6d4d74cc",  # reads inputs.code
        "c": "d43ef0e1ed6f3c1bbecf61b42bab8a6d",  # reads no input: unchanged
        "b": "a7ab584e87277691df947e108d817439",  # reads the inputs object, below a
        "d": "6e04cac453cb8d64480f789c6d330c1e",  # below a
    }


def test_two_compilations_of_one_workflow_agree_and_a_kept_result_is_a_copy() -> None:
    one, two = plan(), plan()
    fps = one.node_fingerprints(INPUTS)
    fps["a"] = "edited by the caller"
    assert one.node_fingerprints(INPUTS) == two.node_fingerprints(INPUTS)
    assert one.node_fingerprints(INPUTS)["a"] == "a4025cb40f456e502e067683db7bc455"


def test_the_cache_key_is_the_one_stored_answers_are_filed_under() -> None:
    key = plan().cache_key("d", (Message("user", "A and C"),), None)
    assert key == "f9feab072609d57a6f941d84c5a2f15b"


def test_a_model_of_a_tier_the_node_may_use_changes_its_fingerprint() -> None:
    wf = dagtier.parse_workflow(WF)
    cat = python_catalog()
    other = dagtier.catalog_from_dict(
        {
            "models": {
                "fn1": {"provider": "python", "model": "fn-t1", "price": {"input": 1, "output": 2}},
                "fn2": {"provider": "python", "model": "fn-t2", "price": {"input": 1, "output": 2}},
                "x3": {"provider": "python", "model": "newer", "price": {"input": 1, "output": 2}},
            },
            "tiers": {1: ["fn1"], 2: ["fn2"], 3: ["x3"]},
        }
    )
    before = dagtier.compile_workflow(wf, cat).node_fingerprints(INPUTS)
    after = dagtier.compile_workflow(wf, other).node_fingerprints(INPUTS)
    # a's judge and b's adaptive range reach tier 3; c (static tier 2) does not
    assert before["c"] == after["c"]
    assert before["a"] != after["a"] and before["b"] != after["b"]
    assert before["d"] != after["d"]  # below a
