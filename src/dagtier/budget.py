"""Budgets: a promise, not an estimate.

Before each provider call the gateway reserves the call's worst case (estimated input
tokens, prompt characters / 4, plus the whole ``max_tokens``, at the model's prices) and
settles it to the actual cost afterwards. A reservation that does not fit is refused with
:class:`~dagtier.BudgetExhausted` and the call is not made, so calls in flight together can
never overshoot (check-then-spend can: litellm #34732). Escalations and judge calls go through
the same gateway and count like any call.

A reservation that does not fit *yet*, because calls in flight hold worst cases that will
mostly come back, waits for them to settle instead of stopping the run: only a call that
cannot fit even when nothing is in flight exhausts the budget (at concurrency 32, treating
the reservations in flight as spent stopped runs at a third of their budget).

:class:`Budget` is atomic within one event loop: :meth:`~Budget.try_reserve` and
:meth:`~Budget.settle` are plain functions with no ``await`` between the check and the
update. A per-node cap applies to the node that makes the call, named by the caller (the
gateway passes the node id of the call's :class:`~dagtier.providers.CallContext`). One
Budget belongs to one run; runs sharing a gateway each hand down their own.

The guarantee rests on the estimate being an upper bound: the output never exceeds
``max_tokens``, while the input estimate of 4 characters a token can be low for unusual
text, in which case the settled cost is what the provider billed.

A run budget may draw on a ``parent`` shared by many runs (a batch's budget): each call
reserves from both, so the runs of a batch together never pass the batch's limit, and a run
stopped by its parent ends ``budget_exhausted`` like one stopped by its own limit.

A parent shared by *processes* (a batch on Ray actors) is a :class:`StoreBudget`: its
reservations live in the store (:class:`~dagtier.store.BudgetLedger`), each one a
conditional update that is atomic against every other process, so actors together never
pass the limit either. That costs a store round trip to reserve and one to settle each
call, small next to a model call. Its holds carry the actor's lease: an actor killed with
calls in flight leaves holds that count as spent at their full amount once the lease ran
out (the provider may have billed them), never as money that came back.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Mapping
from typing import Any

import anyio

from ._exceptions import BudgetExhausted, NodeBudgetExceeded


class _MustWait(Exception):
    """The amount fits once calls in flight settle: wait on ``budget``, then try again."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget


def _exhausted(
    scope: str,
    limit: float,
    spent: float,
    reserved: float,
    where: str,
    amount: float,
    node: str | None,
    run_id: str | None,
) -> BudgetExhausted:
    return BudgetExhausted(
        f"{scope} budget ${limit:.6f} exhausted: ${spent:.6f} spent, ${reserved:.6f} held by "
        f"calls in flight{where}; the next call{f' (node {node!r})' if node else ''} may cost "
        f"up to ${amount:.6f}",
        run_id=run_id,
        node_id=node,
    )


class Reservation:
    __slots__ = ("amount", "node", "parent", "settled")

    def __init__(
        self, node: str | None, amount: float, parent: Reservation | _Hold | None = None
    ) -> None:
        self.node = node
        self.amount = amount
        self.parent = parent
        self.settled = False


