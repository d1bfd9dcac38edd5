"""A budget's ledger in the store, shared by the SQLite and PostgreSQL stores: what processes
sharing one budget (a batch's Ray actors) have spent and hold for calls in flight.

One row per budget (limit, spent, reserved) and one row per reservation (a *hold*). A grant
is one conditional ``UPDATE``: the row's lock (PostgreSQL) or the write lock (SQLite's
``BEGIN IMMEDIATE``) makes check and update atomic, so processes reserving together never
pass the limit. Each hold carries its holder's lease: a process that dies with calls in
flight stops renewing it, and once it ran out the hold is *reclaimed*, counted as spent at
its full reservation, because the provider may have billed the call. Settling deletes the
hold and moves the real cost from ``reserved`` to ``spent``; a hold already reclaimed is
not settled again (its worst case already counts).

Its statements are with the other shared ones, in :class:`._sql.Statements` (``budget_*``).
"""

from __future__ import annotations

DDL = """
CREATE TABLE budgets (
    budget_id TEXT PRIMARY KEY,
    budget_limit DOUBLE PRECISION NOT NULL,
    spent DOUBLE PRECISION NOT NULL DEFAULT 0,
    reserved DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE TABLE budget_holds (
    hold_id TEXT PRIMARY KEY,
    budget_id TEXT NOT NULL,
    holder TEXT NOT NULL,
    amount DOUBLE PRECISION NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL
);
CREATE INDEX budget_holds_holder ON budget_holds (budget_id, holder);
"""
"""Both stores' migration (SQLite reads DOUBLE PRECISION as REAL)."""

__all__ = ["DDL"]
