"""The code steps of workflows/refactor.yaml (found next to the workflow file).

``read_source`` and ``write_output`` are ``run:`` nodes. The checks run this file as a
program (``python refactor_steps.py check ...``): it copies a module and a test file into a
fresh temporary directory and runs the tests there, so "the tests pass" can gate a model's
answer. Tests run under pytest when it is installed, else under a small runner for plain
``def test_...():`` functions with ``assert``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)

TEST_FILE = "test_characterisation.py"


def code_of(answer: str) -> str:
    """The code in a model's answer: the longest fenced block, else the whole text."""
    blocks = _FENCE.findall(answer)
    return (max(blocks, key=len) if blocks else answer).strip() + "\n"


def read_source(path: str) -> dict[str, Any]:
    """Read the module to refactor.

    Returns its path, code, module name, and how the checks run this file
    (the interpreter and this helper's path).
    """
    source = Path(path)
    return {
        "path": str(source.resolve()),
        "module": source.stem,
        "code": source.read_text(encoding="utf-8"),
        "python": sys.executable,
        "helper": str(Path(__file__).resolve()),
    }


def write_output(
    read_source: dict[str, Any], implement_core: str, write_tests: str, out_dir: str
) -> dict[str, Any]:
    """Write the refactored module, its characterisation tests and a unified diff to a
    folder named after the module under ``out_dir``."""
    folder = Path(out_dir) / f"refactor-{read_source['module']}"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{read_source['module']}.py"
    new = code_of(implement_core)
    (folder / name).write_text(new, encoding="utf-8")
    (folder / TEST_FILE).write_text(code_of(write_tests), encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(
            read_source["code"].splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{name}",
            tofile=f"b/{name}",
        )
    )
    (folder / f"{read_source['module']}.diff").write_text(diff, encoding="utf-8")
    changed = sum(1 for line in diff.splitlines() if line[:1] in "+-") - 2 if diff else 0
    return {"folder": str(folder), "module": str(folder / name), "changed_lines": changed}


# --- the check: run tests against a module in a temporary directory ------------------------


def _run_plain(directory: Path) -> int:
    """Run every ``test_*`` function of the test file; 0 when all pass."""
    sys.path.insert(0, str(directory))
    spec = importlib.util.spec_from_file_location("characterisation", directory / TEST_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception:
        traceback.print_exc()
        return 2
    tests = [(n, f) for n, f in vars(module).items() if n.startswith("test_") and callable(f)]
    if not tests:
        print("no test_ functions found")
        return 5
    failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception:
            failed += 1
            print(f"FAILED {name}")
            traceback.print_exc()
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


def run_tests(code: str, module: str, tests: str) -> tuple[int, str]:
    """Run ``tests`` against ``code`` saved as ``module``.py in a fresh directory."""
    with tempfile.TemporaryDirectory(prefix="refactor-check-") as tmp:
        directory = Path(tmp)
        (directory / f"{module}.py").write_text(code, encoding="utf-8")
        (directory / TEST_FILE).write_text(tests, encoding="utf-8")
        if importlib.util.find_spec("pytest") is not None:
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST_FILE]
        else:
            argv = [sys.executable, str(Path(__file__).resolve()), "plain", tmp]
        env = {**os.environ, "PYTHONPATH": tmp, "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
        return proc.returncode, proc.stdout + proc.stderr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="run characterisation tests against a module")
    sub = ap.add_subparsers(dest="cmd", required=True)
    check = sub.add_parser("check", help="run TESTS against CODE (files; fenced code allowed)")
    check.add_argument("--code", required=True)
    tests = check.add_mutually_exclusive_group(required=True)
    tests.add_argument("--tests", help="a file holding the tests")
    tests.add_argument("--tests-text", help="the tests themselves")
    check.add_argument("--module", required=True)
    plain = sub.add_parser("plain", help="(internal) the runner used without pytest")
    plain.add_argument("directory")
    args = ap.parse_args(argv)
    if args.cmd == "plain":
        return _run_plain(Path(args.directory))
    code = code_of(Path(args.code).read_text(encoding="utf-8"))
    text = args.tests_text
    if text is None:
        text = Path(args.tests).read_text(encoding="utf-8")
    tests = code_of(text)
    status, output = run_tests(code, args.module, tests)
    print(output)
    return status


if __name__ == "__main__":
    sys.exit(main())
