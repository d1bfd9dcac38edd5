"""Rows of the run store, shared by the SQLite and PostgreSQL stores: both keep the same
columns in the same order, so one function builds each row and one reads it back.

Prompts are not stored; an attempt's output is stored only when it differs from the node's
(the accepted attempt's output is the node's text), so rows stay small. Errors, reasons and
fallback messages are redacted before they are written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from .._logging import redact_text
from ..catalog import Usage
from ..results import Attempt, CheckResult, NodeResult, ToolCallRecord, Turn
from . import (
    BatchItem,
    BatchRecord,
    QueuedItem,
    RunOwner,
    RunRecord,
    as_seen,
    process_alive,
)

EVIDENCE_DDL = """
CREATE TABLE recorded_evidence (
    task_key TEXT NOT NULL,
    tier INTEGER NOT NULL,
    evidence_id TEXT NOT NULL,
    PRIMARY KEY (task_key, tier, evidence_id)
);
"""
"""Both stores' migration: the ids of observations recorded with an ``evidence_id``."""

RUN_COLS = (
    "run_id, workflow, status, started_at, finished_at, fingerprint, node_fingerprints, inputs, "
    "cost, source, pid, host, budget, owner_token, deadline_s, deadline_at"
)
NODE_COLS = (
    "node_id, status, output, text, tier, model, error, started_at, finished_at, task_key, "
    "decision, cache_hit, deadline_tier"
)
"""What is read of a node. Its row in the table (as :func:`node_row` writes it) has ``cost``
before ``deadline_tier``, a later column."""
ATTEMPT_COLS = (
    "node_id, idx, tier, model, provider, usage, cost, latency_s, verdict, reason, checks, "
    "judge_cost, judge_usage, request_id, fallbacks, purpose, output, response_model, turns"
)

_SAME = "\x1esame"
"""Stored in place of an attempt's output that equals its node's text (the usual case)."""
_SAME_BEFORE = "\x00same"
"""The marker SQLite stores wrote before the PostgreSQL store (whose text cannot hold NUL)."""


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def run_row(record: RunRecord, owner: RunOwner) -> tuple[Any, ...]:
    """The run's row in :data:`RUN_COLS` order, owned by ``owner``, status ``running``."""
    return (
        record.run_id,
        record.workflow,
        "running",
        record.started_at,
        None,
        record.fingerprint,
        compact(record.node_fingerprints),
        json.dumps(record.inputs, separators=(",", ":"), default=str),
        record.cost,
        record.source,
        owner.pid,
        owner.host,
        record.budget,
        owner.token,
        record.deadline_s,
        record.deadline_at,
    )


def record_from_row(row: Sequence[Any]) -> RunRecord:
    """A run read back; a 'running' run whose process is gone reads as ``interrupted``."""
    record = RunRecord(
        run_id=row[0],
        workflow=row[1],
        status=row[2],
        started_at=row[3],
        finished_at=row[4],
        fingerprint=row[5],
        node_fingerprints=json.loads(row[6]),
        inputs=json.loads(row[7]),
        cost=row[8],
        source=row[9],
        pid=row[10],
        host=row[11],
        budget=row[12],
        owner_token=row[13],
        deadline_s=row[14],
        deadline_at=row[15],
    )
    return as_seen(record)


_NODE_COST = 13
"""Where :func:`node_row` puts the node's cost."""


def node_row(run_id: str, result: NodeResult) -> tuple[Any, ...]:
    """``(run_id, *NODE_COLS[:-1], cost, deadline_tier)``: the table's column order."""
    return (
        run_id,
        result.node_id,
        result.status,
        None if result.output is None else compact(result.output),
        result.text,
        result.tier,
        result.model,
        None if result.error is None else redact_text(result.error),
        result.started_at,
        result.finished_at,
        result.task_key,
        result.decision,
        int(result.cache_hit),
        result.cost,
        result.deadline_tier,
    )


