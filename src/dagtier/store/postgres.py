"""The PostgreSQL store: runs, node results, attempts, tier statistics and the result cache
in one database, shared by every process and machine that can reach it.

Needs ``pip install 'dagtier[postgres]'`` (psycopg 3). Open it with a libpq URL,
``open_store("postgresql://user:password@host:5432/db")`` or ``--store`` /
``DAGTIER_STORE``; the password never appears in errors, logs or ``repr``.

Durability and speed:

- Group commit (:mod:`dagtier.store._batch`), as in the SQLite store: every caller returns
  once the transaction holding its write committed (PostgreSQL's default
  ``synchronous_commit=on``: flushed to the WAL on disk), so a node's result is durable
  before its dependents start, while nodes finishing together share one transaction.
- Each batch is sent in pipeline mode: its statements travel together and the whole
  transaction costs about one network round trip. Statements that repeat are prepared by
  psycopg after a few uses.
- Claims lock the run's row (``SELECT ... FOR UPDATE``): of two processes claiming a run at
  once, the second waits for the first's commit and then sees the run taken. Statistics are
  folded in by one ``INSERT ... ON CONFLICT DO UPDATE``, so concurrent writers lose nothing.
- A batch's work queue (``dagtier batch --ray``): workers claim items with
  ``FOR UPDATE SKIP LOCKED``, so concurrent claimers take disjoint items without queueing.
- One asyncio connection, opened on first use in the running event loop (asyncio only:
  psycopg has no trio support). Reads and batches take turns on it.
- A lost server (restarted, crashed, unreachable for a while) pauses the store instead of
  failing the runs: reads and writes wait, reconnecting with backoff, for up to
  ``retry_s`` seconds (default 60, ``DAGTIER_STORE_RETRY_S``), then fail with a StoreError
  that says so. A write whose COMMIT was sent when the connection broke may or may not have
  committed: every transaction also records a token of its own in ``store_commits``, so
  after reconnecting the store looks it up and applies the write again only if it did not
  commit (a node's cost is never counted twice).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .._exceptions import RunClaimed, StoreError
from .._logging import get_logger, redact_text
from .._types import RunStatus, Tier
from ..results import NodeResult
from . import (
    _PASSWORD_IN_URL,
    _PASSWORD_PARAM,
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
    redact_url,
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

if TYPE_CHECKING:
    import psycopg

Cursor = Any
"""psycopg.AsyncCursor (imported on first use: psycopg is an optional dependency)."""
Op = Callable[[Cursor], Awaitable[None]]

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            fingerprint TEXT,
            node_fingerprints TEXT NOT NULL DEFAULT '{}',
            inputs TEXT NOT NULL DEFAULT '{}',
            cost DOUBLE PRECISION NOT NULL DEFAULT 0,
            source TEXT,
            pid INTEGER,
            host TEXT,
            budget DOUBLE PRECISION,
            owner_token TEXT
        );
        CREATE INDEX runs_started ON runs (started_at);
        CREATE TABLE nodes (
            run_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            status TEXT NOT NULL,
            output TEXT,
            text TEXT,
            tier INTEGER,
            model TEXT,
            error TEXT,
            started_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION,
            task_key TEXT,
            decision TEXT,
            cache_hit INTEGER NOT NULL DEFAULT 0,
            cost DOUBLE PRECISION NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, node_id)
        );
        CREATE TABLE attempts (
            run_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            tier INTEGER NOT NULL,
            model TEXT NOT NULL,
            provider TEXT NOT NULL,
            usage TEXT NOT NULL,
            cost DOUBLE PRECISION NOT NULL,
            latency_s DOUBLE PRECISION NOT NULL,
            verdict TEXT NOT NULL,
            reason TEXT NOT NULL,
            checks TEXT,
            judge_cost DOUBLE PRECISION NOT NULL,
            judge_usage TEXT,
            request_id TEXT,
            fallbacks TEXT,
            purpose TEXT NOT NULL,
            output TEXT,
            response_model TEXT,
            turns TEXT,
            PRIMARY KEY (run_id, node_id, idx)
        );
        CREATE TABLE tier_stats (
            task_key TEXT NOT NULL,
            tier INTEGER NOT NULL,
            successes DOUBLE PRECISION NOT NULL,
            failures DOUBLE PRECISION NOT NULL,
            observations INTEGER NOT NULL,
            total_cost DOUBLE PRECISION NOT NULL,
            total_latency_s DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (task_key, tier)
        );
        CREATE TABLE cache (
            key TEXT PRIMARY KEY,
            created_at DOUBLE PRECISION NOT NULL,
            run_id TEXT,
            node_id TEXT,
            output TEXT,
            text TEXT,
            tier INTEGER,
            model TEXT,
            cost DOUBLE PRECISION NOT NULL DEFAULT 0
        );
        """,
    ),
    (
        2,
        """
        CREATE TABLE batches (
            batch_id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            items_path TEXT NOT NULL,
            items_fingerprint TEXT NOT NULL,
            items_total INTEGER NOT NULL,
            source TEXT,
            budget DOUBLE PRECISION,
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
            inputs TEXT,
            owner TEXT,
            lease_until DOUBLE PRECISION,
            PRIMARY KEY (batch_id, idx)
        );
        """,
    ),
    (3, LEDGER_DDL),
    (
        4,
        """
        ALTER TABLE runs ADD COLUMN deadline_s DOUBLE PRECISION;
        ALTER TABLE runs ADD COLUMN deadline_at DOUBLE PRECISION;
        ALTER TABLE nodes ADD COLUMN deadline_tier INTEGER;
        """,
    ),
    (5, "CREATE TABLE store_commits (writer TEXT PRIMARY KEY, token TEXT NOT NULL);"),
    (6, EVIDENCE_DDL),
)
"""Ordered schema migrations: (version reached, SQL). Append; never edit a released step.
(Versions of their own: the SQLite store's history does not apply here.)"""

