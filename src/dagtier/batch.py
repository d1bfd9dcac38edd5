"""Batches: one workflow over thousands of inputs, every item a durable run.

One gateway (so provider rate limits and circuit breakers are shared), one compiled plan,
one store and one budget serve every run of the batch; ``concurrency`` runs are in flight
at once, each under the workflow's own node concurrency. The store keeps the batch (its
inputs file's fingerprint and which run each item became), so a batch stopped by Ctrl-C,
a crash or its budget resumes where it stopped: items whose run finished are not run
again, interrupted runs resume node by node, and no committed node is paid for twice.

Items come from a JSON-lines file (one object of input names to values per line) or a CSV
file (a header row of input names; an empty cell counts as not given), read lazily, so a
batch's memory does not grow with its size.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from collections.abc import Sequence as SequenceABC
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from . import _durable
from ._exceptions import DagtierUsageError, RunError, SpecError, SpecIssue
from ._logging import redact_text, redact_value
from .budget import Budget
from .catalog import Catalog
from .events import Subscriber
from .executor import coerce_inputs, plan_and_gateway, render_outputs, split_plan
from .executor import run as run_workflow
from .plan import Plan
from .policies.deadline import check_deadline
from .providers.base import Provider
from .providers.gateway import Gateway
from .results import RunResult
from .spec.models import Workflow
from .store import BatchRecord, BatchStore, MemoryStore, RunStore

OnBadItem = Literal["skip", "stop"]
FINISHED = ("succeeded", "failed")
"""Run statuses a resume keeps: the item is done. Any other status (cancelled,
interrupted, budget_exhausted) resumes its run."""


@dataclass(frozen=True, slots=True)
class Item:
    """One line (JSON lines) or record (CSV) of the inputs file."""

    index: int
    """0-based position among the file's items (blank lines are not items)."""
    line: int
    """1-based line in the file where the item starts."""
    values: dict[str, Any] | None
    error: str | None = None
    """Why the line is not an item (malformed JSON, not an object, a CSV row too long)."""


@dataclass(slots=True)
class ItemResult:
    """What became of one item: one JSON line of ``dagtier batch``'s results."""

    index: int
    line: int
    run_id: str | None
    status: str
    """The run's status, or ``invalid``: the item never became a run (malformed line,
    missing or mistyped input; ``error`` says which)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    cost: float = 0.0
    tiers: dict[str, int] = field(default_factory=dict)
    """The tier that answered each node that called a model."""
    error: str | None = None
    resumed: bool = False
    """Finished in an earlier session of the batch; reported again, not run again."""
    deadline_met: bool | None = None
    """Whether the item's run ended within ``deadline_s`` (None: no deadline)."""
    deadline_late_s: float | None = None
    """By how much it missed its deadline (None: met, or no deadline)."""

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "line": self.line,
            "run_id": self.run_id,
            "status": self.status,
            "outputs": self.outputs,
            "cost": round(self.cost, 9),
            "tiers": self.tiers,
        }
        if self.error is not None:
            d["error"] = self.error
        if self.resumed:
            d["resumed"] = True
        if self.deadline_met is not None:
            d["deadline_met"] = self.deadline_met
        if self.deadline_late_s is not None:
            d["deadline_late_s"] = round(self.deadline_late_s, 3)
        redacted: dict[str, Any] = redact_value(d)
        return redacted

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str)


@dataclass(slots=True)
class BatchSummary:
    batch_id: str
    workflow: str
    status: str
    """``finished`` (every item has a result), ``cancelled``, ``budget_exhausted``."""
    total: int
    succeeded: int = 0
    failed: int = 0
    """Items whose run did not succeed (failed, or stopped by the budget)."""
    invalid: int = 0
    resumed: int = 0
    """Items finished in an earlier session, not run again."""
    cost: float = 0.0
    """What the batch's items cost in all, earlier sessions included."""
    spent_now: float = 0.0
    """What this session spent."""
    elapsed_s: float = 0.0
    tiers: dict[int, int] = field(default_factory=dict)
    """Nodes answered per tier, over the items reported."""
    error: str | None = None
    deadline_s: float | None = None
    """Each item's deadline (``deadline_s``; None: none)."""
    met_deadline: int = 0
    """Items whose run ended within its deadline."""
    missed_deadline: int = 0
    """Items whose run ended after it."""
    worst_miss: tuple[int, int, float] | None = None
    """(index, line, seconds late) of the item that missed its deadline by the most."""

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.invalid

    def add(self, r: ItemResult) -> None:
        if r.status == "succeeded":
            self.succeeded += 1
        elif r.status == "invalid":
            self.invalid += 1
        else:
            self.failed += 1
        self.resumed += r.resumed
        self.met_deadline += r.deadline_met is True
        self.missed_deadline += r.deadline_met is False
        late = r.deadline_late_s
        if late is not None and (self.worst_miss is None or late > self.worst_miss[2]):
            self.worst_miss = (r.index, r.line, late)
        self.cost += r.cost
        for t in r.tiers.values():
            self.tiers[t] = self.tiers.get(t, 0) + 1


