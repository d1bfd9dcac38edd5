"""The statements the SQLite and PostgreSQL stores share, written once.

Where the two dialects agree, a statement lives here with ``{p}`` for the driver's
placeholder (``?`` for sqlite3, ``%s`` for psycopg) and ``{greatest}`` for its two-argument
maximum (``MAX`` / ``GREATEST``); each store formats them once at
import, as ``SQL = Statements("?", "MAX")``. Upserts use ``ON CONFLICT``, which both speak.
What only one dialect can say stays in its store: SQLite's read-decay-write of the
statistics and per-row node writes, PostgreSQL's one-statement upsert of the statistics,
``unnest`` batch writes, ``FOR UPDATE`` and ``SKIP LOCKED``.
"""

from __future__ import annotations

from ._rows import ATTEMPT_COLS, BATCH_COLS, NODE_COLS, RUN_COLS


class Statements:
    """The shared statements, formatted for one driver. Each attribute is one statement;
    its parameters are listed in order after it."""

    # --- tier statistics
    stats_of = (
        "SELECT tier, successes, failures, observations, total_cost, total_latency_s "
        "FROM tier_stats WHERE task_key = {p}"
    )
    """(task_key)"""
    all_stats = (
        "SELECT task_key, tier, successes, failures, observations, total_cost, "
        "total_latency_s FROM tier_stats ORDER BY task_key, tier"
    )
    record_evidence = (
        "INSERT INTO recorded_evidence VALUES ({p}, {p}, {p}) ON CONFLICT DO NOTHING RETURNING 1"
    )
    """(task_key, tier, evidence_id): marks an evidence id as recorded; returns no row when
    it was already (a row count would not do: PostgreSQL's pipeline has none until it
    syncs, and fetching the row syncs it)."""

    # --- runs
    run = "SELECT " + RUN_COLS + " FROM runs WHERE run_id = {p}"
    """(run_id)"""
    run_exists = "SELECT 1 FROM runs WHERE run_id = {p}"
    """(run_id)"""
    run_holder = "SELECT status, pid, host, owner_token FROM runs WHERE run_id = {p}"
    """(run_id): what :func:`~dagtier.store._rows.row_holder` reads."""
    claim_run = (
        "UPDATE runs SET status = 'running', finished_at = NULL, pid = {p}, host = {p}, "
        "owner_token = {p} WHERE run_id = {p}"
    )
    """(pid, host, owner_token, run_id)"""
    finish_run = (
        "UPDATE runs SET status = {p}, finished_at = {p}, cost = {greatest}(cost, {p}) "
        "WHERE run_id = {p}"
    )
    """(status, finished_at, cost, run_id): the row's cost counts every committed node,
    reruns included, so it is never lowered."""
    latest_runs = "SELECT " + RUN_COLS + " FROM runs ORDER BY started_at DESC LIMIT {p}"
    """(limit)"""
    run_nodes = "SELECT " + NODE_COLS + " FROM nodes WHERE run_id = {p}"
    """(run_id)"""
    run_attempts = (
        "SELECT " + ATTEMPT_COLS + " FROM attempts WHERE run_id = {p} ORDER BY node_id, idx"
    )
    """(run_id)"""
    node_counts = "SELECT status, COUNT(*) FROM nodes WHERE run_id = {p} GROUP BY status"
    """(run_id)"""

    # --- result cache
    cache_get = (
        "SELECT run_id, node_id, output, text, tier, model, cost, created_at FROM cache "
        "WHERE key = {p} AND created_at >= {p}"
    )
    """(key, oldest created_at)"""
    cache_put = (
        "INSERT INTO cache VALUES ({p},{p},{p},{p},{p},{p},{p},{p},{p}) ON CONFLICT (key) DO "
        "UPDATE SET created_at = excluded.created_at, run_id = excluded.run_id, "
        "node_id = excluded.node_id, output = excluded.output, text = excluded.text, "
        "tier = excluded.tier, model = excluded.model, cost = excluded.cost"
    )
    """(key, created_at, run_id, node_id, output, text, tier, model, cost)"""

    # --- batches
    batch = "SELECT " + BATCH_COLS + " FROM batches WHERE batch_id = {p}"
    """(batch_id)"""
    new_batch = (
        "INSERT INTO batches (" + BATCH_COLS + ") VALUES "
        "({p},{p},{p},{p},{p},{p},{p},{p},{p},{p},{p},{p})"
    )
    """:func:`~dagtier.store._rows.new_batch_row`"""
    take_over_batch = (
        "UPDATE batches SET status = 'running', finished_at = NULL, pid = {p}, host = {p}, "
        "budget = {p}, source = {p} WHERE batch_id = {p}"
    )
    """(pid, host, budget, source, batch_id)"""
    finish_batch = "UPDATE batches SET status = {p}, finished_at = {p} WHERE batch_id = {p}"
    """(status, finished_at, batch_id)"""
    latest_batches = "SELECT " + BATCH_COLS + " FROM batches ORDER BY started_at DESC LIMIT {p}"
    """(limit)"""
    batch_items = (
        "SELECT b.idx, b.line, b.run_id, b.status, b.error, r.status, r.cost, r.finished_at, "
        "r.pid, r.host FROM batch_items b LEFT JOIN runs r ON r.run_id = b.run_id "
        "WHERE b.batch_id = {p} ORDER BY b.idx"
    )
    """(batch_id): the items with their runs' status and cost, read by
    :func:`~dagtier.store._rows.batch_item`."""
    record_item = (
        "INSERT INTO batch_items (batch_id, idx, line, run_id, status, error) "
        "VALUES ({p},{p},{p},{p},{p},{p}) ON CONFLICT (batch_id, idx) DO UPDATE SET "
        "line = excluded.line, run_id = excluded.run_id, status = excluded.status, "
        "error = excluded.error, inputs = NULL, owner = NULL, lease_until = NULL"
    )
    """(batch_id, idx, line, run_id, status, error): the item as a run of this process."""

    # --- the work queue of batches on Ray
    enqueue_item = (
        "INSERT INTO batch_items (batch_id, idx, line, run_id, status, error, inputs) "
        "VALUES ({p},{p},{p},{p},{p},{p},{p}) ON CONFLICT (batch_id, idx) DO NOTHING"
    )
    """:func:`~dagtier.store._rows.queued_rows`: an item already queued stays as it is."""
    renew_items = (
        "UPDATE batch_items SET lease_until = {p} WHERE batch_id = {p} AND owner = {p} "
        "AND status IS NULL"
    )
    """(lease_until, batch_id, owner)"""
    finish_item = (
        "UPDATE batch_items SET status = 'done', owner = NULL, lease_until = NULL "
        "WHERE batch_id = {p} AND idx = {p}"
    )
    """(batch_id, idx)"""
    release_item = (
        "UPDATE batch_items SET owner = NULL, lease_until = NULL WHERE batch_id = {p} AND idx = {p}"
    )
    """(batch_id, idx)"""
    items_left = "SELECT COUNT(*) FROM batch_items WHERE batch_id = {p} AND status IS NULL"
    """(batch_id)"""

    # --- budget ledger (see :mod:`._ledger`)
    budget_open = (
        "INSERT INTO budgets (budget_id, budget_limit, spent, reserved) VALUES ({p},{p},{p},0) "
        "ON CONFLICT (budget_id) DO UPDATE SET budget_limit = excluded.budget_limit, "
        "spent = {greatest}(budgets.spent, excluded.spent)"
    )
    """(budget_id, limit, spent): opens a budget or raises its limit; never lowers its spend."""
    budget_grant = (
        "UPDATE budgets SET reserved = reserved + {p} WHERE budget_id = {p} "
        "AND spent + reserved + {p} <= budget_limit RETURNING 1"
    )
    """(amount, budget_id, amount): reserves ``amount`` only if it still fits; a row when it did."""
    budget_hold = (
        "INSERT INTO budget_holds (hold_id, budget_id, holder, amount, lease_until) "
        "VALUES ({p},{p},{p},{p},{p})"
    )
    """(hold_id, budget_id, holder, amount, lease_until)"""
    budget_release = "DELETE FROM budget_holds WHERE hold_id = {p} RETURNING budget_id, amount"
    """(hold_id): deletes a hold; no row when it was already reclaimed."""
    budget_settle = (
        "UPDATE budgets SET reserved = reserved - {p}, spent = spent + {p} WHERE budget_id = {p}"
    )
    """(reserved amount, actual cost, budget_id)"""
    budget_expired = (
        "DELETE FROM budget_holds WHERE budget_id = {p} AND lease_until < {p} RETURNING amount"
    )
    """(budget_id, now): deletes the holds whose lease ran out."""
    budget_reclaim = (
        "UPDATE budgets SET reserved = reserved - {p}, spent = spent + {p} WHERE budget_id = {p} "
        "RETURNING budget_limit, spent, reserved"
    )
    """(gone, gone, budget_id): counts expired holds as spent in full."""
    budget_renew = (
        "UPDATE budget_holds SET lease_until = {p} WHERE budget_id = {p} AND holder = {p}"
    )
    """(lease_until, budget_id, holder)"""

    def __init__(self, p: str, greatest: str) -> None:
        for name, sql in vars(Statements).items():
            if not name.startswith("_") and isinstance(sql, str):
                setattr(self, name, sql.format(p=p, greatest=greatest))


__all__ = ["Statements"]