class Budget:
    """A run budget and optional per-node caps, in USD.

    Implements the gateway's budget hook (``reserve(amount, node_id) -> token``,
    ``settle(token, actual)``).

    Args:
        limit: the run's budget; None: no run limit (node caps may still apply).
        spent: already spent (a resumed run starts from what its committed nodes cost).
        node_caps: per-node caps by node id; a node's cap counts this run's calls for it.
        run_id: named in messages.
        parent: a budget shared with other runs (a batch's) that every call also reserves
            from; None: this budget alone.
        scope: what the limit belongs to, in messages (``run``, ``batch``).
    """

    def __init__(
        self,
        limit: float | None,
        *,
        spent: float = 0.0,
        node_caps: Mapping[str, float] | None = None,
        run_id: str | None = None,
        parent: Budget | StoreBudget | None = None,
        scope: str = "run",
    ) -> None:
        self.limit = limit
        self.parent = parent
        self.scope = scope
        self.spent = spent
        self.reserved = 0.0
        self.node_caps = dict(node_caps or {})
        self.node_spent: dict[str, float] = {}
        self.node_reserved: dict[str, float] = {}
        self.run_id = run_id
        self.exhausted: BudgetExhausted | None = None
        """The first refusal of the run budget (the run's reason to stop)."""
        self._settled: anyio.Event | None = None
        """Set at the next settle (then replaced): what a waiting reservation waits for."""

    @property
    def remaining(self) -> float | None:
        return None if self.limit is None else self.limit - self.spent - self.reserved

    async def reserve(self, amount: float, node_id: str | None = None) -> Reservation:
        """Hold ``amount`` for one call of node ``node_id`` (None: no cap applies), waiting
        while it fits only once calls in flight settle; or refuse.

        Cancellation: a cancelled wait holds nothing.

        Raises:
            BudgetExhausted: the run budget (or its parent's) cannot cover ``amount`` even
                with nothing in flight.
            NodeBudgetExceeded: the calling node's cap cannot cover it.
            StoreError: a :class:`StoreBudget` parent's store failed.
        """
        while True:
            try:
                token = self.try_reserve(amount, node_id)
            except _MustWait as wait:
                await wait.budget._next_settle().wait()
                continue
            if isinstance(self.parent, StoreBudget):
                try:
                    token.parent = await self.parent.reserve(amount)
                except BaseException as exc:
                    self._undo(token)  # refused, failed or cancelled: this run holds nothing
                    if isinstance(exc, BudgetExhausted) and self.exhausted is None:
                        self.exhausted = exc
                    raise
            return token

    def _next_settle(self) -> anyio.Event:
        if self._settled is None:
            self._settled = anyio.Event()
        return self._settled

    def try_reserve(self, amount: float, node_id: str | None = None) -> Reservation:
        """:meth:`reserve` without waiting: raises ``_MustWait`` where it would wait."""
        node = node_id
        if self.limit is not None and self.spent + self.reserved + amount > self.limit:
            if self.reserved > 0 and self.spent + amount <= self.limit:
                raise _MustWait(self)  # the worst cases in flight are not spent yet
            exc = _exhausted(
                self.scope, self.limit, self.spent, self.reserved, "", amount, node, self.run_id
            )
            if self.exhausted is None:
                self.exhausted = exc
            raise exc
        if node is not None:
            cap = self.node_caps.get(node)
            if cap is not None:
                held = self.node_reserved.get(node, 0.0)
                used = self.node_spent.get(node, 0.0) + held
                if used + amount > cap and held > 0 and used - held + amount <= cap:
                    raise _MustWait(self)
                if used + amount > cap:
                    raise NodeBudgetExceeded(
                        f"node {node!r} reached its budget cap ${cap:.6f}: ${used:.6f} "
                        f"used, the next call may cost up to ${amount:.6f}",
                        run_id=self.run_id,
                        node_id=node,
                    )
        parent = None
        if isinstance(self.parent, Budget):
            try:
                parent = self.parent.try_reserve(amount)
            except BudgetExhausted as exc:
                if self.exhausted is None:  # the run's reason to stop, as for its own limit
                    self.exhausted = exc
                raise
        if node is not None:
            self.node_reserved[node] = self.node_reserved.get(node, 0.0) + amount
        self.reserved += amount
        return Reservation(node, amount, parent)

    def settle(self, token: Reservation, actual: float) -> Awaitable[None] | None:
        """Replace a reservation by what the call actually cost (once per reservation).

        Returns:
            With a :class:`StoreBudget` parent, the store's settle to await; else None.
        """
        if token.settled:
            return None
        token.settled = True
        shared = None
        if isinstance(token.parent, Reservation) and isinstance(self.parent, Budget):
            self.parent.settle(token.parent, actual)
        elif isinstance(token.parent, _Hold) and isinstance(self.parent, StoreBudget):
            shared = self.parent.settle(token.parent, actual)
        self._undo(token, actual)
        return shared

    def _undo(self, token: Reservation, spent: float = 0.0) -> None:
        """Release ``token``'s local hold, counting ``spent`` as spent."""
        self.reserved -= token.amount
        self.spent += spent
        if token.node is not None:
            self.node_reserved[token.node] -= token.amount
            self.node_spent[token.node] = self.node_spent.get(token.node, 0.0) + spent
        if self._settled is not None:  # wake the reservations waiting for money to come back
            self._settled.set()
            self._settled = None


