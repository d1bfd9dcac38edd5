"""workflows/refactor.yaml end to end: real files, real test runs in subprocesses, a
scripted model whose cheaper tiers get the tests and the refactoring wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _catalog import one_per_tier

import dagtier
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry, PythonProvider

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]

GOOD_TESTS = """```python
import pytest

import inventory


def setup_function():
    inventory.clear()


def test_add_merges_names_and_keeps_the_price():
    assert inventory.add(" Apple ", 3, 0.5) == 3
    assert inventory.add("apple", 2) == 5
    assert inventory.report() == "apple: 5 @ 0.50"


def test_add_refuses_non_positive_quantities():
    with pytest.raises(ValueError):
        inventory.add("pear", 0)


def test_remove_and_value():
    inventory.load("# stock\\napple,4,0.25\\n\\npear,2\\nfig,1,3")
    assert inventory.remove("apple", 5) is False
    assert inventory.remove("fig", 1) is True
    assert inventory.value() == 1.0
    assert inventory.low_stock(3) == ["pear"]
    assert inventory.report() == "apple: 4 @ 0.25\\npear: 2 @ n/a"
```"""

WRONG_TESTS = """```python
import inventory


def test_value_of_nothing():
    inventory.clear()
    assert inventory.value() == 1
```"""

GOOD_REFACTOR = '''```python
"""Stock keeping: items by normalised name, with a quantity and an optional unit price."""

stock: dict[str, list] = {}


def _key(name):
    return name.strip().lower()


def add(name, qty, price=None):
    if qty <= 0:
        raise ValueError("qty must be positive")
    item = stock.setdefault(_key(name), [0, price])
    item[0] += qty
    if price is not None:
        item[1] = price
    return item[0]


def remove(name, qty):
    item = stock.get(_key(name))
    if item is None or item[0] < qty:
        return False
    item[0] -= qty
    if item[0] == 0:
        del stock[_key(name)]
    return True


def value():
    return round(sum(q * p for q, p in stock.values() if p is not None), 2)


def low_stock(threshold=5):
    return sorted(n for n, (q, _) in stock.items() if q < threshold)


def _line(name, qty, price):
    return f"{name}: {qty} @ " + ("n/a" if price is None else f"{price:.2f}")


def report():
    return "\\n".join(_line(n, *stock[n]) for n in sorted(stock))


def load(text):
    count = 0
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, qty, *price = line.split(",")
        add(name, int(qty), float(price[0]) if price else None)
        count += 1
    return count


def clear():
    stock.clear()
```'''

BROKEN_REFACTOR = GOOD_REFACTOR.replace("return sorted(n for", "return list(n for").replace(
    "if price is not None:\n        item[1] = price", "item[1] = price"
)


def model(m: Any, req: CompletionRequest) -> str:
    node = req.metadata.get("node_id")
    text = "\n".join(x.content for x in req.messages)
    if "PASS" in text and "FAIL" in text:  # the review's judge
        return "PASS"
    tier = int(m.model[-1])
    answers = {
        "classify": json.dumps({"language": "python", "kind": "library", "complexity": "low"}),
        "extract_hotspots": json.dumps({"hotspots": [{"name": "add", "smell": "None checks"}]}),
        "decompose": json.dumps({"steps": [{"id": 1, "change": "use is None", "risk": "low"}]}),
        "write_tests": WRONG_TESTS if tier < 3 else GOOD_TESTS,
        "implement_core": BROKEN_REFACTOR if tier < 3 else GOOD_REFACTOR,
        "review": "1. name the item fields",
        "summarise": "Refactor inventory\\n- clearer helpers",
    }
    return answers[str(node)]


async def test_the_refactor_workflow_runs_the_tests_before_and_after(tmp_path: Path) -> None:
    """Tests that fail on the original escalate write_tests; a refactoring that breaks them
    escalates implement_core; the accepted module, its tests and a diff are written to the
    folder the outputs name."""
    wf = dagtier.load_workflow(ROOT / "workflows" / "refactor.yaml")
    gateway = Gateway(one_per_tier("m"), ProviderRegistry({"python": PythonProvider(model)}))
    source = ROOT / "examples" / "refactor" / "inventory.py"
    out = tmp_path / "out"
    res = await dagtier.run(
        wf, {"path": str(source), "out_dir": str(out)}, gateway=gateway, store=dagtier.MemoryStore()
    )
    assert res.ok, {n: r.error for n, r in res.nodes.items() if not r.ok}
    tests, core = res["write_tests"], res["implement_core"]
    assert [(a.tier, a.verdict) for a in tests.attempts] == [(2, "fail"), (3, "pass")]
    assert tests.attempts[0].checks[-1].check == "command"
    assert "1 failed" in tests.attempts[0].reason or "FAILED" in tests.attempts[0].reason
    assert [(a.tier, a.verdict) for a in core.attempts] == [(2, "fail"), (3, "pass")]
    assert "FAILED" in core.attempts[0].reason
    folder = out / "refactor-inventory"
    assert res.outputs["folder"] == str(folder)
    assert (folder / "inventory.py").read_text() in GOOD_REFACTOR
    assert "def test_remove_and_value" in (folder / "test_characterisation.py").read_text()
    diff = (folder / "inventory.diff").read_text()
    assert diff.startswith("--- a/inventory.py\n+++ b/inventory.py\n")
    assert "-        if price != None:" in diff
    assert source.read_text().startswith("# inventory.py")  # the original is untouched
