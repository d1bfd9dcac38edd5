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
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from ._exceptions import BudgetExhausted, NodeBudgetExceeded


class _MustWait(Exception):
    """The amount fits once calls in flight settle: wait on ``budget``, then try again."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget


class Reservation:
    __slots__ = ("amount", "node", "parent", "settled")

    def __init__(self, node: str | None, amount: float, parent: Reservation | None = None) -> None:
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
        parent: Budget | None = None,
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
        """
        while True:
            try:
                return self.try_reserve(amount, node_id)
            except _MustWait as wait:
                await wait.budget._next_settle().wait()

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
            exc = BudgetExhausted(
                f"{self.scope} budget ${self.limit:.6f} exhausted: ${self.spent:.6f} spent, "
                f"${self.reserved:.6f} held by calls in flight; the next call"
                f"{f' (node {node!r})' if node else ''} may cost up to ${amount:.6f}",
                run_id=self.run_id,
                node_id=node,
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
        if self.parent is not None:
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

    def settle(self, token: Reservation, actual: float) -> None:
        """Replace a reservation by what the call actually cost (once per reservation)."""
        if token.settled:
            return
        token.settled = True
        if token.parent is not None and self.parent is not None:
            self.parent.settle(token.parent, actual)
        self.reserved -= token.amount
        self.spent += actual
        if token.node is not None:
            self.node_reserved[token.node] -= token.amount
            self.node_spent[token.node] = self.node_spent.get(token.node, 0.0) + actual
        if self._settled is not None:  # wake the reservations waiting for money to come back
            self._settled.set()
            self._settled = None


__all__ = ["Budget", "Reservation"]
