"""Importing the user's ``module:function`` references: checks, code nodes, tools, agents.

One import path for all of them, so a missing module reads the same wherever it is named.
A workflow's own directory is searched too (after ``sys.path``), so the functions a
workflow uses can live next to its YAML file: ``run: steps:read_file`` finds
``steps.py`` beside the workflow, wherever the command is run from.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

SPEC_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
"""``module:function``, the module dotted."""


class CallableError(Exception):
    """A ``module:function`` cannot be imported, or is not a function of the right shape."""

    def __init__(self, spec: str, problem: str, *, what: str = "python check") -> None:
        self.spec = spec
        self.problem = problem
        self.what = what
        super().__init__(f"{what} '{spec}': {problem}")


_CACHE: dict[tuple[str, tuple[str, ...]], Callable[..., Any] | CallableError] = {}
_PATH_LOCK = threading.Lock()


def import_callable(
    spec: str, *, search: Sequence[str] = (), what: str = "python check"
) -> Callable[..., Any]:
    """Import ``module:function`` once per process.

    Args:
        spec: ``module:function``.
        search: directories tried after ``sys.path`` (a workflow's own directory).
        what: how messages name the reference (``tool``, ``run``, ``python check``...).

    Raises:
        CallableError: the module or attribute cannot be found, or it is not callable.
    """
    key = (spec, tuple(search))
    cached = _CACHE.get(key)
    if cached is None:
        cached = _CACHE[key] = _resolve(spec, search, what)
    if isinstance(cached, CallableError):
        if cached.what != what:
            raise CallableError(spec, cached.problem, what=what)
        raise cached
    return cached


def _import_module(name: str, search: Sequence[str]) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = [d for d in search if d not in sys.path]
        # only a miss of the named module (or its package) is retried from the workflow's
        # directory; an import error raised inside the module is the user's to see
        if not missing or exc.name is None or not name.startswith(exc.name):
            raise
        with _PATH_LOCK:
            sys.path.extend(missing)
            try:
                return importlib.import_module(name)
            finally:
                for d in missing:
                    sys.path.remove(d)


def _resolve(spec: str, search: Sequence[str], what: str) -> Callable[..., Any] | CallableError:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        return CallableError(spec, "must be written module:function", what=what)
    try:
        module = _import_module(module_name, search)
    except Exception as exc:
        return CallableError(
            spec,
            f"cannot import module '{module_name}' ({type(exc).__name__}: {exc}); "
            "make sure it is on PYTHONPATH where the workflow runs, or next to the workflow file",
            what=what,
        )
    fn = getattr(module, attr, None)
    if fn is None:
        names = sorted(n for n in dir(module) if not n.startswith("_"))
        return CallableError(
            spec,
            f"module '{module_name}' has no attribute '{attr}'"
            + (f" (it defines: {', '.join(names[:12])})" if names else ""),
            what=what,
        )
    if not callable(fn):
        return CallableError(spec, f"'{attr}' is a {type(fn).__name__}, not a function", what=what)
    return fn  # type: ignore[no-any-return]