def node_from_row(r: Sequence[Any]) -> NodeResult:
    return NodeResult(
        r[0],
        r[1],
        output=None if r[2] is None else json.loads(r[2]),
        text=r[3],
        tier=r[4],
        model=r[5],
        error=r[6],
        started_at=r[7],
        finished_at=r[8],
        task_key=r[9],
        decision=r[10],
        cache_hit=bool(r[11]),
        deadline_tier=r[12],
    )


def _usage_json(u: Usage) -> str:
    return compact(
        [
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.reasoning_tokens,
        ]
    )


def attempt_rows(run_id: str, result: NodeResult) -> list[tuple[Any, ...]]:
    """``(run_id, *ATTEMPT_COLS)`` for each of the node's attempts."""
    return [_attempt_row(run_id, result.node_id, a, result.text) for a in result.attempts]


def _attempt_row(run_id: str, node_id: str, a: Attempt, node_text: str | None) -> tuple[Any, ...]:
    return (
        run_id,
        node_id,
        a.index,
        a.tier,
        a.model,
        a.provider,
        _usage_json(a.usage),
        a.cost,
        a.latency_s,
        a.verdict,
        redact_text(a.reason) if a.reason else "",
        # a user check's reason is free text and may quote a key, like the attempt's reason
        compact([asdict(c) | {"reason": redact_text(c.reason)} for c in a.checks])
        if a.checks
        else None,
        a.judge_cost,
        _usage_json(a.judge_usage) if a.judge_usage.total else None,
        a.request_id,
        compact([redact_text(f) for f in a.fallbacks]) if a.fallbacks else None,
        a.purpose,
        _SAME if a.output is not None and a.output == node_text else a.output,
        a.response_model,
        _turns_json(a.turns) if a.turns else None,
    )


def _turns_json(turns: list[Turn]) -> str:
    return compact(
        [
            [
                t.model,
                json.loads(_usage_json(t.usage)),
                t.cost,
                t.latency_s,
                [[c.name, c.duration_s, c.error] for c in t.tool_calls],
            ]
            for t in turns
        ]
    )


def _turns_from(text: str | None) -> list[Turn]:
    if not text:
        return []
    return [
        Turn(model, Usage(*usage), cost, latency, [ToolCallRecord(*c) for c in calls])
        for model, usage, cost, latency, calls in json.loads(text)
    ]


def attempt_from_row(r: Sequence[Any], node_text: str | None) -> Attempt:
    """An attempt from ``ATTEMPT_COLS`` (the node id first)."""
    return Attempt(
        r[1],
        r[2],
        r[3],
        r[4],
        usage=Usage(*json.loads(r[5])),
        cost=r[6],
        latency_s=r[7],
        verdict=r[8],
        reason=r[9],
        checks=[CheckResult(**c) for c in json.loads(r[10])] if r[10] else [],
        judge_cost=r[11],
        judge_usage=Usage(*json.loads(r[12])) if r[12] else Usage(),
        request_id=r[13],
        fallbacks=json.loads(r[14]) if r[14] else [],
        purpose=r[15],
        output=node_text if r[16] in (_SAME, _SAME_BEFORE) else r[16],
        response_model=r[17],
        turns=_turns_from(r[18]),
    )


def assemble_nodes(
    node_rows: Sequence[Sequence[Any]], attempt_rows: Sequence[Sequence[Any]]
) -> dict[str, NodeResult]:
    """Node results with their attempts (attempt rows ordered by node id, index)."""
    nodes = {r[0]: node_from_row(r) for r in node_rows}
    for a in attempt_rows:
        node = nodes.get(a[0])
        if node is not None:
            node.attempts.append(attempt_from_row(a, node.text))
    return nodes


def row_holder(row: Sequence[Any]) -> RunOwner | None:
    """The owner recorded in a ``(status, pid, host, owner_token)`` row."""
    if row[1] is None or row[2] is None:
        return None
    return RunOwner(row[2], row[1], row[3] or "")


@dataclass(slots=True)
class NodeWrite:
    """A committed node's rows, queued as data rather than as a callable so that the nodes
    of one batch are written together: one executemany per table and one cost update per
    run instead of four statements per node."""

    run_id: str
    node: tuple[Any, ...]
    """A :func:`node_row`."""
    attempts: list[tuple[Any, ...]]

    @classmethod
    def of(cls, run_id: str, result: NodeResult) -> NodeWrite:
        return cls(run_id, node_row(run_id, result), attempt_rows(run_id, result))

    @property
    def key(self) -> tuple[str, str]:
        return self.run_id, self.node[1]


