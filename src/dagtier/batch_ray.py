"""Scale-out on Ray (``dagtier batch ... --ray [ADDRESS]``, ``pip install 'dagtier[ray]'``).

The batch's items go into the store as a work queue (:class:`~dagtier.store.BatchQueue`);
a pool of Ray async actors, each hosting dagtier's own executor with many runs in flight,
claims them. The store is the only state: the driver queues the items, starts the actors
and waits, so killing the driver loses nothing (``--resume BATCH_ID`` queues nothing twice
and the actors carry on from the store).

A claim is a lease, renewed by the actor while it works. When an actor's process dies, its
leases run out and the other actors claim its items; each such item's run resumes node by
node from what the store committed, so no committed node is paid for twice. In the SQLite
store a claim is one ``BEGIN IMMEDIATE`` transaction (one machine); in a PostgreSQL store
it is ``FOR UPDATE SKIP LOCKED``.

Rate limits hold across actors by partition: each of ``n`` actors gets ``1/n`` of every
model's requests/minute, tokens/minute and concurrency. That costs no round trip per call
(a central limiter actor would add one to every model call) and can never overshoot; its
price, a share left idle by an idle actor, does not arise here because all actors pull
from one queue until it is empty, so they stay equally busy.

A ``--budget`` is shared by the actors through the store (:class:`~dagtier.budget.
StoreBudget`): every call reserves its worst case in the store's ledger with one atomic
conditional update, so actors reserving at once never pass the budget together; an actor
killed with calls in flight leaves holds that count as spent once its lease ran out. When
the budget cannot cover the next call, the actors stop claiming items; the items not run
stay queued, and ``--resume BATCH_ID`` with a larger ``--budget`` finishes the batch.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ._exceptions import DagtierUsageError, RunError, SpecError
from ._logging import get_logger, redact_text
from .batch import (
    FINISHED,
    BatchSummary,
    ItemResult,
    _load_for_resume,
    bad_items_error,
    item_run_id,
    new_batch_id,
    scan_items,
    stored_item_result,
)
from .budget import StoreBudget
from .catalog import Catalog, load_catalog
from .executor import coerce_inputs
from .executor import run as run_workflow
from .plan import compile_workflow
from .providers.base import Provider
from .providers.gateway import Gateway
from .providers.registry import ProviderRegistry
from .spec import load_workflow
from .store import BatchQueue, BatchRecord, BudgetLedger, QueuedItem, open_store

DEFAULT_LEASE_S = 30.0
MAX_CLAIM = 8
"""Most items an actor claims in one store round trip."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What an actor needs to run a batch's items: names, not objects, so it pickles."""

    batch_id: str
    workflow: str
    """The workflow file."""
    store: str
    models: str | None
    actors: int
    """How many actors share the rate limits."""
    concurrency: int
    """Runs in flight per actor."""
    lease_s: float = DEFAULT_LEASE_S
    cache_ttl_s: float | None = None
    providers: Callable[[], Mapping[str, Provider]] | None = None
    """Makes provider objects by name in each actor (e.g. a ``PythonProvider``): Ray
    pickles the function, not the providers, which hold connections."""
    budget: bool = False
    """Whether calls reserve from the batch's budget ledger in the store (``batch_id``)."""


def share_limits(catalog: Catalog, shares: int) -> Catalog:
    """The catalog with every model's limits divided among ``shares`` processes."""
    if shares <= 1:
        return catalog
    models = {}
    for name, m in catalog.models.items():
        models[name] = m.model_copy(
            update={
                "requests_per_minute": m.requests_per_minute / shares
                if m.requests_per_minute
                else None,
                "tokens_per_minute": m.tokens_per_minute / shares if m.tokens_per_minute else None,
                "max_concurrency": math.ceil(m.max_concurrency / shares)
                if m.max_concurrency
                else None,
            }
        )
    return Catalog(
        models,
        {t: list(names) for t, names in catalog.tiers.items()},
        local_fallback=catalog.local_fallback,
        prices_checked=catalog.prices_checked,
        source=catalog.source,
    )


@dataclass(frozen=True, slots=True)
class Drained:
    """What one worker did."""

    ran: int
    """Items whose run this worker ran (to any end)."""
    exhausted: str | None = None
    """Why the batch's budget stopped this worker (None: it ran out of items)."""