SCHEMA_VERSION = MIGRATIONS[-1][0]


SQL = Statements("%s", "GREATEST")

_MIGRATION_LOCK = 0x64616774  # "dagt": serialises migrations of processes starting at once

ENV_RETRY = "DAGTIER_STORE_RETRY_S"
DEFAULT_RETRY_S = 60.0
_FIRST_BACKOFF_S, _MAX_BACKOFF_S = 0.05, 2.0
_LOST_STATES = ("57P01", "57P02", "57P03")
"""Server shutting down (admin, crash) or starting up; class 08 is a connection exception."""
_MARK = (
    "INSERT INTO store_commits (writer, token) VALUES (%s, %s) "
    "ON CONFLICT (writer) DO UPDATE SET token = excluded.token"
)
T = TypeVar("T")

_HINT = "check the URL, that the server runs and accepts this user, or pass another --store"
_RETRY_HINT = "the change was not saved; retry, or check the server's log"


def _password(url: str) -> str | None:
    m = _PASSWORD_IN_URL.search(url) or _PASSWORD_PARAM.search(url)
    return None if m is None else m.group(2)


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "a postgresql:// store needs psycopg\nhint: pip install 'dagtier[postgres]'"
        ) from None
    return psycopg


class PostgresStore:
    """Implements :class:`~dagtier.store.RunStore`, :class:`~dagtier.store.StatsStore`,
    :class:`~dagtier.store.ResultCache`, :class:`~dagtier.store.BatchStore` and
    :class:`~dagtier.store.BatchQueue` over a PostgreSQL database.

    Opening connects once (synchronously, so an unreachable server fails here, before any
    work starts) and creates or migrates the tables; the asyncio connection used for
    reads and writes opens on first use.

    Args:
        url: a libpq URL, ``postgresql://user:password@host:port/dbname`` (a unix socket:
            ``postgresql:///dbname?host=/run/postgresql``).
        connect_timeout_s: how long to wait for the server.
        retry_s: how long reads and writes wait for a lost server to come back before
            failing (default ``$DAGTIER_STORE_RETRY_S``, else 60).

    Raises:
        StoreError: the server cannot be reached or refuses the login, psycopg is not
            installed, or the database holds a newer dagtier's schema. The message names
            the URL without its password.
    """

    def __init__(
        self, url: str, *, connect_timeout_s: int = 10, retry_s: float | None = None
    ) -> None:
        self._host = socket.gethostname()
        self._url = url
        self.path = redact_url(url)
        """The URL without its password (named ``path`` like the SQLite store's file)."""
        self._timeout = max(2, int(connect_timeout_s))  # libpq's minimum
        self.retry_s = _retry_s(retry_s)
        self._writer = uuid.uuid4().hex
        """This store's row in store_commits: which of its transactions committed last."""
        self._psycopg = _import_psycopg()
        try:
            with self._psycopg.connect(url, connect_timeout=self._timeout) as con:
                self._migrate(con)
        except self._psycopg.Error as exc:
            raise self._error("cannot connect", exc) from None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: anyio.Lock | None = None
        self._connecting: anyio.Lock | None = None
        self._batches: GroupCommit[Op | NodeWrite] = GroupCommit(self._commit, self._write_failed)

    def __repr__(self) -> str:
        return f"PostgresStore({self.path!r})"

    def _error(self, what: str, exc: BaseException) -> StoreError:
        lost = isinstance(exc, self._psycopg.OperationalError)
        hint = _HINT if lost else _RETRY_HINT
        err = StoreError(f"store {self.path}: {what}: {self._redacted(exc)}\nhint: {hint}")
        err.hint = hint
        return err

    # --- schema -----------------------------------------------------------------------------

    def _migrate(self, con: psycopg.Connection[Any]) -> None:
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = con.execute("SELECT version FROM schema_version").fetchone()
            current = row[0] if row else 0
            if row is None:
                con.execute("INSERT INTO schema_version VALUES (0)")
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path} has schema version {current}, newer than this dagtier "
                    f"understands ({SCHEMA_VERSION})\nhint: upgrade dagtier, or pass another "
                    "--store"
                )
            for version, sql in MIGRATIONS:
                if version > current:
                    con.execute(sql)
                    con.execute("UPDATE schema_version SET version = %s", (version,))

    @property
    def schema_version(self) -> int:
        with self._psycopg.connect(self._url, connect_timeout=self._timeout) as con:
            return int(con.execute("SELECT version FROM schema_version").fetchone()[0])

    # --- plumbing ---------------------------------------------------------------------------

    async def _connection(self) -> tuple[psycopg.AsyncConnection[Any], anyio.Lock]:
        """The open connection of the running event loop (a new loop gets a new one).

        Raises:
            psycopg.Error: connecting failed (see :meth:`_retrying`).
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._drop()
            self._loop, self._lock, self._connecting = loop, anyio.Lock(), anyio.Lock()
        assert self._lock is not None and self._connecting is not None
        async with self._connecting:  # tasks finding it lost together open one connection
            if self._conn is None or self._conn.closed:
                self._drop()
                self._conn = await self._psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=self._timeout
                )
        return self._conn, self._lock

    def _lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the server or the connection to it went away."""
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken):
            return True
        state = getattr(exc, "sqlstate", None)
        if state is None:
            return isinstance(exc, self._psycopg.OperationalError)
        return bool(state.startswith("08") or state in _LOST_STATES)

    async def _retrying(
        self,
        what: str,
        attempt: Callable[[], Awaitable[T]],
        committed: Callable[[], Awaitable[bool]] | None = None,
    ) -> T | None:
        """``attempt()``; while the server is lost, reconnect with backoff and try again,
        for up to ``retry_s`` seconds. After a loss, ``committed()`` first tells whether
        the attempt that broke had committed (then it is not made again; returns None).

        Raises:
            StoreError: the server did not come back in time, or another database error
                (named ``what``).
        """
        lost_at: float | None = None
        backoff = _FIRST_BACKOFF_S
        log = get_logger()
        while True:
            try:
                if lost_at is not None and committed is not None and await committed():
                    result: T | None = None
                else:
                    result = await attempt()
            except self._psycopg.Error as exc:
                if not self._lost(exc):
                    raise self._error(what, exc) from None
                self._drop()
                now = time.monotonic()
                if lost_at is None:
                    lost_at = now
                    log.warning(
                        "store lost; runs wait for it",
                        store=self.path,
                        error=self._redacted(exc),
                        retry_s=self.retry_s,
                    )
                elif now - lost_at >= self.retry_s:
                    raise self._gave_up(exc, now - lost_at) from None
                await anyio.sleep(min(backoff, max(0.0, lost_at + self.retry_s - now)))
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            if lost_at is not None:
                log.warning(
                    "store back; runs go on",
                    store=self.path,
                    after_s=round(time.monotonic() - lost_at, 2),
                )
            return result

    def _redacted(self, exc: BaseException) -> str:
        msg = str(exc).strip()
        password = _password(self._url)
        return redact_text(msg.replace(password, "***") if password else msg)

    def _gave_up(self, exc: BaseException, waited_s: float) -> StoreError:
        hint = (
            "check that the server runs and is reachable, then resume the run or batch "
            f"(--resume); to wait longer for it, set {ENV_RETRY} (seconds)"
        )
        err = StoreError(
            f"store {self.path}: lost the connection to the server and it did not come back "
            f"within {waited_s:.0f} s: {self._redacted(exc)}\n"
            "note: every result committed before is kept; what was being written was not "
            f"saved, and a resume carries on from the last committed node\nhint: {hint}"
        )
        err.hint = hint
        return err

    def _drop(self) -> None:
        # Closing the socket needs no event loop, so this also works after the loop ended.
        if self._conn is not None and not self._conn.closed:
            self._conn.pgconn.finish()
        self._conn = None

    async def _commit(self, ops: list[Op | NodeWrite]) -> None:
        token = uuid.uuid4().hex  # marks this transaction: did it commit before a loss?

        async def attempt() -> None:
            conn, lock = await self._connection()
            async with lock, conn.pipeline(), conn.transaction(), conn.cursor() as cur:
                await cur.execute(_MARK, (self._writer, token))
                for op in grouped(ops):
                    if isinstance(op, list):
                        await _write_nodes(cur, op)
                    else:
                        await op(cur)

        async def committed() -> bool:
            conn, lock = await self._connection()
            # FOR UPDATE: waits for the broken transaction if its server process is still
            # finishing it, so its outcome is final when read
            async with lock, conn.transaction(), conn.cursor() as cur:
                await cur.execute(
                    "SELECT token FROM store_commits WHERE writer = %s FOR UPDATE",
                    (self._writer,),
                )
                row = await cur.fetchone()
            return row is not None and row[0] == token

        await self._retrying("write failed", attempt, committed)

    def _write_failed(self, exc: Exception) -> Exception:
        if isinstance(exc, self._psycopg.Error):
            return self._error("write failed", exc)
        return exc

    async def _submit(self, *ops: Op | NodeWrite) -> None:
        """Commit ``ops`` (with whatever else is queued) in one transaction; see GroupCommit."""
        await self._batches.submit(ops)

    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async def attempt() -> list[tuple[Any, ...]]:
            conn, lock = await self._connection()
            async with lock, conn.cursor() as cur:
                await cur.execute(sql, params)
                rows: list[tuple[Any, ...]] = await cur.fetchall()
                return rows

        return await self._retrying("read failed", attempt) or []

    def close(self) -> None:
        """Close the connection (queued writes are committed by their leader first)."""
        self._drop()

    async def aclose(self) -> None:
        if not self._batches.idle:
            await self._submit()
        if self._conn is not None and not self._conn.closed:
            await self._conn.close()
        self._conn = None

    # --- StatsStore -------------------------------------------------------------------------

    async def tier_stats(self, task_key: str) -> dict[Tier, TierStats]:
        rows = await self._read(SQL.stats_of, (task_key,))
        return {r[0]: TierStats(task_key, r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows}

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
        """Fold one observation into (task key, tier), decaying older evidence, in one
        atomic upsert (the same arithmetic as :meth:`TierStats.apply`); see
        :meth:`StatsStore.record_observation`."""
        recorded = [True]
        params = (
            task_key,
            tier,
            weight if success else 0.0,
            0.0 if success else weight,
            cost,
            latency_s,
            time.time(),
            TierStats.decay(weight, half_life),
        )

        async def op(cur: Cursor) -> None:
            if evidence_id is not None:
                await cur.execute(SQL.record_evidence, (task_key, tier, evidence_id))
                recorded[0] = await cur.fetchone() is not None
                if not recorded[0]:
                    return
            await cur.execute(
                "INSERT INTO tier_stats AS t VALUES (%s, %s, %s, %s, 1, %s, %s, %s) "
                "ON CONFLICT (task_key, tier) DO UPDATE SET "
                "successes = t.successes * %s + excluded.successes, "
                "failures = t.failures * %s + excluded.failures, "
                "observations = t.observations + 1, "
                "total_cost = t.total_cost + excluded.total_cost, "
                "total_latency_s = t.total_latency_s + excluded.total_latency_s, "
                "updated_at = excluded.updated_at",
                (*params, params[-1]),
            )

        await self._submit(op)
        return recorded[0]

    async def all_stats(self) -> list[TierStats]:
        rows = await self._read(SQL.all_stats)
        return [TierStats(*r) for r in rows]

    # --- RunStore ---------------------------------------------------------------------------

    async def begin_run(self, record: RunRecord, owner: RunOwner | None = None) -> None:
        """Record a run as running, owned by ``owner`` (default: a new owner in this
        process). A resumed run keeps its row, cost and start time; its fingerprints,
        inputs and owner are updated.

        Raises:
            RunClaimed: another live owner holds the run (checked under the row's lock).
        """
        owner = owner or RunOwner.this_process()
        row = run_row(record, owner)
        refused: list[RunOwner] = []

        async def op(cur: Cursor) -> None:
            refused.clear()
            await cur.execute(
                f"INSERT INTO runs ({RUN_COLS}) VALUES "
                "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (run_id) DO NOTHING RETURNING 1",
                row,
            )
            if await cur.fetchone() is not None:
                return
            holder = await _holder(cur, record.run_id, owner, None)
            if holder is not None:
                refused.append(holder)
                return
            await cur.execute(
                "UPDATE runs SET status = 'running', finished_at = NULL, workflow = %s, "
                "fingerprint = %s, node_fingerprints = %s, inputs = %s, source = %s, pid = %s, "
                "host = %s, budget = %s, owner_token = %s, deadline_s = %s, deadline_at = %s "
                "WHERE run_id = %s",
                (*row[1:2], *row[5:8], *row[9:], record.run_id),
            )

        await self._submit(op)
        if refused:
            raise RunClaimed(run_id=record.run_id, holder=refused[0])

    async def claim_run(
        self, run_id: str, owner: RunOwner, *, take_over: RunOwner | None = None
    ) -> bool:
        """Atomically make ``owner`` the run's owner and mark it running (see
        :meth:`dagtier.store.RunStore.claim_run`), under the row's lock."""
        claimed: list[bool] = []

        async def op(cur: Cursor) -> None:
            claimed.clear()  # a transaction retried runs its ops again
            await cur.execute(SQL.run_exists, (run_id,))
            if await cur.fetchone() is None or await _holder(cur, run_id, owner, take_over):
                return
            await cur.execute(SQL.claim_run, (owner.pid, owner.host, owner.token, run_id))
            claimed.append(True)

        await self._submit(op)
        return bool(claimed)

    async def commit_node(self, run_id: str, result: NodeResult) -> None:
        """Durably save a finished node (replacing an earlier result of the same node, whose
        cost stays counted in the run's total). Returns once committed."""
        await self._submit(NodeWrite.of(run_id, result))

    async def commit_nodes(self, run_id: str, results: Sequence[NodeResult]) -> None:
        """:meth:`commit_node` for several nodes of a run, in one transaction."""
        await self._submit(*(NodeWrite.of(run_id, r) for r in results))

    async def finish_run(self, run_id: str, status: RunStatus, cost: float) -> None:
        params = (status, time.time(), cost, run_id)

        async def op(cur: Cursor) -> None:
            await cur.execute(SQL.finish_run, params)

        await self._submit(op)

    async def load_run(self, run_id: str) -> tuple[RunRecord, dict[str, NodeResult]] | None:
        runs = await self._read(SQL.run, (run_id,))
        if not runs:
            return None
        nodes = await self._read(SQL.run_nodes, (run_id,))
        attempts = await self._read(SQL.run_attempts, (run_id,))
        return record_from_row(runs[0]), assemble_nodes(nodes, attempts)

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        """The latest runs, newest first. A 'running' run whose process is gone is reported
        as ``interrupted``."""
        rows = await self._read(SQL.latest_runs, (limit,))
        return [record_from_row(r) for r in rows]

    async def node_counts(self, run_id: str) -> dict[str, int]:
        """How many of a run's committed nodes ended in each status."""
        rows = await self._read(SQL.node_counts, (run_id,))
        return {r[0]: int(r[1]) for r in rows}

    # --- ResultCache ------------------------------------------------------------------------

    async def cache_get(self, key: str, *, ttl_s: float | None) -> CachedAnswer | None:
        oldest = 0.0 if ttl_s is None else time.time() - ttl_s
        rows = await self._read(SQL.cache_get, (key, oldest))
        if not rows:
            return None
        r = rows[0]
        return CachedAnswer(
            r[0], r[1], None if r[2] is None else json.loads(r[2]), r[3], r[4], r[5], r[6], r[7]
        )

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

        async def op(cur: Cursor) -> None:
            await cur.execute(SQL.cache_put, params)

        await self._submit(op)

    async def cache_clear(self, *, older_than_s: float | None = None) -> int:
        """Delete cached results (all, or those older than ``older_than_s``); returns how many."""
        cutoff = time.time() - older_than_s if older_than_s is not None else float("inf")
        deleted: list[int] = []

        async def op(cur: Cursor) -> None:
            deleted.clear()
            # counted by the query: in pipeline mode rowcount is not known yet
            await cur.execute(
                "WITH d AS (DELETE FROM cache WHERE created_at < %s RETURNING 1) "
                "SELECT count(*) FROM d",
                (cutoff,),
            )
            row = await cur.fetchone()
            deleted.append(int(row[0]))

        await self._submit(op)
        return deleted[0] if deleted else 0

    # --- BatchStore -------------------------------------------------------------------------

    async def claim_batch(self, record: BatchRecord) -> BatchRecord | None:
        """Create the batch, or take over a stopped one; None when a live process runs it.

        The insert and the check run under the batch row's lock (``FOR UPDATE``), so of two
        ``--resume`` of the same batch started together exactly one wins."""
        pid, host = os.getpid(), self._host
        claimed: list[BatchRecord | None] = []

        async def op(cur: Cursor) -> None:
            claimed.clear()
            await cur.execute(
                SQL.new_batch + " ON CONFLICT (batch_id) DO NOTHING RETURNING 1",
                new_batch_row(record, pid, host),
            )
            if await cur.fetchone() is not None:
                claimed.append(replace(record, status="running", pid=pid, host=host))
                return
            await cur.execute(SQL.batch + " FOR UPDATE", (record.batch_id,))
            row = await cur.fetchone()
            if row[2] == "running" and process_alive(row[10], row[11]):
                claimed.append(None)
                return
            await cur.execute(
                SQL.take_over_batch, (pid, host, record.budget, record.source, record.batch_id)
            )
            claimed.append(batch_taken_over(row, record, pid, host))

        await self._submit(op)
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

        async def op(cur: Cursor) -> None:
            await cur.execute(SQL.record_item, params)

        await self._submit(op)

    async def finish_batch(self, batch_id: str, status: str) -> None:
        params = (status, time.time(), batch_id)

        async def op(cur: Cursor) -> None:
            await cur.execute(SQL.finish_batch, params)

        await self._submit(op)

    async def load_batch(self, batch_id: str) -> tuple[BatchRecord, list[BatchItem]] | None:
        rows = await self._read(SQL.batch, (batch_id,))
        if not rows:
            return None
        items = await self._read(SQL.batch_items, (batch_id,))
        return batch_record(rows[0]), [batch_item(r) for r in items]

    async def list_batches(self, limit: int = 50) -> list[BatchRecord]:
        rows = await self._read(SQL.latest_batches, (limit,))
        return [batch_record(r) for r in rows]

    # --- BatchQueue -------------------------------------------------------------------------

    async def enqueue_items(self, batch_id: str, items: list[QueuedItem]) -> None:
        """Queue a batch's items for workers; items already queued are left as they are."""
        rows = queued_rows(batch_id, items)

        async def op(cur: Cursor) -> None:
            await cur.executemany(SQL.enqueue_item, rows)

        if rows:
            await self._submit(op)

    async def claim_items(
        self, batch_id: str, owner: str, limit: int, lease_s: float
    ) -> list[QueuedItem]:
        """Take up to ``limit`` unfinished items nobody holds (or whose holder's lease ran
        out: a killed worker's) for ``lease_s`` seconds. ``FOR UPDATE SKIP LOCKED``: a worker
        claiming at the same moment skips the rows this one is taking instead of waiting for
        them, so two workers never take the same item and never queue behind each other."""
        now = time.time()
        taken: list[QueuedItem] = []

        async def op(cur: Cursor) -> None:
            taken.clear()
            await cur.execute(
                "UPDATE batch_items b SET owner = %s, lease_until = %s FROM ("
                "SELECT idx FROM batch_items WHERE batch_id = %s AND status IS NULL "
                "AND (lease_until IS NULL OR lease_until < %s) ORDER BY idx LIMIT %s "
                "FOR UPDATE SKIP LOCKED) AS free "
                "WHERE b.batch_id = %s AND b.idx = free.idx "
                "RETURNING b.idx, b.line, b.run_id, b.inputs, "
                "EXISTS (SELECT 1 FROM runs r WHERE r.run_id = b.run_id)",
                (owner, now + lease_s, batch_id, now, limit, batch_id),
            )
            rows = await cur.fetchall()
            taken.extend(queued_item(r) for r in sorted(rows))

        await self._submit(op)
        return taken

    async def renew_items(self, batch_id: str, owner: str, lease_s: float) -> None:
        params = (time.time() + lease_s, batch_id, owner)

        async def op(cur: Cursor) -> None:
            await cur.execute(SQL.renew_items, params)

        await self._submit(op)

    async def finish_item(self, batch_id: str, index: int) -> None:
        params = (batch_id, index)

        async def op(cur: Cursor) -> None:
            await cur.execute(SQL.finish_item, params)

        await self._submit(op)

    async def release_item(self, batch_id: str, index: int) -> None:
        params = (batch_id, index)

        async def op(cur: Cursor) -> None:
            await cur.execute(SQL.release_item, params)

        await self._submit(op)

    async def items_left(self, batch_id: str) -> int:
        rows = await self._read(SQL.items_left, (batch_id,))
        return int(rows[0][0])

    # --- BudgetLedger (see store._ledger) ---------------------------------------------------

    async def open_budget(self, budget_id: str, limit: float, *, spent: float = 0.0) -> None:
        params = (budget_id, limit, spent)

        async def op(cur: Cursor) -> None:
            await cur.execute(SQL.budget_open, params)

        await self._submit(op)

    async def reserve_budget(
        self, budget_id: str, hold_id: str, holder: str, amount: float, lease_s: float
    ) -> bool:
        """Hold ``amount`` if it fits: the conditional ``UPDATE`` locks the budget's row, so a
        process reserving at the same moment waits for this commit and then checks the
        limit against the new row."""
        granted: list[bool] = []
        lease_until = time.time() + lease_s

        async def op(cur: Cursor) -> None:
            granted.clear()  # a transaction retried runs its ops again
            await cur.execute(SQL.budget_grant, (amount, budget_id, amount))
            if await cur.fetchone() is not None:
                await cur.execute(
                    SQL.budget_hold, (hold_id, budget_id, holder, amount, lease_until)
                )
                granted.append(True)

        await self._submit(op)
        return bool(granted)

    async def settle_budget(self, hold_id: str, actual: float) -> None:
        async def op(cur: Cursor) -> None:
            await cur.execute(SQL.budget_release, (hold_id,))
            for budget_id, amount in await cur.fetchall():
                await cur.execute(SQL.budget_settle, (amount, actual, budget_id))

        await self._submit(op)

    async def reclaim_budget(self, budget_id: str) -> BudgetState | None:
        state: list[BudgetState] = []
        now = time.time()

        async def op(cur: Cursor) -> None:
            state.clear()
            await cur.execute(SQL.budget_expired, (budget_id, now))
            gone = sum(a for (a,) in await cur.fetchall())
            await cur.execute(SQL.budget_reclaim, (gone, gone, budget_id))
            state.extend(BudgetState(*r) for r in await cur.fetchall())

        await self._submit(op)
        return state[0] if state else None

    async def renew_budget(self, budget_id: str, holder: str, lease_s: float) -> None:
        params = (time.time() + lease_s, budget_id, holder)

        async def op(cur: Cursor) -> None:
            await cur.execute(SQL.budget_renew, params)

        await self._submit(op)


_NODE_TYPES = [
    "text",
    "text",
    "text",
    "text",
    "text",
    "int",
    "text",
    "text",
    "float8",
    "float8",
    "text",
    "text",
    "int",
    "float8",
    "int",
]
_ATTEMPT_TYPES = [
    "text",
    "text",
    "int",
    "int",
    "text",
    "text",
    "text",
    "float8",
    "float8",
    "text",
    "text",
    "text",
    "float8",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
]


def _unnest(
    table: str, types: Sequence[str], rows: Sequence[Sequence[Any]]
) -> tuple[str, list[Any]]:
    """One INSERT of many rows: a column array per parameter, so a batch of nodes costs one
    statement (and one server round of parsing) per table however many nodes it holds.
    Arrays travel in binary (``%b``): psycopg's text format quotes every element, which
    cost more client time than the rest of a node's write."""
    columns = [
        [None if v is None else float(v) for v in col] if kind == "float8" else list(col)
        for col, kind in zip(zip(*rows, strict=True), types, strict=True)
    ]
    casts = ", ".join(f"%b::{kind}[]" for kind in types)
    return f"INSERT INTO {table} SELECT * FROM unnest({casts})", columns


async def _write_nodes(cur: Cursor, writes: list[NodeWrite]) -> None:
    # A statement per table for the whole batch; in pipeline mode they travel together.
    run_ids, node_ids = [w.run_id for w in writes], [w.node[1] for w in writes]
    for table in ("attempts", "nodes"):
        await cur.execute(
            f"DELETE FROM {table} WHERE (run_id, node_id) IN "
            "(SELECT * FROM unnest(%b::text[], %b::text[]))",
            (run_ids, node_ids),
        )
    await cur.execute(*_unnest("nodes", _NODE_TYPES, [w.node for w in writes]))
    attempts = [a for w in writes for a in w.attempts]
    if attempts:
        await cur.execute(*_unnest("attempts", _ATTEMPT_TYPES, attempts))
    costs = run_costs(writes)
    await cur.execute(
        "UPDATE runs SET cost = runs.cost + c.cost FROM unnest(%b::float8[], %b::text[]) "
        "AS c (cost, run_id) WHERE runs.run_id = c.run_id",
        ([c for c, _ in costs], [r for _, r in costs]),
    )


async def _holder(
    cur: Cursor, run_id: str, owner: RunOwner, take_over: RunOwner | None
) -> RunOwner | None:
    await cur.execute(SQL.run_holder + " FOR UPDATE", (run_id,))
    row = await cur.fetchone()
    return None if row is None else claim_refused_by(row[0], row_holder(row), owner, take_over)


__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore", "redact_url"]


def _retry_s(given: float | None) -> float:
    if given is not None:
        return given
    raw = os.environ.get(ENV_RETRY)
    if not raw:
        return DEFAULT_RETRY_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also catches nan
        raise StoreError(
            f"{ENV_RETRY} must be a number of seconds (0 or more), got {raw!r}\n"
            f"hint: {ENV_RETRY}=60"
        )
    return value
