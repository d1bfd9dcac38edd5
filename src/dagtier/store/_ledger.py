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

``{p}`` is the driver's placeholder; ``{greatest}`` its two-argument maximum.
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

OPEN = (
    "INSERT INTO budgets (budget_id, budget_limit, spent, reserved) VALUES ({p},{p},{p},0) "
    "ON CONFLICT (budget_id) DO UPDATE SET budget_limit = excluded.budget_limit, "
    "spent = {greatest}(budgets.spent, excluded.spent)"
)
GRANT = (
    "UPDATE budgets SET reserved = reserved + {p} WHERE budget_id = {p} "
    "AND spent + reserved + {p} <= budget_limit RETURNING 1"
)
HOLD = (
    "INSERT INTO budget_holds (hold_id, budget_id, holder, amount, lease_until) "
    "VALUES ({p},{p},{p},{p},{p})"
)
RELEASE = "DELETE FROM budget_holds WHERE hold_id = {p} RETURNING budget_id, amount"
SETTLE = "UPDATE budgets SET reserved = reserved - {p}, spent = spent + {p} WHERE budget_id = {p}"
EXPIRED = "DELETE FROM budget_holds WHERE budget_id = {p} AND lease_until < {p} RETURNING amount"
RECLAIM = (
    "UPDATE budgets SET reserved = reserved - {p}, spent = spent + {p} WHERE budget_id = {p} "
    "RETURNING budget_limit, spent, reserved"
)
RENEW = "UPDATE budget_holds SET lease_until = {p} WHERE budget_id = {p} AND holder = {p}"


def statements(p: str, greatest: str) -> dict[str, str]:
    """The ledger's statements for one driver."""
    return {
        name: sql.format(p=p, greatest=greatest)
        for name, sql in {
            "open": OPEN,
            "grant": GRANT,
            "hold": HOLD,
            "release": RELEASE,
            "settle": SETTLE,
            "expired": EXPIRED,
            "reclaim": RECLAIM,
            "renew": RENEW,
        }.items()
    }


__all__ = ["DDL", "statements"]
