"""Group commit, shared by the SQLite and PostgreSQL stores.

Writes queue into an open batch; one caller (the leader) commits the batch as one
transaction while later writes gather in the next batch. Every caller still returns only
once the transaction holding its write committed, so "a node's result is durable before its
dependents start" holds, while a burst of nodes finishing together costs one commit (and
one thread hop or network round trip) instead of one each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

import anyio

OpT = TypeVar("OpT")


class _Batch(Generic[OpT]):
    __slots__ = ("done", "error", "ops")

    def __init__(self) -> None:
        self.ops: list[OpT] = []
        self.done: anyio.Event | None = None
        self.error: Exception | None = None


class GroupCommit(Generic[OpT]):
    """Commits queued operations in batches, one transaction per batch.

    Args:
        commit: runs a batch's operations in one transaction; raises to roll it all back.
        failed: turns what ``commit`` raised into what every waiter of the batch raises (a
            StoreError for a database failure; anything else, a bug, may pass through).
    """

    def __init__(
        self,
        commit: Callable[[list[OpT]], Awaitable[None]],
        failed: Callable[[Exception], Exception],
    ) -> None:
        self._commit = commit
        self._failed = failed
        self._open: _Batch[OpT] | None = None
        self._flushing = False

    @property
    def idle(self) -> bool:
        """No batch waits to be committed and none is being committed."""
        return self._open is None and not self._flushing

    async def submit(self, ops: Iterable[OpT]) -> None:
        """Queue ``ops`` into the open batch; return once the batch has committed.

        Raises:
            StoreError: the transaction failed (none of the batch's writes were applied).
        """
        batch = self._open
        if batch is None:
            batch = self._open = _Batch()
        batch.ops.extend(ops)
        if self._flushing:
            if batch.done is None:
                batch.done = anyio.Event()
            await batch.done.wait()
        else:
            # Leader: commit batches until none is open. Shielded: a write that reached the
            # database completes anyway, so its waiters must learn how it ended.
            with anyio.CancelScope(shield=True):
                await self._drain()
        if batch.error is not None:
            raise batch.error

    async def _drain(self) -> None:
        self._flushing = True
        try:
            while self._open is not None:
                batch, self._open = self._open, None
                try:
                    await self._commit(batch.ops)
                except Exception as exc:
                    batch.error = self._failed(exc)
                if batch.done is not None:
                    batch.done.set()
        finally:
            self._flushing = False
