"""The SQLite store: runs, node results, attempts, tier statistics and the result cache in
one file.

Durability and speed:

- WAL journal with ``synchronous=NORMAL``: a committed transaction survives the process
  being killed (SIGKILL included: the WAL is written before COMMIT returns), though not a
  power cut of the machine before the next checkpoint. Pass ``synchronous="FULL"`` for that.
- Group commit (:mod:`dagtier.store._batch`): a burst of nodes finishing together costs one
  thread hop and one commit instead of one each, and each caller still returns only once
  its write committed.
- Every batch runs under ``BEGIN IMMEDIATE``: it holds SQLite's write lock from the start,
  so a statistics update (read, decay, write) and a run's claim (read its owner, write the
  new one) are atomic against other processes writing the same file.
- sqlite3 runs in worker threads through :func:`anyio.to_thread.run_sync` with a one-token
  limiter: one connection, one writer at a time.

Rows are built and read by :mod:`dagtier.store._rows`, shared with the PostgreSQL store.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .._exceptions import RunClaimed, StoreError
from .._logging import redact_text
from .._types import RunStatus, Tier
from ..results import NodeResult
from . import (
    BatchItem,
    BatchRecord,
    BudgetState,
    CachedAnswer,
    QueuedItem,
    RunOwner,
    RunRecord,
    TierStats,
    claim_refused_by,
    process_alive,
)
from ._batch import GroupCommit
from ._ledger import DDL as LEDGER_DDL
from ._rows import (
    EVIDENCE_DDL,
    RUN_COLS,
    NodeWrite,
    assemble_nodes,
    batch_item,
    batch_record,
    batch_taken_over,
    compact,
    grouped,
    new_batch_row,
    queued_item,
    queued_rows,
    record_from_row,
    row_holder,
    run_costs,
    run_row,
)
from ._sql import Statements

# --- schema ---------------------------------------------------------------------------------

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            fingerprint TEXT,
            node_fingerprints TEXT NOT NULL DEFAULT '{}',
            inputs TEXT NOT NULL DEFAULT '{}',
            cost REAL NOT NULL DEFAULT 0,
            source TEXT,
            pid INTEGER,
            host TEXT,
            budget REAL
        );
        CREATE INDEX runs_started ON runs (started_at);
        CREATE TABLE nodes (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            node_id TEXT NOT NULL,
            status TEXT NOT NULL,
            output TEXT,
            text TEXT,
            tier INTEGER,
            model TEXT,
            error TEXT,
            started_at REAL,
            finished_at REAL,
            task_key TEXT,
            decision TEXT,
            cache_hit INTEGER NOT NULL DEFAULT 0,
            cost REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, node_id)
        ) WITHOUT ROWID;
        CREATE TABLE attempts (
            run_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            tier INTEGER NOT NULL,
            model TEXT NOT NULL,
            provider TEXT NOT NULL,
            usage TEXT NOT NULL,
            cost REAL NOT NULL,
            latency_s REAL NOT NULL,
            verdict TEXT NOT NULL,
            reason TEXT NOT NULL,
            checks TEXT,
            judge_cost REAL NOT NULL,
            judge_usage TEXT,
            request_id TEXT,
            fallbacks TEXT,
            purpose TEXT NOT NULL,
            output TEXT,
            PRIMARY KEY (run_id, node_id, idx)
        ) WITHOUT ROWID;
        CREATE TABLE tier_stats (
            task_key TEXT NOT NULL,
            tier INTEGER NOT NULL,
            successes REAL NOT NULL,
            failures REAL NOT NULL,
            observations INTEGER NOT NULL,
            total_cost REAL NOT NULL,
            total_latency_s REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (task_key, tier)
        ) WITHOUT ROWID;
        """,
    ),
    (
        2,
        """
        CREATE TABLE cache (
            key TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            run_id TEXT,
            node_id TEXT,
            output TEXT,
            text TEXT,
            tier INTEGER,
            model TEXT,
            cost REAL NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        """,
    ),
    (3, "ALTER TABLE attempts ADD COLUMN response_model TEXT;"),
    (
        4,
        """
        CREATE TABLE batches (
            batch_id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            items_path TEXT NOT NULL,
            items_fingerprint TEXT NOT NULL,
            items_total INTEGER NOT NULL,
            source TEXT,
            budget REAL,
            pid INTEGER,
            host TEXT
        );
        CREATE TABLE batch_items (
            batch_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            line INTEGER NOT NULL,
            run_id TEXT,
            status TEXT,
            error TEXT,
            PRIMARY KEY (batch_id, idx)
        ) WITHOUT ROWID;
        """,
    ),
    (5, "ALTER TABLE attempts ADD COLUMN turns TEXT;"),
    (
        6,
        """
        ALTER TABLE batch_items ADD COLUMN inputs TEXT;
        ALTER TABLE batch_items ADD COLUMN owner TEXT;
        ALTER TABLE batch_items ADD COLUMN lease_until REAL;
        """,
    ),
    (7, "ALTER TABLE runs ADD COLUMN owner_token TEXT;"),
    (8, LEDGER_DDL),
    (
        9,
        """
        ALTER TABLE runs ADD COLUMN deadline_s REAL;
        ALTER TABLE runs ADD COLUMN deadline_at REAL;
        ALTER TABLE nodes ADD COLUMN deadline_tier INTEGER;
        """,
    ),
    (10, EVIDENCE_DDL),
)
"""Ordered schema migrations: (version reached, SQL). Append; never edit a released step."""