class _Hold:
    __slots__ = ("amount", "hold_id")

    def __init__(self, hold_id: str, amount: float) -> None:
        self.hold_id = hold_id
        self.amount = amount


_IN_FLIGHT_EPSILON = 1e-9
"""Held amounts below this are rounding left by additions and subtractions, not calls."""


class StoreBudget:
    """A budget shared by processes: its spending and reservations live in the store.

    A parent for run budgets (``Budget(..., parent=StoreBudget(...))``). Each reservation
    is one atomic conditional update of the store's ledger, so processes reserving at once
    never pass ``limit`` together. A reservation that fits only once calls in flight (in
    any process) settle waits for them, looking again at the store at each settle in this
    process and at least every ``poll_s``; one that cannot fit even with nothing in flight
    raises :class:`~dagtier.BudgetExhausted`.

    Args:
        ledger: a store implementing :class:`~dagtier.store.BudgetLedger`, holding a ledger
            opened with ``open_budget(budget_id, limit)``.
        budget_id: the ledger's id (a batch's id).
        holder: this process, as the owner of its holds (renewed by :meth:`renew`).
        lease_s: how long a hold lasts unrenewed; a dead holder's holds count as spent
            after that.
        scope: what the budget belongs to, in messages.
        poll_s: the longest wait between two looks at the store while waiting.
    """

    def __init__(
        self,
        ledger: Any,
        budget_id: str,
        *,
        holder: str,
        lease_s: float = 30.0,
        scope: str = "batch",
        poll_s: float = 0.5,
    ) -> None:
        self.ledger = ledger
        self.budget_id = budget_id
        self.holder = holder
        self.lease_s = lease_s
        self.scope = scope
        self.poll_s = poll_s
        self.exhausted: BudgetExhausted | None = None
        """The first refusal (what stops the process's runs)."""
        self._settled: anyio.Event | None = None
        self.holds = 0
        """Holds of this process in flight."""

    async def reserve(self, amount: float, node_id: str | None = None) -> _Hold:
        """Hold ``amount`` in the store, waiting while it fits only once calls in flight
        settle.

        Raises:
            BudgetExhausted: it cannot fit even with nothing in flight.
            StoreError: the store failed.
        """
        hold = _Hold(uuid.uuid4().hex, amount)
        wait = self.poll_s / 8
        while True:
            if await self.ledger.reserve_budget(
                self.budget_id, hold.hold_id, self.holder, amount, self.lease_s
            ):
                self.holds += 1
                return hold
            # refused: count dead processes' expired holds as spent, then look again
            state = await self.ledger.reclaim_budget(self.budget_id)
            if state is None:
                raise RuntimeError(f"no budget ledger {self.budget_id!r} in {self.ledger!r}")
            if state.spent + state.reserved + amount <= state.limit:
                continue  # a reclaim or a settle made room
            if state.reserved <= _IN_FLIGHT_EPSILON or state.spent + amount > state.limit:
                held = max(state.reserved, 0.0)
                exc = _exhausted(
                    self.scope,
                    state.limit,
                    state.spent,
                    held,
                    " in every process",
                    amount,
                    node_id,
                    self.budget_id,
                )
                if self.exhausted is None:
                    self.exhausted = exc
                raise exc
            # the worst cases in flight are not spent yet: wait for a settle here, or poll
            with anyio.move_on_after(wait):
                await self._next_settle().wait()
            wait = min(wait * 2, self.poll_s)

    def _next_settle(self) -> anyio.Event:
        if self._settled is None:
            self._settled = anyio.Event()
        return self._settled

    async def settle(self, hold: _Hold, actual: float) -> None:
        """Replace ``hold`` by what the call cost, in the store."""
        try:
            await self.ledger.settle_budget(hold.hold_id, actual)
        finally:
            self.holds -= 1
            if self._settled is not None:
                self._settled.set()
                self._settled = None

    async def renew(self) -> None:
        """Extend this process's holds by ``lease_s`` (call more often than ``lease_s``)."""
        if self.holds:
            await self.ledger.renew_budget(self.budget_id, self.holder, self.lease_s)


__all__ = ["Budget", "Reservation", "StoreBudget"]
