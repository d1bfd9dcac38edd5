"""The bodies of ``dagtier replay`` and ``dagtier export-outcomes`` (the cli package stays thin)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .._exceptions import SpecError, SpecIssue


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def run_replay(
    file: Path,
    *,
    tiers: str,
    policies: str | None,
    far: float,
    frr: float,
    judge_cost: float | None,
    seed: int,
    limit: int | None,
    json_out: bool,
    canary: float | None = None,
    out: IO[str] | None = None,
    queries: Path | None = None,
    train: float | None = None,
    compare: tuple[str, str] | None = None,
) -> None:
    """Load, replay with a progress bar on a terminal, print the table or JSON.

    Raises:
        SpecError: a bad file, model name, policy or rate.
    """
    import anyio

    from .._logging import configure_logging
    from ._data import load_outcomes, load_queries
    from ._render import report_json, report_table, summary_lines
    from ._runner import default_policies, replay

    # at INFO every replayed attempt would be logged: tens of thousands of lines
    configure_logging(level=logging.WARNING)
    for flag, value in (
        ("--judge-far", far),
        ("--judge-frr", frr),
        ("--canary", canary),
        ("--train", train),
    ):
        if value is not None and not 0.0 <= value <= 1.0:
            raise SpecError(
                source=flag,
                issues=[SpecIssue("", f"must lie in [0, 1], got {value:g}", "value-out-of-range")],
            )
    if judge_cost is not None and judge_cost < 0:
        raise SpecError(
            source="--judge-cost",
            issues=[SpecIssue("", f"must not be negative, got {judge_cost:g}", "value-too-small")],
        )
    if limit is not None and limit < 1:
        raise SpecError(
            source="--limit",
            issues=[SpecIssue("", f"must be at least 1, got {limit}", "value-too-small")],
        )
    ladder = _split(tiers)
    names: Sequence[str] = _split(policies) if policies else default_policies(len(ladder))
    if compare is not None:
        names = compare
    outcomes = load_outcomes(file, models=ladder)
    outcomes.check_models(ladder)
    texts = (
        load_queries(queries, outcomes, outcomes.complete_queries(ladder))
        if queries is not None
        else None
    )
    out = out or sys.stdout

    async def go() -> object:
        options: dict[str, Any] = dict(
            false_accept=far,
            false_reject=frr,
            judge_cost=judge_cost,
            seed=seed,
            limit=limit,
            canary=canary,
            progress=bar.advance if bar is not None else None,
            texts=texts,
            train=train,
        )
        if compare is not None:
            from ._compare import compare_policies

            return await compare_policies(outcomes, ladder, *compare, **options)
        return await replay(outcomes, ladder, names, **options)

    bar = _Bar.maybe(len(names) * min(limit or 1 << 62, len(outcomes.complete_queries(ladder))))
    try:
        report = anyio.run(go)
    finally:
        if bar is not None:
            bar.close()
    from ..report.abtest import ABReport, print_ab, render_ab_json
    from ._runner import ReplayReport

    if isinstance(report, ABReport):
        if json_out:
            out.write(render_ab_json(report))
            return
        from rich.console import Console

        print_ab(report, Console(file=out, soft_wrap=False, width=max(120, Console().width)))
        return
    assert isinstance(report, ReplayReport)
    if json_out:
        out.write(report_json(report) + "\n")
        return
    from rich.console import Console

    console = Console(file=out, soft_wrap=False, width=max(160, Console().width))
    console.print(report_table(report))
    for line in summary_lines(report):
        console.print(line, markup=False, highlight=False)


class _Bar:
    """A rich progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("replaying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self._task = self._progress.add_task("replay", total=total)
        self._progress.start()

    @classmethod
    def maybe(cls, total: int) -> _Bar | None:
        return cls(total) if sys.stderr.isatty() else None

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.stop()


def run_export(store_path: str | None, out: IO[bytes], *, compress: bool) -> int:
    """Write the store's answer attempts in the outcomes format. Returns the row count."""
    import anyio

    from ._data import write_rows
    from ._export import export_rows, open_run_store

    async def collect() -> list[object]:
        store = open_run_store(store_path)
        try:
            return list(await export_rows(store))
        finally:
            close = getattr(store, "aclose", None) or getattr(store, "close", None)
            if close is not None:
                res = close()
                if hasattr(res, "__await__"):
                    await res

    rows = anyio.run(collect)
    from ._data import OutcomeRow

    return write_rows((r for r in rows if isinstance(r, OutcomeRow)), out, compress=compress)