SCHEMA_VERSION = MIGRATIONS[-1][0]


_HINT = "pass another file with --store PATH (or set DAGTIER_STORE)"

Op = Callable[[sqlite3.Connection], None]

SQL = Statements("?", "MAX")


def _store_error(path: Path, what: str, exc: BaseException, hint: str = _HINT) -> StoreError:
    msg = str(exc)
    if "locked" in msg or "busy" in msg:
        hint = "another dagtier process held the store's write lock too long; retry, or " + hint
    elif "not a database" in msg:
        hint = f"{path} is not a dagtier store; " + hint
    elif "readonly" in msg or "unable to open" in msg:
        hint = "check that the directory exists and is writable, or " + hint
    err = StoreError(redact_text(f"store {path}: {what}: {msg}\nhint: {hint}"))
    err.hint = hint
    return err


class SqliteStore:
    """Implements :class:`~dagtier.store.RunStore`, :class:`~dagtier.store.StatsStore` and
    :class:`~dagtier.store.ResultCache` over one SQLite file.

    Args:
        path: the database file (created with its directory if missing).
        synchronous: SQLite's ``synchronous`` pragma: ``NORMAL`` (default) is durable against
            a crash of the process; ``FULL`` also against a crash of the machine.
        busy_timeout_s: how long to wait for another process's write lock.

    Raises:
        StoreError: the file cannot be opened, is not a dagtier store, or was written by a
            newer dagtier.
    """

    def __init__(
        self, path: str | Path, *, synchronous: str = "NORMAL", busy_timeout_s: float = 10.0
    ) -> None:
        self.path = Path(path)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(
                self.path,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # used from worker threads, one at a time
                timeout=busy_timeout_s,
                cached_statements=256,
            )
        except (OSError, sqlite3.Error) as exc:
            raise _store_error(self.path, "cannot open", exc) from None
        self._con = con
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(f"PRAGMA synchronous={synchronous.upper()}")
            con.execute("PRAGMA foreign_keys=OFF")
            self._migrate()
        except sqlite3.Error as exc:
            con.close()
            raise _store_error(self.path, "cannot initialise", exc) from None
        self._limiter = anyio.CapacityLimiter(1)
        self._batches: GroupCommit[Op | NodeWrite] = GroupCommit(self._commit, self._write_failed)
        self._host = socket.gethostname()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # --- schema -----------------------------------------------------------------------------

    def _migrate(self) -> None:
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = con.execute("SELECT version FROM schema_version").fetchone()
            current = row[0] if row else 0
            if row is None:
                con.execute("INSERT INTO schema_version VALUES (0)")
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path} has schema version {current}, newer than this dagtier "
                    f"understands ({SCHEMA_VERSION})\nhint: upgrade dagtier, or {_HINT}"
                )
            for version, sql in MIGRATIONS:
                if version > current:
                    for stmt in sql.split(";"):
                        if stmt.strip():
                            con.execute(stmt)
                    con.execute("UPDATE schema_version SET version = ?", (version,))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        return int(self._con.execute("SELECT version FROM schema_version").fetchone()[0])

    # --- plumbing ---------------------------------------------------------------------------

    def _write(self, ops: list[Op | NodeWrite]) -> None:
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            for op in grouped(ops):
                if isinstance(op, list):
                    _write_nodes(con, op)
                else:
                    op(con)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    async def _commit(self, ops: list[Op | NodeWrite]) -> None:
        await anyio.to_thread.run_sync(self._write, ops, limiter=self._limiter)

    def _write_failed(self, exc: Exception) -> Exception:
        if isinstance(exc, sqlite3.Error | OSError):
            return _store_error(self.path, "write failed", exc)
        return exc

    async def _submit(self, ops: Iterable[Op | NodeWrite]) -> None:
        """Commit ``ops`` (with whatever else is queued) in one transaction; see GroupCommit."""
        await self._batches.submit(ops)

    async def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        def go() -> Any:
            try:
                return fn(self._con)
            except sqlite3.Error as exc:
                raise _store_error(self.path, "read failed", exc) from None

        return await anyio.to_thread.run_sync(go, limiter=self._limiter)

    def close(self) -> None:
        """Close the connection. Pending batches are always committed by their leader first."""
        self._con.close()

    async def aclose(self) -> None:
        if not self._batches.idle:
            await self._submit(())
        self.close()

    # --- StatsStore -------------------------------------------------------------------------

    async def tier_stats(self, task_key: str) -> dict[Tier, TierStats]:
        def q(con: sqlite3.Connection) -> dict[Tier, TierStats]:
            rows = con.execute(SQL.stats_of, (task_key,)).fetchall()
            return {r[0]: TierStats(task_key, r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows}

        result: dict[Tier, TierStats] = await self._read(q)
        return result

    async def record_observation(
        self,
        task_key: str,
        tier: Tier,
        *,
        success: bool,
        weight: float = 1.0,
        cost: float = 0.0,
        latency_s: float = 0.0,
        half_life: float | None = None,
        evidence_id: str | None = None,
    ) -> bool:
        """Fold one observation into (task key, tier), decaying older evidence; see
        :meth:`StatsStore.record_observation`.

        Read, decay and write happen in one ``BEGIN IMMEDIATE`` transaction, so concurrent
        writers (threads or processes) never lose an update nor count one evidence id twice.
        """
        recorded = [True]

        def op(con: sqlite3.Connection) -> None:
            if evidence_id is not None:
                marked = con.execute(SQL.record_evidence, (task_key, tier, evidence_id))
                recorded[0] = marked.fetchone() is not None
                if not recorded[0]:
                    return
            row = con.execute(
                "SELECT successes, failures, observations, total_cost, total_latency_s "
                "FROM tier_stats WHERE task_key = ? AND tier = ?",
                (task_key, tier),
            ).fetchone()
            st = TierStats(task_key, tier, *row) if row else TierStats(task_key, tier)
            st.apply(success, weight, cost, latency_s, half_life)
            con.execute(
                "INSERT OR REPLACE INTO tier_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task_key,
                    tier,
                    st.successes,
                    st.failures,
                    st.observations,
                    st.total_cost,
                    st.total_latency_s,
                    time.time(),
                ),
            )

        await self._submit((op,))
        return recorded[0]

    async def all_stats(self) -> list[TierStats]:
        def q(con: sqlite3.Connection) -> list[TierStats]:
            rows = con.execute(SQL.all_stats).fetchall()
            return [TierStats(*r) for r in rows]

        result: list[TierStats] = await self._read(q)
        return result

    # --- RunStore ---------------------------------------------------------------------------

    async def begin_run(self, record: RunRecord, owner: RunOwner | None = None) -> None:
        """Record a run as running, owned by ``owner`` (default: a new owner in this
        process). A resumed run keeps its row, cost and start time; its fingerprints,
        inputs and owner are updated.

        Raises:
            RunClaimed: another live owner holds the run (checked in the same transaction).
        """
        owner = owner or RunOwner.this_process()
        row = run_row(record, owner)
        refused: list[RunOwner] = []

        def op(con: sqlite3.Connection) -> None:
            holder = _holder(con, record.run_id, owner, None)
            if holder is not None:
                refused.append(holder)
                return
            con.execute(
                f"INSERT INTO runs ({RUN_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (run_id) DO UPDATE SET status = 'running', finished_at = NULL, "
                "workflow = excluded.workflow, fingerprint = excluded.fingerprint, "
                "node_fingerprints = excluded.node_fingerprints, inputs = excluded.inputs, "
                "source = excluded.source, pid = excluded.pid, host = excluded.host, "
                "budget = excluded.budget, owner_token = excluded.owner_token, "
                "deadline_s = excluded.deadline_s, deadline_at = excluded.deadline_at",
                row,
            )

        await self._submit((op,))
        if refused:
            raise RunClaimed(run_id=record.run_id, holder=refused[0])

    async def claim_run(
        self, run_id: str, owner: RunOwner, *, take_over: RunOwner | None = None
    ) -> bool:
        """Atomically make ``owner`` the run's owner and mark it running (see
        :meth:`dagtier.store.RunStore.claim_run`). The owner is read and written under
        ``BEGIN IMMEDIATE``: no other process can claim in between."""
        claimed: list[bool] = []

        def op(con: sqlite3.Connection) -> None:
            exists = con.execute(SQL.run_exists, (run_id,)).fetchone()
            if exists is None or _holder(con, run_id, owner, take_over) is not None:
                return
            con.execute(SQL.claim_run, (owner.pid, owner.host, owner.token, run_id))
            claimed.append(True)

        await self._submit((op,))
        return bool(claimed)

    async def commit_node(self, run_id: str, result: NodeResult) -> None:
        """Durably save a finished node (replacing an earlier result of the same node, whose
        cost stays counted in the run's total). Returns once committed."""
        await self._submit((NodeWrite.of(run_id, result),))

    async def commit_nodes(self, run_id: str, results: Sequence[NodeResult]) -> None:
        """:meth:`commit_node` for several nodes of a run, in one transaction."""
        await self._submit([NodeWrite.of(run_id, r) for r in results])

    async def finish_run(self, run_id: str, status: RunStatus, cost: float) -> None:
        params = (status, time.time(), cost, run_id)

        def op(con: sqlite3.Connection) -> None:
            con.execute(SQL.finish_run, params)

        await self._submit((op,))

    async def load_run(self, run_id: str) -> tuple[RunRecord, dict[str, NodeResult]] | None:
        def q(con: sqlite3.Connection) -> tuple[RunRecord, dict[str, NodeResult]] | None:
            row = con.execute(SQL.run, (run_id,)).fetchone()
            if row is None:
                return None
            nodes = con.execute(SQL.run_nodes, (run_id,)).fetchall()
            attempts = con.execute(SQL.run_attempts, (run_id,)).fetchall()
            return record_from_row(row), assemble_nodes(nodes, attempts)

        result: tuple[RunRecord, dict[str, NodeResult]] | None = await self._read(q)
        return result

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        """The latest runs, newest first. A 'running' run whose process is gone is reported
        as ``interrupted``."""

        def q(con: sqlite3.Connection) -> list[RunRecord]:
            rows = con.execute(SQL.latest_runs, (limit,)).fetchall()
            return [record_from_row(r) for r in rows]

        result: list[RunRecord] = await self._read(q)
        return result

    async def node_counts(self, run_id: str) -> dict[str, int]:
        """How many of a run's committed nodes ended in each status."""

        def q(con: sqlite3.Connection) -> dict[str, int]:
            return dict(con.execute(SQL.node_counts, (run_id,)).fetchall())

        result: dict[str, int] = await self._read(q)
        return result

    # --- ResultCache ------------------------------------------------------------------------

    async def cache_get(self, key: str, *, ttl_s: float | None) -> CachedAnswer | None:
        oldest = 0.0 if ttl_s is None else time.time() - ttl_s

        def q(con: sqlite3.Connection) -> CachedAnswer | None:
            r = con.execute(SQL.cache_get, (key, oldest)).fetchone()
            if r is None:
                return None
            return CachedAnswer(
                r[0], r[1], None if r[2] is None else json.loads(r[2]), r[3], r[4], r[5], r[6], r[7]
            )

        result: CachedAnswer | None = await self._read(q)
        return result

    async def cache_put(self, key: str, answer: CachedAnswer) -> None:
        params = (
            key,
            answer.created_at,
            answer.run_id,
            answer.node_id,
            None if answer.output is None else compact(answer.output),
            answer.text,
            answer.tier,
            answer.model,
            answer.cost,
        )

        def op(con: sqlite3.Connection) -> None:
            con.execute(SQL.cache_put, params)

        await self._submit((op,))

    async def cache_clear(self, *, older_than_s: float | None = None) -> int:
        """Delete cached results (all, or those older than ``older_than_s``); returns how many."""
        cutoff = time.time() - older_than_s if older_than_s is not None else float("inf")
        deleted: list[int] = []

        def op(con: sqlite3.Connection) -> None:
            deleted.append(
                con.execute("DELETE FROM cache WHERE created_at < ?", (cutoff,)).rowcount
            )

        await self._submit((op,))
        return deleted[0] if deleted else 0

    # --- BatchStore -------------------------------------------------------------------------

    async def claim_batch(self, record: BatchRecord) -> BatchRecord | None:
        """Create the batch, or take over a stopped one; None when a live process runs it.

        The check and the take-over are one ``BEGIN IMMEDIATE`` transaction, so of two
        ``--resume`` of the same batch started together exactly one wins."""
        pid, host = os.getpid(), self._host
        claimed: list[BatchRecord | None] = []

        def op(con: sqlite3.Connection) -> None:
            row = con.execute(SQL.batch, (record.batch_id,)).fetchone()
            if row is None:
                con.execute(SQL.new_batch, new_batch_row(record, pid, host))
                claimed.append(replace(record, status="running", pid=pid, host=host))
                return
            if row[2] == "running" and process_alive(row[10], row[11]):
                claimed.append(None)
                return
            con.execute(
                SQL.take_over_batch, (pid, host, record.budget, record.source, record.batch_id)
            )
            claimed.append(batch_taken_over(row, record, pid, host))

        await self._submit((op,))
        return claimed[0]

    async def record_batch_item(
        self,
        batch_id: str,
        index: int,
        line: int,
        run_id: str | None,
        *,
        status: str | None = None,
        error: str | None = None,
    ) -> None:
        params = (batch_id, index, line, run_id, status, redact_text(error) if error else None)

        def op(con: sqlite3.Connection) -> None:
            con.execute(SQL.record_item, params)

        await self._submit((op,))

    async def finish_batch(self, batch_id: str, status: str) -> None:
        params = (status, time.time(), batch_id)

        def op(con: sqlite3.Connection) -> None:
            con.execute(SQL.finish_batch, params)

        await self._submit((op,))

    async def load_batch(self, batch_id: str) -> tuple[BatchRecord, list[BatchItem]] | None:
        def q(con: sqlite3.Connection) -> tuple[BatchRecord, list[BatchItem]] | None:
            row = con.execute(SQL.batch, (batch_id,)).fetchone()
            if row is None:
                return None
            items = con.execute(SQL.batch_items, (batch_id,)).fetchall()
            return batch_record(row), [batch_item(r) for r in items]

        result: tuple[BatchRecord, list[BatchItem]] | None = await self._read(q)
        return result

    async def list_batches(self, limit: int = 50) -> list[BatchRecord]:
        def q(con: sqlite3.Connection) -> list[BatchRecord]:
            rows = con.execute(SQL.latest_batches, (limit,)).fetchall()
            return [batch_record(r) for r in rows]

        result: list[BatchRecord] = await self._read(q)
        return result

    # --- BatchQueue -------------------------------------------------------------------------

    async def enqueue_items(self, batch_id: str, items: list[QueuedItem]) -> None:
        """Queue a batch's items for workers; items already queued are left as they are."""
        rows = queued_rows(batch_id, items)

        def op(con: sqlite3.Connection) -> None:
            con.executemany(SQL.enqueue_item, rows)

        await self._submit((op,))

    async def claim_items(
        self, batch_id: str, owner: str, limit: int, lease_s: float
    ) -> list[QueuedItem]:
        """Take up to ``limit`` unfinished items nobody holds (or whose holder's lease ran
        out: a killed worker's) for ``lease_s`` seconds. One ``BEGIN IMMEDIATE``
        transaction: two workers never take the same item."""
        now = time.time()
        taken: list[QueuedItem] = []

        def op(con: sqlite3.Connection) -> None:
            rows = con.execute(
                "SELECT b.idx, b.line, b.run_id, b.inputs, "
                "EXISTS (SELECT 1 FROM runs r WHERE r.run_id = b.run_id) FROM batch_items b "
                "WHERE b.batch_id = ? AND b.status IS NULL "
                "AND (b.lease_until IS NULL OR b.lease_until < ?) ORDER BY b.idx LIMIT ?",
                (batch_id, now, limit),
            ).fetchall()
            con.executemany(
                "UPDATE batch_items SET owner = ?, lease_until = ? WHERE batch_id = ? AND idx = ?",
                [(owner, now + lease_s, batch_id, r[0]) for r in rows],
            )
            taken.extend(queued_item(r) for r in rows)

        await self._submit((op,))
        return taken

    async def renew_items(self, batch_id: str, owner: str, lease_s: float) -> None:
        params = (time.time() + lease_s, batch_id, owner)

        def op(con: sqlite3.Connection) -> None:
            con.execute(SQL.renew_items, params)

        await self._submit((op,))

    async def finish_item(self, batch_id: str, index: int) -> None:
        params = (batch_id, index)

        def op(con: sqlite3.Connection) -> None:
            con.execute(SQL.finish_item, params)

        await self._submit((op,))

    async def release_item(self, batch_id: str, index: int) -> None:
        params = (batch_id, index)

        def op(con: sqlite3.Connection) -> None:
            con.execute(SQL.release_item, params)

        await self._submit((op,))

    async def items_left(self, batch_id: str) -> int:
        def q(con: sqlite3.Connection) -> int:
            return int(con.execute(SQL.items_left, (batch_id,)).fetchone()[0])

        result: int = await self._read(q)
        return result

    # --- BudgetLedger (see store._ledger) ---------------------------------------------------

    async def open_budget(self, budget_id: str, limit: float, *, spent: float = 0.0) -> None:
        def op(con: sqlite3.Connection) -> None:
            con.execute(SQL.budget_open, (budget_id, limit, spent))

        await self._submit((op,))

    async def reserve_budget(
        self, budget_id: str, hold_id: str, holder: str, amount: float, lease_s: float
    ) -> bool:
        """Hold ``amount`` if it fits; one ``BEGIN IMMEDIATE`` transaction, so no other
        process reserves between the check and the update."""
        granted: list[bool] = []
        lease_until = time.time() + lease_s

        def op(con: sqlite3.Connection) -> None:
            granted.clear()  # a transaction retried runs its ops again
            if con.execute(SQL.budget_grant, (amount, budget_id, amount)).fetchall():
                con.execute(SQL.budget_hold, (hold_id, budget_id, holder, amount, lease_until))
                granted.append(True)

        await self._submit((op,))
        return bool(granted)

    async def settle_budget(self, hold_id: str, actual: float) -> None:
        def op(con: sqlite3.Connection) -> None:
            for budget_id, amount in con.execute(SQL.budget_release, (hold_id,)).fetchall():
                con.execute(SQL.budget_settle, (amount, actual, budget_id))

        await self._submit((op,))

    async def reclaim_budget(self, budget_id: str) -> BudgetState | None:
        state: list[BudgetState] = []
        now = time.time()

        def op(con: sqlite3.Connection) -> None:
            state.clear()
            gone = sum(a for (a,) in con.execute(SQL.budget_expired, (budget_id, now)))
            rows = con.execute(SQL.budget_reclaim, (gone, gone, budget_id)).fetchall()
            state.extend(BudgetState(*r) for r in rows)

        await self._submit((op,))
        return state[0] if state else None

    async def renew_budget(self, budget_id: str, holder: str, lease_s: float) -> None:
        params = (time.time() + lease_s, budget_id, holder)

        def op(con: sqlite3.Connection) -> None:
            con.execute(SQL.budget_renew, params)

        await self._submit((op,))


def _write_nodes(con: sqlite3.Connection, writes: list[NodeWrite]) -> None:
    con.executemany(
        "DELETE FROM attempts WHERE run_id = ? AND node_id = ?", [w.key for w in writes]
    )
    con.executemany(
        "INSERT OR REPLACE INTO nodes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [w.node for w in writes],
    )
    con.executemany(
        "INSERT INTO attempts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [a for w in writes for a in w.attempts],
    )
    con.executemany("UPDATE runs SET cost = cost + ? WHERE run_id = ?", run_costs(writes))


def _holder(
    con: sqlite3.Connection, run_id: str, owner: RunOwner, take_over: RunOwner | None
) -> RunOwner | None:
    row = con.execute(SQL.run_holder, (run_id,)).fetchone()
    return None if row is None else claim_refused_by(row[0], row_holder(row), owner, take_over)


__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SQLiteStore", "SqliteStore", "process_alive"]

SQLiteStore = SqliteStore
"""Alias: the spelling bench/overhead.py (core branch) imports."""
