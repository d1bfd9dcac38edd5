"""The outcomes format: gzipped CSV, one row per (query, model).

``query_id, task, model, quality, cost_usd, cost_is_estimate`` — what the shared data sets
use and what ``dagtier export-outcomes`` writes, so a user can replay alternative policies
on their own history.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .._exceptions import SpecError, SpecIssue
from .._yaml import did_you_mean

COLUMNS = ("query_id", "task", "model", "quality", "cost_usd", "cost_is_estimate")
REQUIRED = COLUMNS[:5]
"""``cost_is_estimate`` may be missing (read as 0)."""


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    query_id: str
    task: str
    model: str
    quality: float
    cost_usd: float
    cost_is_estimate: bool = False


@dataclass(slots=True)
class Outcomes:
    """Recorded outcomes, indexed for replay: ``table[query_id][model] = (quality, cost)``."""

    source: str
    table: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)
    """Task of each query, in file order (the order replay shuffles from)."""
    models: dict[str, int] = field(default_factory=dict)
    """Every model in the file with its number of rows."""

    def add(self, row: OutcomeRow) -> None:
        self.table.setdefault(row.query_id, {})[row.model] = (row.quality, row.cost_usd)
        self.tasks.setdefault(row.query_id, row.task)
        self.models[row.model] = self.models.get(row.model, 0) + 1

    def complete_queries(self, models: Sequence[str]) -> list[str]:
        """Queries with an outcome for every one of ``models``, in file order."""
        table = self.table
        return [q for q in self.tasks if all(m in table[q] for m in models)]

    def mean_cost(self, model: str, queries: Iterable[str] | None = None) -> float:
        qs = list(self.tasks if queries is None else queries)
        costs = [self.table[q][model][1] for q in qs if model in self.table[q]]
        return sum(costs) / len(costs) if costs else 0.0

    def check_models(self, models: Sequence[str]) -> None:
        """Raises SpecError naming each model the file does not have, with close matches."""
        issues = []
        for i, m in enumerate(models):
            if m not in self.models:
                hint = did_you_mean(m, self.models) or (
                    "models in the file: " + ", ".join(sorted(self.models))
                )
                issues.append(
                    SpecIssue(
                        f"--tiers[{i}]",
                        f"no model '{m}' in {self.source}",
                        "unknown-model",
                        hint=hint,
                    )
                )
        if issues:
            raise SpecError(source="--tiers", issues=issues)


def _open_text(path: Path) -> IO[str]:
    # gzip by content, not by name: a user may have decompressed the file or renamed it
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def read_rows(path: str | Path) -> Iterator[OutcomeRow]:
    """Rows of an outcomes file (gzipped or plain CSV).

    Raises:
        SpecError: missing file or column, or a value that is not a number, naming the line.
    """
    p = _existing(path, COLUMNS)
    with _open_text(p) as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            header = []
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise _bad(p, 1, "", f"cannot read the file: {exc}") from None
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise _bad(
                p,
                1,
                "header",
                f"missing column(s) {', '.join(missing)}; found {', '.join(header) or '(none)'}",
            )
        iq, it, im, iy, ic = (header.index(c) for c in REQUIRED)
        ie = header.index("cost_is_estimate") if "cost_is_estimate" in header else None
        width = len(header)
        line = 1
        try:
            for rec in reader:
                line += 1
                if not rec:
                    continue
                if len(rec) < width:
                    raise _bad(p, line, "", f"expected {width} fields, got {len(rec)}")
                try:
                    quality = float(rec[iy])
                except ValueError:
                    raise _bad(p, line, "quality", f"not a number: {rec[iy]!r}") from None
                try:
                    cost = float(rec[ic])
                except ValueError:
                    raise _bad(p, line, "cost_usd", f"not a number: {rec[ic]!r}") from None
                if not 0.0 <= quality <= 1.0:
                    raise _bad(p, line, "quality", f"must lie in [0, 1], got {quality:g}")
                if cost < 0:
                    raise _bad(p, line, "cost_usd", f"must not be negative, got {cost:g}")
                est = ie is not None and rec[ie].strip() in ("1", "true", "True")
                yield OutcomeRow(rec[iq], rec[it], rec[im], quality, cost, est)
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
            raise _bad(p, line, "", f"cannot read the file: {exc}") from None


def _existing(path: str | Path, columns: Sequence[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        hint = "pass a CSV(.gz) with columns " + ", ".join(columns)
        raise SpecError(
            source=str(p), issues=[SpecIssue("", "no such file", "file-not-found", hint=hint)]
        )
    return p


def _bad(path: Path, line: int, column: str, message: str) -> SpecError:
    return SpecError(
        source=str(path),
        issues=[
            SpecIssue(
                column,
                message,
                "bad-outcomes-row",
                line=line,
                hint="expected columns: " + ", ".join(COLUMNS),
            )
        ],
    )


def load_outcomes(path: str | Path, *, models: Sequence[str] | None = None) -> Outcomes:
    """Read an outcomes file into memory.

    Args:
        path: the CSV or CSV.gz file.
        models: keep only these models' rows (the replay's ladder); every model is still
            counted in :attr:`Outcomes.models` so unknown names get a helpful error.
    """
    out = Outcomes(str(path))
    keep = set(models) if models is not None else None
    table, tasks, counts = out.table, out.tasks, out.models
    for row in read_rows(path):
        counts[row.model] = counts.get(row.model, 0) + 1
        if keep is not None and row.model not in keep:
            continue
        table.setdefault(row.query_id, {})[row.model] = (row.quality, row.cost_usd)
        tasks.setdefault(row.query_id, row.task)
    return out


def write_rows(rows: Iterable[OutcomeRow], fh: IO[bytes], *, compress: bool = True) -> int:
    """Write rows in the outcomes format (gzipped unless ``compress`` is False).

    Returns:
        the number of rows written.
    """
    raw: IO[bytes] = gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) if compress else fh  # type: ignore[assignment]
    text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    n = 0
    try:
        w = csv.writer(text, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow(
                (
                    r.query_id,
                    r.task,
                    r.model,
                    f"{r.quality:g}",
                    f"{r.cost_usd:.10g}",
                    int(r.cost_is_estimate),
                )
            )
            n += 1
        text.flush()
    finally:
        text.detach()
        if compress:
            raw.close()
    return n


def load_queries(path: str | Path, outcomes: Outcomes, queries: Sequence[str]) -> dict[str, str]:
    """The text of each of ``queries`` from a ``query_id,text`` CSV(.gz).

    Raises:
        SpecError: a missing file or column, or ids that do not match the outcomes' (with
            how many of the replayed queries have no text, and a few of them).
    """
    p = Path(path)
    if not p.is_file():
        raise SpecError(
            source=str(p),
            issues=[
                SpecIssue(
                    "",
                    "no such file",
                    "file-not-found",
                    hint="pass a CSV(.gz) with columns query_id, text",
                )
            ],
        )
    texts: dict[str, str] = {}
    with _open_text(p) as fh:
        reader = csv.reader(fh)
        line = 1
        try:
            header = next(reader, [])
            if "query_id" not in header or "text" not in header:
                raise SpecError(
                    source=str(p),
                    issues=[
                        SpecIssue(
                            "header",
                            f"missing column(s) query_id, text; found {', '.join(header) or '(none)'}",
                            "bad-queries-file",
                            line=1,
                        )
                    ],
                )
            iq, it = header.index("query_id"), header.index("text")
            for rec in reader:
                line += 1
                if len(rec) > max(iq, it):
                    texts[rec[iq]] = rec[it]
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
            raise _bad(p, line, "", f"cannot read the file: {exc}") from None
    missing = [q for q in queries if q not in texts]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise SpecError(
            source=str(p),
            issues=[
                SpecIssue(
                    "query_id",
                    f"{len(missing):,} of the {len(queries):,} queries of {outcomes.source} have "
                    f"no text here (e.g. {shown})",
                    "queries-mismatch",
                    hint="pass the queries file that goes with the outcomes (NAME.queries.csv.gz "
                    "beside NAME.csv.gz)",
                )
            ],
        )
    return {q: texts[q] for q in queries}
