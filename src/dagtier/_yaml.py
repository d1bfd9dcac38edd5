"""YAML with positions: every value's line and column, so errors can say where.

Both the workflow spec and the model catalog load through here, and both turn pydantic's
``ValidationError`` into :class:`SpecIssue` objects with the same function.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ._exceptions import SpecError, SpecIssue

PathKey = tuple[str | int, ...]
Positions = dict[PathKey, tuple[int, int]]

MAX_DOCUMENT_CHARS = 4 * 1024 * 1024
"""Longest workflow or catalog file read (parsing runs at about 0.3 MB/s, so this bounds it to
seconds); inputs, however large, are given at run time and never parsed as YAML."""
MAX_ALIAS_VALUES = 100_000
"""Most values that aliases (``*name``) may add by repeating an anchored value: far above
any real use (a default policy repeated on 1,000 nodes adds about 5,000), far below the
billions a "billion laughs" document expands to."""


def format_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def load_yaml(
    text: str, source: str, *, problems: list[SpecIssue] | None = None
) -> tuple[Any, Positions]:
    """Parse ``text``; return the data and a map from field path to (line, column), 1-based.

    Args:
        problems: when given, a key given twice is appended here (the later value wins in
            the data) so the caller can report it with the document's other problems;
            otherwise it raises at once.

    Raises:
        SpecError: on a YAML syntax error, or a key given twice when ``problems`` is None.
    """
    if len(text) > MAX_DOCUMENT_CHARS:
        raise SpecError(
            source=source,
            issues=[
                SpecIssue(
                    path="",
                    message=f"the document is longer than {MAX_DOCUMENT_CHARS:,} characters",
                    code="document-too-large",
                    line=text.count("\n", 0, MAX_DOCUMENT_CHARS) + 1,
                    hint="pass large texts as inputs at run time (-i name=@file), "
                    "not inside the YAML",
                )
            ],
        )
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        positions: Positions = {}
        issues: list[SpecIssue] = []
        _walk(root, (), positions, issues, _Expansion(source, positions))
        if issues:
            if problems is None:
                raise SpecError(source=source, issues=issues)
            problems.extend(issues)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{exc.context}, {problem}"
        ctx = exc.context_mark
        if ctx is not None and mark is not None and ctx.line != mark.line:
            # the error is often found far below its cause (an unclosed quote at the end of
            # the file): say where the construct began, too
            problem += f" (it began on line {ctx.line + 1}, column {ctx.column + 1})"
        raise SpecError(
            source=source,
            issues=[
                SpecIssue(
                    path="",
                    message=f"YAML syntax error: {problem}",
                    code="yaml-syntax",
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                    hint="check indentation and quoting around this line; "
                    "strings containing ': ' or '{{' need quotes or a block (|)",
                )
            ],
        ) from None
    except RecursionError:
        raise SpecError(
            source=source,
            issues=[
                SpecIssue(
                    path="",
                    message="the document is nested too deeply to read",
                    code="yaml-too-deep",
                    hint="a workflow needs a few levels of nesting; look for runaway brackets",
                )
            ],
        ) from None
    finally:
        loader.dispose()
    return data, positions


class _Expansion:
    """Counts the values that aliases repeat, so a "billion laughs" document stops early."""

    def __init__(self, source: str, positions: Positions) -> None:
        self.source = source
        self.positions = positions
        self.seen: set[int] = set()
        self.repeated = 0

    def visit(self, node: yaml.Node, path: PathKey) -> None:
        if id(node) not in self.seen:
            self.seen.add(id(node))
            return
        # an alias is the anchored node object itself, met again
        self.repeated += 1
        if self.repeated > MAX_ALIAS_VALUES:
            # the top-level field the expansion happens under: deeper paths are artefacts
            # of the expansion itself, and the alias's own position is not kept by PyYAML
            top = path[:1]
            line, column = locate(self.positions, top, key=True)
            raise SpecError(
                source=self.source,
                issues=[
                    SpecIssue(
                        path=format_path(top),
                        message=f"aliases (*name) repeat more than {MAX_ALIAS_VALUES:,} "
                        "values here: aliases of lists that hold aliases multiply",
                        code="yaml-alias-bomb",
                        line=line,
                        column=column,
                        hint="write the repeated values out, or repeat an anchor fewer times",
                    )
                ],
            )


def _walk(
    node: yaml.Node,
    path: PathKey,
    positions: Positions,
    issues: list[SpecIssue],
    expansion: _Expansion,
) -> None:
    expansion.visit(node, path)
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            if key == "<<":
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                is_node = path == ("nodes",)
                issues.append(
                    SpecIssue(
                        path=format_path((*path, key)),
                        message=(
                            f"node id '{key}' is used twice (first on line {seen[key]})"
                            if is_node
                            else f"'{key}' is given twice (first on line {seen[key]})"
                        ),
                        code="duplicate-node-id" if is_node else "duplicate-key",
                        line=line,
                        column=key_node.start_mark.column + 1,
                        hint="rename one of them: node ids must be unique"
                        if is_node
                        else "keep one of them: the later one would silently win",
                    )
                )
            else:
                seen[key] = line
            # the later value is the one in the data (PyYAML keeps the last), so its
            # positions are the ones the other issues must point at
            # a key's own position is more useful than its value's for "unknown key" errors
            _walk(value_node, (*path, key), positions, issues, expansion)
            positions[(*path, key, "__key__")] = (line, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), positions, issues, expansion)


def locate(
    positions: Positions, path: Sequence[str | int], *, key: bool = False
) -> tuple[int | None, int | None]:
    """The position of ``path``, or of its nearest ancestor that has one."""
    p = tuple(path)
    if key and (*p, "__key__") in positions:
        return positions[(*p, "__key__")]
    while p:
        if p in positions:
            return positions[p]
        p = p[:-1]
    return positions.get((), (None, None))


_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "dict": "a mapping (key: value lines)",
    "list": "a list",
    "model": "a mapping (key: value lines)",
}


def _wrong_type(kind: str) -> str | None:
    """``int_parsing`` -> 'an integer': the expected type of a pydantic type error."""
    for suffix in ("_type", "_parsing", "_attributes_type"):
        if kind.endswith(suffix):
            return _TYPE_NAMES.get(kind[: -len(suffix)])
    return None


_PYDANTIC_CODES = {
    "missing": "missing-field",
    "extra_forbidden": "unknown-field",
    "literal_error": "invalid-choice",
    "enum": "invalid-choice",
    "union_tag_invalid": "invalid-choice",
    "greater_than_equal": "value-too-small",
    "greater_than": "value-too-small",
    "less_than_equal": "value-too-large",
    "less_than": "value-too-large",
}


def issues_from_validation_error(
    exc: ValidationError,
    positions: Positions,
    data: Any,
    *,
    prefix: PathKey = (),
    field_choices: Mapping[PathKey, Sequence[str]] | None = None,
) -> list[SpecIssue]:
    """Turn pydantic's errors into located issues, hiding nothing the user needs to fix them.

    ``field_choices`` maps a model's path pattern to its allowed keys for did-you-mean hints;
    when absent, the allowed keys are not suggested.
    """
    issues: list[SpecIssue] = []
    for err in exc.errors(include_url=False):
        loc = _clean_loc((*prefix, *err["loc"]), data)
        kind = err["type"]
        code = _PYDANTIC_CODES.get(kind, kind.replace("_", "-"))
        message = err["msg"]
        hint = None
        if kind == "extra_forbidden":
            name = str(loc[-1])
            message = f"unknown field '{name}'"
            allowed = _allowed_keys(field_choices, loc[:-1])
            if allowed:
                hint = (
                    did_you_mean(name, allowed) or f"allowed fields: {', '.join(sorted(allowed))}"
                )
            line, col = locate(positions, loc, key=True)
        else:
            if kind == "missing":
                message = f"required field '{loc[-1]}' is missing"
                hint = f"add '{loc[-1]}:' here"
            elif message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            elif (expected := _wrong_type(kind)) is not None:
                message = f"expected {expected}, got {_short(err.get('input'))}"
                code = "wrong-type"
            elif kind.endswith("_type") or kind.endswith("_parsing"):
                message = f"{message}, got {_short(err.get('input'))}"
                code = "wrong-type"
            elif kind == "union_tag_invalid":
                ctx = err.get("ctx") or {}
                field = str(ctx.get("discriminator", "")).strip("'")
                tag = str(ctx.get("tag", ""))
                tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
                message = f"unknown {field} '{tag}'; expected one of: {', '.join(tags)}"
                hint = did_you_mean(tag, tags)
                if field:
                    loc = (*loc, field)
            line, col = locate(positions, loc)
        if hint is None:
            # a validator's PydanticCustomError may carry the hint in its context
            ctx_hint = (err.get("ctx") or {}).get("hint")
            hint = ctx_hint if isinstance(ctx_hint, str) else None
        issues.append(
            SpecIssue(
                path=format_path(loc), message=message, code=code, line=line, column=col, hint=hint
            )
        )
    return issues


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _allowed_keys(
    field_choices: Mapping[PathKey, Sequence[str]] | None, parent: PathKey
) -> Sequence[str] | None:
    if not field_choices:
        return None
    for pattern, keys in field_choices.items():
        if len(pattern) == len(parent) and all(
            p == "*" or p == q for p, q in zip(pattern, parent, strict=True)
        ):
            return keys
    return None


def _clean_loc(loc: tuple[Any, ...], data: Any) -> PathKey:
    """Drop the parts pydantic adds that are not in the document (union tags, function names)."""
    out: list[str | int] = []
    cur = data
    for part in loc:
        if (isinstance(cur, Mapping) and part in cur) or (
            isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        ):
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, Mapping) and part in {v for v in cur.values() if isinstance(v, str)}:
            pass  # the tag of a tagged union (e.g. policy kind 'cascade'), not a key
        elif isinstance(cur, Mapping) and isinstance(part, str) and not _looks_internal(part):
            # a missing or extra key: it belongs to the path, but there is nothing below it
            out.append(part)
            cur = None
        # else: pydantic's own marker (tag of a tagged union, 'function-after[...]'): skip
    return tuple(out)


def _looks_internal(part: str) -> bool:
    return "[" in part or part in {"str", "int", "float", "bool", "dict", "list"}


def read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            source=str(path),
            issues=[SpecIssue(path="", message=f"file not found: {path}", code="file-not-found")],
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(
            source=str(path),
            issues=[
                SpecIssue(path="", message=f"cannot read {path}: {exc}", code="file-unreadable")
            ],
        ) from None