async def drain(config: WorkerConfig, owner: str | None = None) -> Drained:
    """Claim and run the batch's items until none is left or the batch's budget cannot
    cover the next call. What every Ray actor runs, callable without Ray too (one more
    worker).

    While items are held by a worker that died, waits for their leases to run out and
    claims them. Cancellation leaves claimed items to be claimed again after their lease.
    """
    owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    log = get_logger().bind(batch_id=config.batch_id, worker=owner)
    store: Any = open_store(config.store)
    wf = load_workflow(config.workflow)
    catalog = share_limits(load_catalog(config.models), config.actors)
    plan = compile_workflow(wf, catalog)
    registry = ProviderRegistry(config.providers() if config.providers else None)
    gateway = Gateway(catalog, registry)
    budget = (
        StoreBudget(store, config.batch_id, holder=owner, lease_s=config.lease_s)
        if config.budget
        else None
    )
    ran = 0
    held: set[int] = set()

    async def heartbeat() -> None:
        while True:
            await anyio.sleep(config.lease_s / 3)
            if held:
                await store.renew_items(config.batch_id, owner, config.lease_s)
            if budget is not None:
                await budget.renew()

    async def one(item: QueuedItem) -> None:
        nonlocal ran
        rid = item.run_id or item_run_id(config.batch_id, item.index)
        try:
            values = coerce_inputs(wf, item.inputs)
        except SpecError as exc:
            error = "; ".join(i.message for i in exc.issues)
            await store.record_batch_item(
                config.batch_id, item.index, item.line, None, status="invalid", error=error
            )
            return
        loaded = await store.load_run(rid) if item.begun else None
        if loaded is None or loaded[0].status not in FINISHED:
            try:
                result = await run_workflow(
                    plan,
                    values,
                    gateway=gateway,
                    store=store,
                    run_id=rid,
                    resume=rid if loaded is not None else None,
                    shared_budget=budget,
                    cache_ttl_s=config.cache_ttl_s,
                )
            except RunError as exc:
                # another worker still runs it (our lease took over a live one's): theirs
                log.info("item not run", index=item.index, reason=redact_text(str(exc)))
                return
            ran += 1
            if result.status == "budget_exhausted":
                # unfinished: queued again for a --resume with a larger budget
                await store.release_item(config.batch_id, item.index)
                return
        await store.finish_item(config.batch_id, item.index)

    pending: deque[QueuedItem] = deque()
    claiming = anyio.Lock()
    per_claim = max(1, min(config.concurrency // 4, MAX_CLAIM))

    async def next_item() -> QueuedItem | None:
        """The next item to run: claimed several at a time, one store round trip for
        ``per_claim`` items (a few more left idle at the end of the batch than claiming
        one by one, where actors would otherwise queue for every claim)."""
        while budget is None or budget.exhausted is None:
            if pending:
                return pending.popleft()
            async with claiming:
                if pending:
                    continue
                claimed = await store.claim_items(config.batch_id, owner, per_claim, config.lease_s)
                if claimed:
                    held.update(i.index for i in claimed)
                    pending.extend(claimed)
                    continue
                if await store.items_left(config.batch_id) == 0:
                    return None
                # items held by another worker, alive or not: a dead one's lease runs out
                await anyio.sleep(min(1.0, config.lease_s / 4))
        return None

    async def worker() -> None:
        while (item := await next_item()) is not None:
            try:
                await one(item)
            finally:
                held.discard(item.index)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            async with anyio.create_task_group() as workers:
                for _ in range(config.concurrency):
                    workers.start_soon(worker)
            for item in pending:  # claimed, never started (the budget ran out): for others
                await store.release_item(config.batch_id, item.index)
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await gateway.aclose()
            finally:
                await store.aclose()
    exhausted = None if budget is None or budget.exhausted is None else str(budget.exhausted)
    return Drained(ran, exhausted)


def _check_queue(store: object, budget: float | None) -> None:
    if not isinstance(store, BatchQueue):  # a store type of its own may lack one
        raise DagtierUsageError(f"--ray needs a store with a work queue, got {store!r}")
    if budget is not None and not isinstance(store, BudgetLedger):
        raise DagtierUsageError(f"--budget with --ray needs a store that keeps budgets: {store!r}")


def _config(
    batch_id: str,
    workflow: str | Path,
    store: str | Path,
    models: str | Path | None,
    actors: int,
    concurrency: int,
    lease_s: float,
    cache_ttl_s: float | None,
    providers: Callable[[], Mapping[str, Provider]] | None,
    budget: bool,
) -> WorkerConfig:
    """Absolute paths: the actors' working directory is Ray's, not ours."""
    return WorkerConfig(
        batch_id,
        os.path.abspath(workflow),
        os.path.abspath(store) if "://" not in str(store) else str(store),
        os.path.abspath(models) if models is not None else None,
        actors,
        concurrency,
        lease_s,
        cache_ttl_s,
        providers,
        budget,
    )


def _actor_class() -> Any:
    try:
        import ray
    except ImportError:
        raise DagtierUsageError("--ray needs Ray: pip install 'dagtier[ray]'") from None

    @ray.remote
    class BatchActor:
        """One process of the pool: dagtier's executor with many runs in flight."""

        async def drain(self, config: WorkerConfig) -> Drained:
            return await drain(config)

    return BatchActor


async def run_batch_on_ray(
    workflow: str | Path,
    items: str | Path,
    *,
    store: str | Path,
    models: str | Path | None = None,
    address: str | None = None,
    actors: int = 2,
    concurrency: int = 16,
    budget: float | None = None,
    on_bad_item: str = "stop",
    resume: str | None = None,
    batch_id: str | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    cache_ttl_s: float | None = None,
    on_result: Callable[[ItemResult], Any] | None = None,
    providers: Callable[[], Mapping[str, Provider]] | None = None,
    ray_init: dict[str, Any] | None = None,
) -> BatchSummary:
    """Run a batch on ``actors`` Ray actors (see the module docstring).

    Args:
        workflow, models: files every actor loads.
        items: a ``.jsonl`` or ``.csv`` file, read by the driver and queued in the store.
        store: a store every actor can open (a SQLite path on one machine, or a
            ``postgresql://`` URL for actors on several machines).
        address: a running Ray cluster (``ray.init(address=...)``); None starts a local one.
        actors: processes in the pool; concurrency: runs in flight in each.
        budget: USD for the whole batch, shared by the actors through the store: no call
            starts that could take the batch past it; when it cannot cover the next call
            the batch ends ``budget_exhausted`` with the items not run still queued.
        lease_s: how long a claim holds without renewal (how soon a dead actor's items are
            claimed again).
        on_result: called with each item's result, read from the store at the end.
        providers: called in each actor to make provider objects by name.
        ray_init: more keyword arguments for ``ray.init``.

    Raises:
        SpecError, RunError: as :func:`dagtier.run_batch`.
        DagtierUsageError: Ray is not installed, or the store keeps no work queue.
    """
    actor_cls = _actor_class()
    import ray

    wf = load_workflow(workflow)
    source = scan_items(items)
    if source.bad and on_bad_item == "stop":
        raise bad_items_error(source.path, source.bad)
    st: Any = open_store(store)
    try:
        _check_queue(st, budget)
        bid = resume or batch_id or new_batch_id()
        spent = 0.0
        if resume is not None:
            _, spent = await _load_for_resume(st, resume, wf, source)
        record = await st.claim_batch(
            BatchRecord(
                bid,
                wf.name,
                "running",
                time.time(),
                source.path,
                source.fingerprint,
                source.total,
                source=wf.source,
                budget=budget,
            )
        )
        if record is None:
            raise RunError(f"batch '{bid}' is running in another live process")
        await st.enqueue_items(
            bid,
            [
                QueuedItem(it.index, it.line, item_run_id(bid, it.index), it.values, it.error)
                for it in source.items()
            ],
        )
        if budget is not None:
            # a resume's items already cost ``spent``; the ledger may know of more (calls
            # paid by actors that died before committing them)
            await st.open_budget(bid, budget, spent=spent)
        started = time.monotonic()
        status = "cancelled"
        exhausted: str | None = None
        try:
            if not ray.is_initialized():
                ray.init(address=address, logging_level=logging.ERROR, **(ray_init or {}))
            config = _config(
                bid,
                workflow,
                store,
                models,
                actors,
                concurrency,
                lease_s,
                cache_ttl_s,
                providers,
                budget is not None,
            )
            pool = [actor_cls.remote() for _ in range(actors)]
            refs = [a.drain.remote(config) for a in pool]
            for ref in refs:
                try:
                    drained: Drained = await ref
                except ray.exceptions.RayActorError:
                    # its items go to the others once their leases run out
                    get_logger().warning("a Ray actor died; its items will be claimed again")
                    continue
                exhausted = exhausted or drained.exhausted
            if exhausted is not None:
                status = "budget_exhausted"  # the items not run stay queued for --resume
            elif await st.items_left(bid):
                # every actor died: the items stay queued for --resume
                raise RunError(f"every actor of batch '{bid}' died before the batch finished")
            else:
                status = "finished"
        finally:
            with anyio.CancelScope(shield=True):
                await st.finish_batch(bid, status)
        summary = BatchSummary(bid, wf.name, status, source.total, error=exhausted)
        plan = compile_workflow(wf, load_catalog(models))
        loaded = await st.load_batch(bid)
        assert loaded is not None
        for it in loaded[1]:
            result = None
            if it.run_id is not None and it.status != "invalid":
                result = await stored_item_result(st, plan, it.index, it.line, it.run_id)
            if result is None:
                if it.status != "invalid":
                    continue  # never run (the budget ran out first)
                result = ItemResult(it.index, it.line, None, "invalid", error=it.error)
            result.resumed = False
            summary.add(result)
            if on_result is not None:
                on_result(result)
        summary.elapsed_s = time.monotonic() - started
        return summary
    finally:
        await st.aclose()


__all__ = ["Drained", "WorkerConfig", "drain", "run_batch_on_ray", "share_limits"]
