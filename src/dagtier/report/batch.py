"""Batches as people see them: the live progress bar, the closing summary, the batch report.

:class:`BatchProgress` is plain state fed by run events (spending as each call settles, the
tier of each node that answered) and by item results; it draws itself with rich from rich's
own refresh thread, like :mod:`.live`. :func:`build_batch_report` turns what the store
recorded into plain data (cost per item over the batch, tier mix over time, where
escalations happened); ``print_batch_report`` and ``render_batch_json`` render it last.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import AttemptFinished, Event, NodeFinished, RunFinished, RunStarted

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from ..batch import BatchSummary, ItemResult
    from ..store import BatchItem, BatchRecord
    from .model import DeadlineOutcome


def tier_mix(counts: dict[int, int]) -> str:
    """``T1 80% T2 15% T3 5%``: the share of answered nodes per tier."""
    total = sum(counts.values())
    if not total:
        return "-"
    return " ".join(f"T{t} {100 * n / total:.0f}%" for t, n in sorted(counts.items()))


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class BatchProgress:
    """Progress of one batch session: an event subscriber plus :meth:`item` per result.

    Events and results only update counters; :meth:`render` reads them (from rich's refresh
    thread), so drawing never slows the batch down.
    """

    def __init__(self, total: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        from ..batch import BatchSummary

        self.clock = clock
        self.started = clock()
        self.items = BatchSummary("", "", "running", total)
        """Item counts, as the closing summary keeps them."""
        self.running = 0
        self.spent = 0.0
        """What this session's calls cost so far, calls of unfinished items included."""
        self.finished_cost = 0.0
        self.finished_now = 0
        """Items this session ran to the end (for $/item and the ETA)."""
        self.tiers: Counter[int] = Counter()

    @property
    def total(self) -> int:
        return self.items.total

    @total.setter
    def total(self, value: int) -> None:
        self.items.total = value

    @property
    def done(self) -> int:
        return self.items.done

    def __call__(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            self.spent += event.attempt.total_cost
        elif isinstance(event, NodeFinished):
            r = event.result
            if r.tier is not None and r.ok:
                self.tiers[int(r.tier)] += 1
        elif isinstance(event, RunStarted):
            self.running += 1
        elif isinstance(event, RunFinished):
            self.running -= 1

    def item(self, r: ItemResult) -> None:
        self.items.add(r)
        if r.resumed:
            self.tiers.update(r.tiers.values())
        elif r.run_id is not None:
            self.finished_now += 1
            self.finished_cost += r.cost

    def eta(self) -> float | None:
        elapsed = self.clock() - self.started
        rate = (self.done - self.items.resumed) / elapsed if elapsed > 0 else 0.0
        if rate <= 0:
            return None
        return (self.total - self.done) / rate

    def line(self) -> str:
        """The progress in one line (the bar's caption, and the log line without a TTY)."""
        per_item = self.finished_cost / self.finished_now if self.finished_now else None
        eta = self.eta()
        return (
            f"{self.done}/{self.total} done ({self.items.failed + self.items.invalid} failed), "
            f"{self.running} running, ${self.spent:.4f} spent, "
            f"{'-' if per_item is None else f'${per_item:.5f}'}/item, "
            f"ETA {'-' if eta is None else _duration(eta)}, tiers {tier_mix(dict(self.tiers))}"
        )

    def render(self) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.text import Text

        bar = ProgressBar(total=max(self.total, 1), completed=self.done, width=40)
        return Group(bar, Text(self.line()))


def progress_console() -> Console:
    """stderr for people: a batch's stdout may carry its results."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


class BatchLiveView:
    """Draws a :class:`BatchProgress` while the batch runs (transient: the summary follows)."""

    def __init__(self, console: Console, progress: BatchProgress) -> None:
        self.console = console
        self.progress = progress
        self._live: Live | None = None

    def __enter__(self) -> BatchLiveView:
        from rich.live import Live

        self._live = Live(
            console=self.console,
            get_renderable=self.progress.render,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,  # results may stream to stdout
            redirect_stderr=False,
        )
        self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def print_batch_summary(summary: BatchSummary, console: Console) -> None:
    """The closing summary of a batch session."""
    per_item = summary.cost / summary.done if summary.done else 0.0
    rate = (summary.done - summary.resumed) / summary.elapsed_s if summary.elapsed_s else 0.0
    lines = [
        f"batch {summary.batch_id} ({summary.workflow}): {summary.status}",
        f"  items      {summary.done}/{summary.total}: {summary.succeeded} succeeded, "
        f"{summary.failed} failed, {summary.invalid} invalid"
        + (f" ({summary.resumed} finished earlier)" if summary.resumed else ""),
        f"  cost       ${summary.cost:.6f} in all, ${per_item:.6f} per item",
        f"  tiers      {tier_mix(summary.tiers)}",
        f"  time       {summary.elapsed_s:.1f}s, {rate:.1f} items/s",
    ]
    if summary.deadline_s is not None:
        lines.append(
            f"  deadline   {summary.deadline_s:g}s per item: {summary.met_deadline} met, "
            f"{summary.missed_deadline} missed"
            + (
                f"; worst: item {summary.worst_miss[0]} (line {summary.worst_miss[1]}) missed "
                f"by {summary.worst_miss[2]:.2f} s"
                if summary.worst_miss is not None
                else ""
            )
        )
    if summary.error:
        lines.append(f"  stopped    {summary.error.splitlines()[0]}")
    for line in lines:
        console.print(line, markup=False, highlight=False)


# --- the batch report ------------------------------------------------------------------------


@dataclass(slots=True)
class BatchSlice:
    """A stretch of the batch's items in the order they finished."""

    first: int
    """1-based position of its first item in finishing order."""
    items: int
    cost_per_item: float
    tiers: dict[int, int]


@dataclass(slots=True)
class Escalation:
    node_id: str
    items: int
    """Items in which the node was answered above the tier it first tried."""
    paths: dict[str, int]
    """``"1->2"`` -> how many times."""
    extra_cost: float
    """What the attempts before the answering one cost."""


@dataclass(slots=True)
class ItemDeadline:
    """One item's deadline outcome. *Added in issue 16.*"""

    index: int
    line: int
    run_id: str | None
    outcome: DeadlineOutcome


@dataclass(slots=True)
class BatchDeadlines:
    """What became of the items' deadlines. *Added in issue 16.*"""

    met: int = 0
    missed: int = 0
    not_ended: int = 0
    """Items whose run has not ended (interrupted): neither met nor missed yet."""
    late: list[ItemDeadline] = field(default_factory=list)
    """The items that missed, the latest first."""

    @property
    def worst(self) -> ItemDeadline | None:
        return self.late[0] if self.late else None

    def add(self, item: ItemDeadline) -> None:
        met = item.outcome.met
        if met is None:
            self.not_ended += 1
        elif met:
            self.met += 1
        else:
            self.missed += 1
            self.late.append(item)

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst
        return {
            "met": self.met,
            "missed": self.missed,
            "not_ended": self.not_ended,
            "worst_late_s": worst.outcome.late_s if worst is not None else None,
            "late": [
                {"index": i.index, "line": i.line, "run_id": i.run_id, **i.outcome.to_dict()}
                for i in self.late
            ],
        }


@dataclass(slots=True)
class BatchReport:
    batch_id: str
    workflow: str
    status: str
    items_path: str
    total: int
    statuses: dict[str, int]
    cost: float
    cost_per_item: float
    tiers: dict[int, int]
    slices: list[BatchSlice] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    failures: list[tuple[int, int, str]] = field(default_factory=list)
    """(index, line, error) of the first failed items."""
    deadlines: BatchDeadlines | None = None
    """None: no item's run had a deadline."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.deadlines is not None:
            d["deadlines"] = self.deadlines.to_dict()
        return d


async def build_batch_report(
    store: Any, record: BatchRecord, items: list[BatchItem], *, slices: int = 10
) -> BatchReport:
    """The batch from what ``store`` recorded: every item's run is read once."""
    from .model import DeadlineOutcome

    statuses = Counter(it.status or "not started" for it in items)
    ran = sorted(
        (it for it in items if it.run_id and it.status not in (None, "invalid")),
        key=lambda it: (it.finished_at is None, it.finished_at or 0.0, it.index),
    )
    tiers: Counter[int] = Counter()
    item_tiers: list[Counter[int]] = []
    esc: dict[str, Escalation] = {}
    deadlines = BatchDeadlines()
    for it in ran:
        loaded = await store.load_run(it.run_id)
        mix: Counter[int] = Counter()
        if loaded is not None:
            outcome = DeadlineOutcome.recorded(loaded[0], loaded[1].values())
            if outcome is not None:
                deadlines.add(ItemDeadline(it.index, it.line, it.run_id, outcome))
            for nid, node in loaded[1].items():
                if node.tier is not None and node.ok:
                    mix[int(node.tier)] += 1
                answers = [a for a in node.attempts if a.purpose == "answer"]
                if node.ok and answers and node.tier is not None and answers[0].tier < node.tier:
                    e = esc.setdefault(nid, Escalation(nid, 0, {}, 0.0))
                    e.items += 1
                    path = f"{answers[0].tier}->{node.tier}"
                    e.paths[path] = e.paths.get(path, 0) + 1
                    e.extra_cost += sum(a.total_cost for a in answers[:-1])
        tiers.update(mix)
        item_tiers.append(mix)
    deadlines.late.sort(key=lambda i: (-(i.outcome.late_s or 0.0), i.index))
    size = max(1, -(-len(ran) // slices))
    cuts = []
    for start in range(0, len(ran), size):
        part = ran[start : start + size]
        mix = Counter[int]()
        for m in item_tiers[start : start + size]:
            mix.update(m)
        cuts.append(
            BatchSlice(start + 1, len(part), sum(i.cost for i in part) / len(part), dict(mix))
        )
    cost = sum(it.cost for it in items)
    failures = [
        (it.index, it.line, it.error or it.status or "")
        for it in items
        if it.status not in ("succeeded", None)
    ][:20]
    return BatchReport(
        record.batch_id,
        record.workflow,
        record.status,
        record.items_path,
        record.items_total,
        dict(statuses),
        cost,
        cost / len(ran) if ran else 0.0,
        dict(tiers),
        cuts,
        sorted(esc.values(), key=lambda e: -e.items),
        failures,
        deadlines if deadlines.met + deadlines.missed + deadlines.not_ended else None,
    )


async def load_batch_report(store: Any, batch_id: str) -> BatchReport:
    """The report of batch ``batch_id`` in ``store`` (:func:`build_batch_report`).
    *Added in issue 11* (from the CLI).

    Raises:
        StoreError: no batch ``batch_id`` (the recent ones named).
    """
    from .._exceptions import StoreError

    loaded = await store.load_batch(batch_id)
    if loaded is None:
        recent = ", ".join(b.batch_id for b in await store.list_batches(5)) or "(none)"
        raise StoreError(f"no batch '{batch_id}' in the store (recent batches: {recent})")
    return await build_batch_report(store, *loaded)


def render_batch_json(report: BatchReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def print_batch_report(report: BatchReport, console: Console) -> None:
    from rich.table import Table

    console.print(
        f"batch {report.batch_id} ({report.workflow}): {report.status}, {report.total} items "
        f"from {report.items_path}",
        markup=False,
        highlight=False,
    )
    console.print(
        "  " + ", ".join(f"{n} {s}" for s, n in sorted(report.statuses.items())),
        markup=False,
        highlight=False,
    )
    console.print(
        f"  cost ${report.cost:.6f}, ${report.cost_per_item:.6f} per item; "
        f"tiers {tier_mix(report.tiers)}",
        markup=False,
        highlight=False,
    )
    d = report.deadlines
    if d is not None:
        worst = d.worst
        console.print(
            f"  deadlines {d.met} met, {d.missed} missed"
            + (f", {d.not_ended} not ended" if d.not_ended else "")
            + (
                f"; worst: item {worst.index} (line {worst.line}) missed by "
                f"{worst.outcome.late_s:.2f} s"
                if worst is not None
                else ""
            ),
            markup=False,
            highlight=False,
        )
    over = Table(title="over the batch (items in the order they finished)")
    for col in ("items", "cost $/item", "tier mix"):
        over.add_column(col, justify="left" if col == "tier mix" else "right")
    for s in report.slices:
        over.add_row(
            f"{s.first}-{s.first + s.items - 1}", f"{s.cost_per_item:.6f}", tier_mix(s.tiers)
        )
    console.print(over)
    if report.escalations:
        table = Table(title="escalations (node answered above the tier it first tried)")
        for col in ("node", "items", "paths", "extra $"):
            table.add_column(col, justify="left" if col in ("node", "paths") else "right")
        for e in report.escalations:
            paths = ", ".join(f"{p} x{n}" for p, n in sorted(e.paths.items()))
            table.add_row(e.node_id, str(e.items), paths, f"{e.extra_cost:.6f}")
        console.print(table)
    else:
        console.print("no escalations", highlight=False)
    for index, line, error in report.failures:
        console.print(
            f"item {index} (line {line}): {error.splitlines()[0] if error else '-'}",
            markup=False,
            style="red",
        )
    if d is not None:
        for late in d.late[:20]:
            console.print(
                f"item {late.index} (line {late.line}): {late.outcome.describe()}",
                markup=False,
                highlight=False,
            )


__all__ = [
    "BatchDeadlines",
    "BatchLiveView",
    "BatchProgress",
    "BatchReport",
    "ItemDeadline",
    "build_batch_report",
    "print_batch_report",
    "print_batch_summary",
    "progress_console",
    "render_batch_json",
    "tier_mix",
]