# --- reading items ---------------------------------------------------------------------------


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise SpecError(
        source=str(path),
        issues=[
            SpecIssue(
                "",
                f"cannot tell the format of '{path.name}'",
                "items-format",
                hint="name the file .jsonl (one JSON object per line) or .csv (a header row "
                "of input names)",
            )
        ],
    )


def _open(path: Path) -> io.TextIOWrapper:
    try:
        return open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise SpecError(
            source=str(path),
            issues=[SpecIssue("", f"file not found: {path}", "file-not-found")],
        ) from None
    except OSError as exc:
        raise SpecError(
            source=str(path),
            issues=[SpecIssue("", f"cannot read {path}: {exc.strerror}", "file-unreadable")],
        ) from None


def read_items(path: str | Path) -> Iterator[Item]:
    """The items of a ``.jsonl`` or ``.csv`` file, one at a time, malformed ones included
    (with ``error`` set and the line named).

    Raises:
        SpecError: the file cannot be read or its format is unknown.
    """
    p = Path(path)
    fmt = _format_of(p)
    with _open(p) as f:
        try:
            yield from (_jsonl_items(f) if fmt == "jsonl" else _csv_items(f))
        except UnicodeDecodeError as exc:
            raise SpecError(
                source=str(p),
                issues=[SpecIssue("", f"not UTF-8 text: {exc.reason}", "file-unreadable")],
            ) from None