OpT = TypeVar("OpT")


def grouped(ops: Sequence[OpT | NodeWrite]) -> Iterator[OpT | list[NodeWrite]]:
    """``ops`` in order, runs of consecutive node writes gathered into lists (a node written
    twice starts a new list: its second write must replace the first)."""
    group: list[NodeWrite] = []
    keys: set[tuple[str, str]] = set()
    for op in ops:
        if isinstance(op, NodeWrite) and op.key not in keys:
            group.append(op)
            keys.add(op.key)
            continue
        if group:
            yield group
            group, keys = [], set()
        if isinstance(op, NodeWrite):
            group.append(op)
            keys.add(op.key)
        else:
            yield op
    if group:
        yield group


def run_costs(writes: Sequence[NodeWrite]) -> list[tuple[float, str]]:
    """``(cost, run_id)`` per run: what the written nodes add to each run's cost."""
    costs: dict[str, float] = {}
    for w in writes:
        costs[w.run_id] = costs.get(w.run_id, 0.0) + w.node[_NODE_COST]
    return [(c, rid) for rid, c in costs.items()]


BATCH_COLS = (
    "batch_id, workflow, status, started_at, finished_at, items_path, items_fingerprint, "
    "items_total, source, budget, pid, host"
)


def new_batch_row(record: BatchRecord, pid: int, host: str) -> tuple[Any, ...]:
    """The row of a batch just claimed as running by (pid, host), in BATCH_COLS order."""
    return (
        record.batch_id,
        record.workflow,
        "running",
        record.started_at,
        None,
        record.items_path,
        record.items_fingerprint,
        record.items_total,
        record.source,
        record.budget,
        pid,
        host,
    )


def batch_record(row: Sequence[Any]) -> BatchRecord:
    """A BatchRecord from a BATCH_COLS row; a running batch whose process is gone reads as
    ``interrupted``."""
    status = row[2]
    if status == "running" and not process_alive(row[10], row[11]):
        status = "interrupted"
    return BatchRecord(
        row[0],
        row[1],
        status,
        row[3],
        row[5],
        row[6],
        row[7],
        source=row[8],
        finished_at=row[4],
        budget=row[9],
        pid=row[10],
        host=row[11],
    )


def batch_taken_over(row: Sequence[Any], record: BatchRecord, pid: int, host: str) -> BatchRecord:
    """The stored batch ``row`` as (pid, host) resumed it: running, with the resume's budget
    and source (its path, fingerprint and size stay the first run's)."""
    held = batch_record(row)
    held.status, held.pid, held.host = "running", pid, host
    held.budget, held.source = record.budget, record.source
    return held


def batch_item(r: Sequence[Any]) -> BatchItem:
    """A BatchItem from a ``Statements.batch_items`` row: the run's status wins over the item's."""
    status = r[5] if r[5] is not None else r[3]
    if status == "running" and not process_alive(r[8], r[9]):
        status = "interrupted"
    return BatchItem(r[0], r[1], r[2], status, r[6] or 0.0, r[4], r[7])


def queued_rows(batch_id: str, items: Sequence[QueuedItem]) -> list[tuple[Any, ...]]:
    """batch_items rows (batch_id, idx, line, run_id, status, error, inputs) of queued items;
    an item that can never run is queued as finished, ``invalid``, its error redacted."""
    return [
        (
            batch_id,
            it.index,
            it.line,
            it.run_id,
            "invalid" if it.error else None,
            redact_text(it.error) if it.error else None,
            json.dumps(it.inputs, separators=(",", ":"), default=str),
        )
        for it in items
    ]


def queued_item(r: Sequence[Any]) -> QueuedItem:
    """A claimed item from its (idx, line, run_id, inputs, run exists) row."""
    return QueuedItem(r[0], r[1], r[2], json.loads(r[3] or "{}"), begun=bool(r[4]))
