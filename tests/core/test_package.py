"""The public surface: `import dagtier` stays light, and every public name is exported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import dagtier

SRC = str(Path(__file__).resolve().parents[2] / "src")

HEAVY = ("anthropic", "openai", "xllamacpp", "networkx", "rich", "pydantic", "jinja2")


def imported_after(code: str) -> set[str]:
    """Top-level module names a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=60,
    ).stdout
    return set(json.loads(out))


def test_import_dagtier_loads_no_sdk_graph_or_ui_library() -> None:
    """`import dagtier` imports none of the provider SDKs, the local model, networkx or rich
    (behaviour, not timing: each would cost tens to hundreds of milliseconds)."""
    loaded = imported_after("import dagtier")
    assert "dagtier" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_loading_a_workflow_does_not_import_sdks() -> None:
    """Parsing a workflow pulls in the spec machinery but still no provider SDK or rich."""
    loaded = imported_after(
        "import dagtier; dagtier.parse_workflow('name: x\\nnodes:\\n  a:\\n    prompt: hi\\n')"
    )
    assert loaded.isdisjoint({"anthropic", "openai", "xllamacpp", "rich"})


def test_every_public_name_is_in_all_and_resolves() -> None:
    """Each name in __all__ resolves to a dagtier object; every public dagtier object in the
    package namespace is listed in __all__ (anyio's test_all_attributes)."""
    for name in dagtier.__all__:
        obj = getattr(dagtier, name)
        if name != "__version__":
            assert obj.__module__.startswith("dagtier"), name
    # __dir__ lists __all__, so look at the namespace itself (lazy names are now loaded)
    missing = {
        name
        for name, obj in vars(dagtier).items()
        if not name.startswith("_")
        and not isinstance(obj, types.ModuleType)
        and getattr(obj, "__module__", "").startswith("dagtier")
    } - set(dagtier.__all__)
    assert missing == set()
    assert sorted(dagtier.__all__) == list(dagtier.__all__)
    assert len(set(dagtier.__all__)) == len(dagtier.__all__)
    assert dir(dagtier) == sorted(dagtier.__all__)


def test_public_classes_claim_the_public_module() -> None:
    """Exported names are the objects of their defining modules, reachable the same way."""
    from dagtier.executor import run
    from dagtier.spec import load_workflow

    assert dagtier.run is run
    assert dagtier.load_workflow is load_workflow


def test_unknown_attribute_is_an_attribute_error() -> None:
    """A typo on the package is an AttributeError naming it, not a crash in the lazy loader."""
    with pytest.raises(AttributeError, match="no attribute 'lod_workflow'"):
        dagtier.lod_workflow  # noqa: B018