def _jsonl_items(f: Iterable[str]) -> Iterator[Item]:
    index = 0
    for lineno, text in enumerate(f, 1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Item(index, lineno, None, f"not valid JSON: {exc.msg} (column {exc.colno})")
        else:
            if isinstance(value, dict):
                yield Item(index, lineno, value)
            else:
                yield Item(
                    index,
                    lineno,
                    None,
                    f"expected a JSON object of input names to values, got {type(value).__name__}",
                )
        index += 1


def _csv_items(f: Iterable[str]) -> Iterator[Item]:
    reader = csv.reader(f)
    header: list[str] | None = None
    index = 0
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Item(index, start, None, f"malformed CSV: {exc}")
            index += 1
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not row or all(not c.strip() for c in row):
            continue
        if header is None:
            header = [c.strip() for c in row]
            continue
        if len(row) > len(header):
            yield Item(
                index,
                line,
                None,
                f"the row has {len(row)} fields, the header only {len(header)}",
            )
        else:
            yield Item(index, line, {k: v for k, v in zip(header, row, strict=False) if v != ""})
        index += 1


@dataclass(frozen=True, slots=True)
class _Source:
    """Where a batch's items come from, scanned once before the batch starts."""

    path: str
    fingerprint: str
    total: int
    bad: tuple[Item, ...]
    items: Callable[[], Iterator[Item]]


def scan_items(items: str | Path | SequenceABC[Mapping[str, Any]]) -> _Source:
    """Read the items once: their fingerprint, count and malformed lines."""
    if isinstance(items, (str, Path)):
        return _scan_file(Path(items))
    return _scan_values(list(items))


def _scan_file(path: Path) -> _Source:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        _open(path).close()  # raises the SpecError naming the problem
        raise
    total, bad = 0, []
    for item in read_items(path):
        total += 1
        if item.error is not None:
            bad.append(item)
    return _Source(str(path), digest.hexdigest(), total, tuple(bad), lambda: read_items(path))


def _scan_values(values: SequenceABC[Mapping[str, Any]]) -> _Source:
    digest = hashlib.sha256()
    bad: list[Item] = []
    for i, v in enumerate(values):
        if not isinstance(v, Mapping):
            bad.append(Item(i, i + 1, None, f"expected a mapping, got {type(v).__name__}"))
        digest.update(json.dumps(v, sort_keys=True, default=str).encode())
        digest.update(b"\n")

    def items() -> Iterator[Item]:
        for i, v in enumerate(values):
            if isinstance(v, Mapping):
                yield Item(i, i + 1, dict(v))
            else:
                yield Item(i, i + 1, None, f"expected a mapping, got {type(v).__name__}")

    return _Source("<python>", digest.hexdigest(), len(values), tuple(bad), items)


def bad_items_error(source: str, bad: Iterable[Item]) -> SpecError:
    """Every malformed line of an inputs file, by line number."""
    return SpecError(
        source=source,
        issues=[
            SpecIssue(
                "",
                item.error or "malformed",
                "bad-item",
                line=item.line,
                hint="fix the line, or pass --on-bad-item skip to run the other items",
            )
            for item in bad
        ],
    )


# --- running ---------------------------------------------------------------------------------


def new_batch_id() -> str:
    return time.strftime("b%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def item_run_id(batch_id: str, index: int) -> str:
    """The run an item becomes: derived, so a resume finds it even if the batch was killed
    between starting the run and recording the item."""
    return f"{batch_id}-{index}"


def item_result(index: int, line: int, result: RunResult, *, resumed: bool = False) -> ItemResult:
    tiers = {nid: int(r.tier) for nid, r in result.nodes.items() if r.tier is not None and r.ok}
    # the run's own resume hint names `dagtier run`: an item resumes with its batch
    error = result.error.splitlines()[0] if result.error else None
    if error is None and result.status != "succeeded":
        first = next((r for r in result.nodes.values() if r.status == "failed"), None)
        if first is not None:
            error = f"node {first.node_id}: {first.error}"
    return ItemResult(
        index,
        line,
        result.run_id,
        result.status,
        result.outputs,
        result.cost,
        tiers,
        redact_text(error) if error else None,
        resumed,
        result.deadline_met,
        result.deadline_late_s,
    )


async def stored_item_result(
    store: Any, plan: Plan, index: int, line: int, run_id: str
) -> ItemResult | None:
    """An item's result as the store has its run (None: no such run), marked ``resumed``."""
    loaded = await store.load_run(run_id)
    if loaded is None:
        return None
    record, nodes = loaded
    started = record.started_at
    if record.deadline_s is not None and record.deadline_at is not None:
        started = record.deadline_at - record.deadline_s  # a resumed run's deadline began later
    done = RunResult(
        run_id,
        record.workflow,
        record.status,
        nodes,
        outputs=render_outputs(plan, record.inputs, nodes),
        started_at=started,
        finished_at=record.finished_at or 0.0,
        deadline_s=record.deadline_s,
    )
    return item_result(index, line, done, resumed=True)


class _Batch:
    """The state of one batch session."""

    def __init__(
        self,
        plan: Plan,
        source: _Source,
        record: BatchRecord,
        *,
        store: Any,
        gateway: Gateway,
        known: dict[int, str | None],
        concurrency: int,
        budget: Budget | None,
        subscribers: list[Subscriber],
        on_result: Callable[[ItemResult], Any] | None,
        cache_ttl_s: float | None,
        deadline_s: float | None = None,
    ) -> None:
        self.plan = plan
        self.wf = plan.workflow
        self.source = source
        self.record = record
        self.store = store
        self.gateway = gateway
        self.known = known
        self.concurrency = concurrency
        self.budget = budget
        self.subscribers = subscribers
        self.on_result = on_result
        self.cache_ttl_s = cache_ttl_s
        self.deadline_s = deadline_s
        self.summary = BatchSummary(record.batch_id, self.wf.name, "running", source.total)
        self.summary.deadline_s = deadline_s if deadline_s is not None else self.wf.deadline_s
        self.stop: str | None = None

    async def execute(self) -> None:
        items = self.source.items()
        async with anyio.create_task_group() as tg:
            for _ in range(max(1, min(self.concurrency, self.source.total))):
                tg.start_soon(self._worker, items)

    async def _worker(self, items: Iterator[Item]) -> None:
        # Workers share one iterator: next() never awaits, so no item is taken twice.
        for item in items:
            result = await self._item(item)
            if result is None:  # not started: the batch is stopping
                return
            self.summary.add(result)
            if self.on_result is not None:
                out = self.on_result(result)
                if isinstance(out, Awaitable):
                    await out
            if self.stop:
                return

    async def _item(self, item: Item) -> ItemResult | None:
        batch_id = self.record.batch_id
        store = self.store
        if item.error is not None:
            await store.record_batch_item(
                batch_id, item.index, item.line, None, status="invalid", error=item.error
            )
            return ItemResult(item.index, item.line, None, "invalid", error=item.error)
        try:
            values = coerce_inputs(self.wf, item.values)
        except SpecError as exc:
            error = "; ".join(i.message for i in exc.issues)
            await store.record_batch_item(
                batch_id, item.index, item.line, None, status="invalid", error=error
            )
            return ItemResult(item.index, item.line, None, "invalid", error=error)
        rid = item_run_id(batch_id, item.index)
        status = self.known.get(item.index, "")
        if status in FINISHED:
            done = await stored_item_result(store, self.plan, item.index, item.line, rid)
            if done is not None:
                return done
        if self.stop:
            return None
        if item.index not in self.known:
            await store.record_batch_item(batch_id, item.index, item.line, rid)
        resume = rid if status else None  # the run began in an earlier session
        try:
            result = await run_workflow(
                self.plan,
                values,
                gateway=self.gateway,
                store=store,
                run_id=rid,
                resume=resume,
                subscribers=self.subscribers,
                shared_budget=self.budget,
                cache_ttl_s=self.cache_ttl_s,
                deadline_s=self.deadline_s,
            )
        except RunError as exc:  # e.g. the workflow changed under a finished node
            return ItemResult(item.index, item.line, rid, "failed", error=redact_text(str(exc)))
        if self.budget is not None and self.budget.exhausted is not None and not self.stop:
            self.stop = "budget_exhausted"
            self.summary.error = str(self.budget.exhausted)
        return item_result(item.index, item.line, result)


async def run_batch(
    workflow: Workflow | Plan,
    items: str | Path | SequenceABC[Mapping[str, Any]],
    *,
    store: Any = None,
    catalog: Catalog | None = None,
    providers: Mapping[str, Provider] | None = None,
    gateway: Gateway | None = None,
    concurrency: int = 16,
    budget: float | None = None,
    on_bad_item: OnBadItem = "stop",
    resume: str | None = None,
    batch_id: str | None = None,
    subscribers: Iterable[Subscriber] = (),
    on_result: Callable[[ItemResult], Any] | None = None,
    on_start: Callable[[int], Any] | None = None,
    cache_ttl_s: float | None = _durable.DEFAULT_CACHE_TTL_S,
    deadline_s: float | None = None,
) -> BatchSummary:
    """Run ``workflow`` once per item, every item a durable run in ``store``.

    Cancelling the call (Ctrl-C) cancels the runs in flight; each keeps what it committed,
    and ``resume=`` the batch id finishes the batch.

    Args:
        workflow: from :func:`dagtier.load_workflow`, or a :class:`~dagtier.Plan` (compiled
            against the gateway's catalog); a workflow is compiled once for the batch.
        items: a ``.jsonl`` or ``.csv`` file, or a sequence of input mappings.
        store: one store for every run (RunStore + BatchStore; default: in memory).
        catalog, providers, gateway: as for :func:`dagtier.run`; one gateway serves every
            run, so rate limits and circuit breakers hold for the whole batch.
        concurrency: runs in flight at once (each runs its nodes under the workflow's own
            concurrency).
        budget: USD for the whole batch: no call starts that could take the batch's spending
            past it, and no item starts once it ran out (the batch ends ``budget_exhausted``).
        on_bad_item: ``stop``: refuse the batch before anything runs when a line of the file
            is malformed; ``skip``: report such lines as ``invalid`` items and run the rest.
        resume: the id of an earlier batch to finish (same workflow, same items).
        batch_id: the id of a new batch (default: a new one).
        subscribers: receive every run's :mod:`dagtier.events` events.
        on_result: called (or awaited) with each item's result as it finishes.
        on_start: called with the number of items once the file is scanned (progress bars).
        cache_ttl_s: as for :func:`dagtier.run`.
        deadline_s: each item's run's deadline in seconds from its start, as
            :func:`dagtier.run`'s (default: the workflow's ``deadline_s:``); the summary
            counts the items that missed it. *Added in issue 16.*

    Raises:
        SpecError: the items file cannot be read, or has malformed lines with ``on_bad_item``
            ``stop`` (every one named by line).
        RunError: ``resume`` names no batch, another workflow, a changed items file, or a
            batch another live process is running.
    """
    workflow, plan = split_plan(workflow, "run_batch()")
    if concurrency < 1:
        raise DagtierUsageError(f"concurrency must be at least 1, got {concurrency}")
    deadline_s = check_deadline(deadline_s)
    source = scan_items(items)
    if source.bad and on_bad_item == "stop":
        raise bad_items_error(source.path, source.bad)
    if on_start is not None:
        on_start(source.total)
    store = store if store is not None else MemoryStore()
    if not isinstance(store, RunStore) or not isinstance(store, BatchStore):
        raise DagtierUsageError(
            f"run_batch() needs a store that keeps runs and batches, got {store!r}"
        )
    own_gateway = gateway is None  # one made here is closed here; a caller's, by its caller
    plan, gateway = plan_and_gateway(workflow, plan, gateway, catalog, providers)
    bid = resume or batch_id or new_batch_id()
    known: dict[int, str | None] = {}
    spent = 0.0
    if resume is not None:
        known, spent = await _load_for_resume(store, resume, workflow, source)
    wanted = BatchRecord(
        bid,
        workflow.name,
        "running",
        time.time(),
        source.path,
        source.fingerprint,
        source.total,
        source=workflow.source,
        budget=budget,
    )
    record = await store.claim_batch(wanted)
    if record is None:
        held = await store.load_batch(bid)
        who = f"process {held[0].pid} on {held[0].host}" if held else "another process"
        raise RunError(
            f"batch '{bid}' is running in {who}; running it twice at once would pay for its "
            "items twice\nhint: wait for it to end, or stop that process first"
        )
    batch_budget = None
    if budget is not None:
        batch_budget = Budget(budget, spent=spent, run_id=bid, scope="batch")
    state = _Batch(
        plan,
        source,
        record,
        store=store,
        gateway=gateway,
        known=known,
        concurrency=concurrency,
        budget=batch_budget,
        subscribers=list(subscribers),
        on_result=on_result,
        cache_ttl_s=cache_ttl_s,
        deadline_s=deadline_s,
    )
    started = time.monotonic()
    status = "cancelled"
    try:
        await state.execute()
        status = state.stop or "finished"
    finally:
        summary = state.summary
        summary.status = status
        summary.elapsed_s = time.monotonic() - started
        with anyio.CancelScope(shield=True):
            try:
                await store.finish_batch(bid, status)
            finally:
                if own_gateway:
                    await gateway.aclose()
    return summary


async def _load_for_resume(
    store: Any, batch_id: str, workflow: Workflow, source: _Source
) -> tuple[dict[int, str | None], float]:
    """Item index -> its run's status (None: recorded, never begun) for a batch to resume,
    and what its items have cost so far.

    Raises:
        RunError: no such batch, another workflow, or a changed items file.
    """
    loaded = await store.load_batch(batch_id)
    if loaded is None:
        raise RunError(
            f"no batch '{batch_id}' in the store\n"
            "hint: pass the same --store as the first run of the batch"
        )
    record, items = loaded
    if record.workflow != workflow.name:
        raise RunError(
            f"batch '{batch_id}' ran workflow '{record.workflow}', not '{workflow.name}'"
        )
    if record.items_fingerprint != source.fingerprint:
        raise RunError(
            f"the items of batch '{batch_id}' changed since it started ({record.items_path}, "
            f"{record.items_total} items; now {source.path}, {source.total} items): "
            "item numbers would no longer match their runs\n"
            "hint: resume with the original file, or start a new batch"
        )
    known = {it.index: it.status for it in items if it.status != "invalid"}
    return known, sum(it.cost for it in items)


@asynccontextmanager
async def batch_results(
    workflow: Workflow | Plan,
    items: str | Path | SequenceABC[Mapping[str, Any]],
    **options: Any,
) -> AsyncIterator[MemoryObjectReceiveStream[ItemResult]]:
    """Item results as they finish, for ``async for``; takes :func:`run_batch`'s options.

    >>> async with dagtier.batch_results(wf, "items.jsonl", store=store) as results:
    ...     async for r in results:                               # doctest: +SKIP
    ...         print(r.index, r.status, r.outputs)

    Leaving the block early cancels the items in flight (each keeps what it committed; the
    batch resumes like one stopped by Ctrl-C). An error of the batch itself is raised here.
    """
    if "on_result" in options:
        raise DagtierUsageError("batch_results() delivers the results itself; drop on_result=")
    send, receive = anyio.create_memory_object_stream[ItemResult](max_buffer_size=64)

    async def go() -> None:
        async with send:
            await run_batch(workflow, items, on_result=send.send, **options)

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        try:
            with receive:
                yield receive
        finally:
            tg.cancel_scope.cancel()


__all__ = [
    "BatchSummary",
    "Item",
    "ItemResult",
    "bad_items_error",
    "batch_results",
    "item_run_id",
    "new_batch_id",
    "read_items",
    "run_batch",
]
