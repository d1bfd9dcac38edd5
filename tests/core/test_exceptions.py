"""The exception tree drawn in ``dagtier._exceptions``' docstring is the real class tree."""

from __future__ import annotations

import inspect
import re

import dagtier
from dagtier import _exceptions


def drawn_tree() -> dict[str, str | None]:
    """Each class named in the docstring's drawing, with the class drawn as its parent
    (None at the top level; a base in parentheses, ``Name(TypeError)``, is the parent)."""
    doc = _exceptions.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        m = re.match(r"( *)([A-Za-z]+)(?:\(([A-Za-z]+)\))?", line)
        assert m, line
        indent, name, base = len(m.group(1)), m.group(2), m.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parents[name] = base if base else (stack[-1][1] if stack else None)
        stack.append((indent, name))
    return parents


def test_the_drawn_exception_tree_matches_the_classes() -> None:
    """Every exception class of dagtier is drawn once, under its real base class."""
    classes = {
        name: cls
        for name, cls in vars(_exceptions).items()
        if inspect.isclass(cls)
        and issubclass(cls, BaseException)
        and cls.__module__ == _exceptions.__name__
    }
    drawn = drawn_tree()
    assert set(drawn) == set(classes)
    real = {
        name: (None if cls.__base__ is Exception else cls.__base__.__name__)
        for name, cls in classes.items()
    }
    assert drawn == real


def test_every_exception_class_is_public() -> None:
    """Each class in the tree can be caught as ``dagtier.<Name>``."""
    for name in drawn_tree():
        assert getattr(dagtier, name) is getattr(_exceptions, name)
        assert name in dagtier.__all__
