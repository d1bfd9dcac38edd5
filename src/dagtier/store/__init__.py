"""Where runs, node results, attempts and tier statistics are kept.

Two protocols: :class:`RunStore` (durable runs, resume, claiming a run for one owner) and
:class:`StatsStore` (per task key and tier evidence, for the adaptive policy), plus the
optional :class:`ResultCache` and :class:`BatchStore` (which run each item of a batch
became, for ``dagtier batch --resume``). :class:`MemoryStore` implements them in process;
:func:`open_store` opens a SQLite file (``dagtier.store.sqlite``) or a PostgreSQL database
(``dagtier.store.postgres``, needs ``dagtier[postgres]``), each imported on first use.
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._types import RunStatus, Tier
from ..results import NodeResult

if TYPE_CHECKING:
    from .postgres import PostgresStore
    from .sqlite import SqliteStore

ENV_STORE = "DAGTIER_STORE"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True)
class RunOwner:
    """Who runs a run: a process (``host``, ``pid``) and a token unique to this claim, so
    two claimants inside one process (batch runs, a worker hosting many runs) are told apart.

    Added in 0.2 (issue 12: two resumes of one run both ran it).
    """

    host: str
    pid: int
    token: str

    @classmethod
    def this_process(cls) -> RunOwner:
        """A new owner in this process (a fresh token each call)."""
        return cls(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:16])

    def alive(self) -> bool:
        return process_alive(self.pid, self.host)


def process_alive(pid: int | None, host: str | None) -> bool:
    """Whether the process that owns a 'running' run may still be running.

    A run recorded on another host is assumed alive: we cannot tell (take it over with
    ``claim_run(..., take_over=owner)`` once you know that owner is dead).
    """
    if pid is None or host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass(slots=True)
class TierStats:
    """Evidence for one (task key, tier). ``successes``/``failures`` are decayed weights."""

    task_key: str
    tier: Tier
    successes: float = 0.0
    failures: float = 0.0
    observations: int = 0
    """Raw count, not decayed."""
    total_cost: float = 0.0
    total_latency_s: float = 0.0

    @property
    def weight(self) -> float:
        return self.successes + self.failures

    @property
    def mean_cost(self) -> float:
        return self.total_cost / self.observations if self.observations else 0.0

    @property
    def mean_latency_s(self) -> float:
        return self.total_latency_s / self.observations if self.observations else 0.0

    @staticmethod
    def decay(weight: float, half_life: float | None) -> float:
        """What older evidence is multiplied by when an observation of ``weight`` comes in
        (a store that folds observations in SQL uses the same factor)."""
        return math.pow(0.5, weight / half_life) if half_life else 1.0

    def apply(
        self, success: bool, weight: float, cost: float, latency_s: float, half_life: float | None
    ) -> None:
        """Fold one observation in; older evidence fades by half every ``half_life`` observations."""
        if half_life:
            decay = self.decay(weight, half_life)
            self.successes *= decay
            self.failures *= decay
        if success:
            self.successes += weight
        else:
            self.failures += weight
        self.observations += 1
        self.total_cost += cost
        self.total_latency_s += latency_s


@dataclass(slots=True)
class RunRecord:
    run_id: str
    workflow: str
    status: RunStatus
    started_at: float
    finished_at: float | None = None
    fingerprint: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    cost: float = 0.0
    """Everything the run's committed nodes cost, including results later rerun."""
    source: str | None = None
    node_fingerprints: dict[str, str] = field(default_factory=dict)
    """Per node: what its result depends on (see :mod:`dagtier.fingerprint`)."""
    pid: int | None = None
    """The process running it (with ``host``: a crashed run shows as ``interrupted``)."""
    host: str | None = None
    budget: float | None = None
    owner_token: str | None = None
    """With ``pid`` and ``host``: the :class:`RunOwner` that claimed the run last."""
    deadline_s: float | None = None
    """The deadline the run (or its last resume) was given, in seconds. *Added in issue 16.*"""
    deadline_at: float | None = None
    """When (epoch seconds) that deadline fell: a resumed run's deadline counts from the
    resume, so the run's own start does not tell."""

    @property
    def owner(self) -> RunOwner | None:
        if self.pid is None or self.host is None:
            return None
        return RunOwner(self.host, self.pid, self.owner_token or "")


@dataclass(slots=True)
class CachedAnswer:
    """A successful node answer kept for reuse by the result cache."""

    run_id: str
    node_id: str
    output: Any
    text: str | None
    tier: Tier | None
    model: str | None
    cost: float
    """What the answer cost when it was made (a hit saves this much)."""
    created_at: float


@runtime_checkable
class StatsStore(Protocol):
    async def tier_stats(self, task_key: str) -> dict[Tier, TierStats]: ...

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
        """Fold one observation into (task key, tier), decaying older evidence.

        ``evidence_id`` names the observation: recorded once for a (task key, tier), the
        same id again changes nothing, so evidence seeded twice counts once. Returns False
        when it did nothing for that reason.
        """
        ...

    async def all_stats(self) -> list[TierStats]:
        """Every (task key, tier) with evidence, for ``dagtier stats``."""
        ...


class StandInStats:
    """The stats a run reads and writes when some of its tiers are served by a stand-in
    (the local model, for lack of an API key).

    Evidence is kept by the model that answered: what a stand-in did on tier ``T`` goes
    under ``TASK_KEY@MODEL``, so its $0 answers never rate or price the tier's real models
    (``dagtier estimate --store`` would otherwise price tier 3 at $0). Reads for those tiers
    come from the same place, so a keyless adaptive node still learns about the model it has.

    Args:
        inner: the run's store.
        stand_ins: tier -> catalog name of the model standing in for it.
    """

    def __init__(self, inner: StatsStore, stand_ins: dict[Tier, str]) -> None:
        self.inner = inner
        self.stand_ins = stand_ins

    def _key(self, task_key: str, tier: Tier) -> str:
        model = self.stand_ins.get(tier)
        return task_key if model is None else f"{task_key}@{model}"

    async def tier_stats(self, task_key: str) -> dict[Tier, TierStats]:
        out = {t: s for t, s in (await self.inner.tier_stats(task_key)).items()}
        for tier in self.stand_ins:
            out.pop(tier, None)
            theirs = (await self.inner.tier_stats(self._key(task_key, tier))).get(tier)
            if theirs is not None:
                out[tier] = theirs
        return out

    async def record_observation(self, task_key: str, tier: Tier, **evidence: Any) -> bool:
        # the evidence's fields as StatsStore.record_observation takes them
        return await self.inner.record_observation(self._key(task_key, tier), tier, **evidence)

    async def all_stats(self) -> list[TierStats]:
        return await self.inner.all_stats()


@runtime_checkable
class RunStore(Protocol):
    async def begin_run(self, record: RunRecord, owner: RunOwner | None = None) -> None:
        """Record a run as running, owned by ``owner`` (default: a new owner in this
        process). A resumed run keeps its row, cost and start time.

        Raises:
            RunClaimed: another live owner holds the run (checked in the same transaction).
        """
        ...

    async def claim_run(
        self, run_id: str, owner: RunOwner, *, take_over: RunOwner | None = None
    ) -> bool:
        """Atomically make ``owner`` the run's owner and mark it running.

        Succeeds when the run is not running, is ``owner``'s already, its owner's process is
        gone (same host), or its owner is ``take_over`` (a dead owner the caller knows of,
        e.g. on another host). Of two claimants at once, exactly one succeeds.

        Returns:
            False: no such run, or another live owner holds it (see :meth:`load_run`).
        """
        ...

    async def commit_node(self, run_id: str, result: NodeResult) -> None:
        """Durably save a finished node. Returns only once it is safe against a crash."""
        ...

    async def commit_nodes(self, run_id: str, results: Sequence[NodeResult]) -> None:
        """Durably save finished nodes of one run together (one transaction). Returns only
        once all are safe against a crash."""
        ...

    async def finish_run(self, run_id: str, status: RunStatus, cost: float) -> None: ...

    async def load_run(self, run_id: str) -> tuple[RunRecord, dict[str, NodeResult]] | None: ...

    async def list_runs(self, limit: int = 50) -> list[RunRecord]: ...


@dataclass(slots=True)
class BatchRecord:
    """A batch: one workflow over the items of one inputs file, each item a durable run."""

    batch_id: str
    workflow: str
    status: str
    """``running``, ``succeeded`` (every item ran), ``failed`` (stopped on a bad item),
    ``cancelled`` (Ctrl-C), ``budget_exhausted``; ``interrupted`` when its process is gone."""
    started_at: float
    items_path: str
    items_fingerprint: str
    """sha256 of the inputs file: a resume refuses a file that changed under it."""
    items_total: int
    source: str | None = None
    finished_at: float | None = None
    budget: float | None = None
    pid: int | None = None
    host: str | None = None


@dataclass(slots=True)
class BatchItem:
    """One item of a batch as the store knows it: the run it became, or why it did not."""

    index: int
    line: int
    run_id: str | None
    status: str | None
    """The run's status (``interrupted`` when its process is gone), ``invalid`` for an item
    that never became a run, None for a run that never began."""
    cost: float = 0.0
    error: str | None = None
    finished_at: float | None = None


@runtime_checkable
class BatchStore(Protocol):
    async def claim_batch(self, record: BatchRecord) -> BatchRecord | None:
        """Record ``record`` as running in this process (creating it if new).

        Returns None, changing nothing, when the batch is running in another live process;
        else the stored record (on a resume: the first run's path, fingerprint and size)."""
        ...

    async def record_batch_item(
        self,
        batch_id: str,
        index: int,
        line: int,
        run_id: str | None,
        *,
        status: str | None = None,
        error: str | None = None,
    ) -> None: ...

    async def finish_batch(self, batch_id: str, status: str) -> None: ...

    async def load_batch(self, batch_id: str) -> tuple[BatchRecord, list[BatchItem]] | None:
        """The batch and its items in index order, each with its run's status and cost."""
        ...

    async def list_batches(self, limit: int = 50) -> list[BatchRecord]: ...


@dataclass(frozen=True, slots=True)
class QueuedItem:
    """An item waiting in the store for a worker (``dagtier batch --ray``)."""

    index: int
    line: int
    run_id: str | None
    inputs: dict[str, Any] | None
    error: str | None = None
    """Why the item can never run (queued as already finished, ``invalid``)."""
    begun: bool = True
    """Whether its run is in the store already (claims say; False spares a worker
    looking for a run that cannot be there)."""


@runtime_checkable
class BatchQueue(Protocol):
    """A batch's items as a work queue in the store, so workers in other processes (Ray
    actors) claim them and the process that started the batch holds no state. A claim is a
    lease: a worker renews it while it runs its items; the items of a worker that died are
    claimed again once its lease ran out, and their runs resume node by node."""

    async def enqueue_items(self, batch_id: str, items: list[QueuedItem]) -> None: ...

    async def claim_items(
        self, batch_id: str, owner: str, limit: int, lease_s: float
    ) -> list[QueuedItem]: ...

    async def renew_items(self, batch_id: str, owner: str, lease_s: float) -> None: ...

    async def finish_item(self, batch_id: str, index: int) -> None: ...

    async def release_item(self, batch_id: str, index: int) -> None:
        """Give up a claimed item unfinished (its run stopped on the budget), so the next
        claim, a ``--resume``'s included, takes it at once instead of after the lease."""
        ...

    async def items_left(self, batch_id: str) -> int: ...


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A budget's ledger as the store holds it, in USD."""

    limit: float
    spent: float
    reserved: float
    """Held by calls in flight, in every process."""


@runtime_checkable
class BudgetLedger(Protocol):
    """Budgets whose spending and reservations live in the store, so processes sharing one
    (a batch's Ray actors) never pass it together (see :class:`dagtier.budget.StoreBudget`).

    A reservation is a *hold* with its holder's lease: the holder renews it while it works;
    the holds of a process that died are reclaimed once their lease ran out and count as
    spent at their full amount (the provider may have billed the call).

    Added in 0.3 (issue 14: ``--budget`` with ``--ray``).
    """

    async def open_budget(self, budget_id: str, limit: float, *, spent: float = 0.0) -> None:
        """Create the ledger with ``spent`` already spent, or give a stored one the new
        ``limit`` (its spending rises to ``spent`` if it recorded less, never falls)."""
        ...

    async def reserve_budget(
        self, budget_id: str, hold_id: str, holder: str, amount: float, lease_s: float
    ) -> bool:
        """Hold ``amount`` under ``hold_id`` if spent, held and ``amount`` together fit the
        limit (atomically against every other process); False, holding nothing, if not."""
        ...

    async def settle_budget(self, hold_id: str, actual: float) -> None:
        """Replace a hold by what the call cost; a hold reclaimed meanwhile stays counted
        at its full amount."""
        ...

    async def reclaim_budget(self, budget_id: str) -> BudgetState | None:
        """Count the holds whose lease ran out as spent; the ledger after that (None: no
        such budget)."""
        ...

    async def renew_budget(self, budget_id: str, holder: str, lease_s: float) -> None:
        """Extend the lease of ``holder``'s holds by ``lease_s`` from now."""
        ...


@runtime_checkable
class ResultCache(Protocol):
    async def cache_get(self, key: str, *, ttl_s: float | None) -> CachedAnswer | None:
        """The answer stored under ``key`` if younger than ``ttl_s`` seconds (None: any age)."""
        ...

    async def cache_put(self, key: str, answer: CachedAnswer) -> None: ...

    async def cache_clear(self, *, older_than_s: float | None = None) -> int: ...


_MEMBERS: dict[type, tuple[str, ...]] = {}


def implements(store: object, protocol: type) -> bool:
    """``isinstance(store, protocol)`` for the store protocols above, by the same rule (each
    of the protocol's methods present and not None) at a fraction of the cost: Python 3.11
    works out a runtime protocol's members again on every ``isinstance`` (20-50 µs), and
    every run asks which of the three roles its store plays."""
    members = _MEMBERS.get(protocol)
    if members is None:
        members = _MEMBERS[protocol] = tuple(n for n in vars(protocol) if not n.startswith("_"))
    return all(getattr(store, name, None) is not None for name in members)


def as_seen(record: RunRecord) -> RunRecord:
    """``record`` as reported: a 'running' run whose process is gone is ``interrupted``."""
    if record.status == "running" and not process_alive(record.pid, record.host):
        return replace(record, status="interrupted")
    return record


def claim_refused_by(
    status: str, holder: RunOwner | None, owner: RunOwner, take_over: RunOwner | None
) -> RunOwner | None:
    """Who keeps a run that ``owner`` wants to claim; None: ``owner`` may take it (it is not
    running, is ``owner``'s already, its owner's process is gone, or its owner is
    ``take_over``, whom the caller knows to be dead).

    Stores call it inside the claiming transaction with the run's row locked, so two
    claimants never both see a free run."""
    if status != "running" or holder is None:
        return None
    if holder in (owner, take_over) or not holder.alive():
        return None
    return holder


_PASSWORD_IN_URL = re.compile(r"(://[^:/@?#]*:)([^@/?#]*)@")
_PASSWORD_PARAM = re.compile(r"(password=)([^&\s]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with its password (``user:PASSWORD@`` or ``?password=``) replaced."""
    return _PASSWORD_PARAM.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1***@", url))


def shown_location(location: str | Path) -> str:
    """A store's location as it may be printed: a URL's password replaced."""
    return redact_url(str(location)) if is_postgres_url(location) else str(location)


def is_postgres_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def default_store_path() -> Path:
    """``$DAGTIER_STORE`` if set, else ``dagtier.db`` in the user's data directory."""
    env = os.environ.get(ENV_STORE)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("dagtier")) / "dagtier.db"


def open_store(location: str | Path | None = None) -> SqliteStore | PostgresStore:
    """Open (creating and migrating as needed) the store at ``location``.

    Args:
        location: a ``postgresql://user:password@host:port/db`` URL (libpq's URL form,
            ``?host=/socket/dir`` included) or a SQLite file path; None means
            ``$DAGTIER_STORE`` (either form), else the SQLite file in the user data
            directory (``platformdirs.user_data_dir("dagtier")/dagtier.db``).

    Raises:
        StoreError: the file cannot be opened or is not a dagtier store, or the database
            cannot be reached (the message names the path or the URL, never its password,
            and what to do).
    """
    if location is None or location == "":
        location = os.environ.get(ENV_STORE) or default_store_path()
    if is_postgres_url(location):
        from .postgres import PostgresStore

        return PostgresStore(str(location))
    from .sqlite import SqliteStore

    return SqliteStore(Path(location).expanduser())


class MemoryStore:
    """Both protocols in memory: for replay, tests and programs that persist nothing."""

    def __init__(self) -> None:
        self.stats: dict[str, dict[Tier, TierStats]] = {}
        self.runs: dict[str, RunRecord] = {}
        self.nodes: dict[str, dict[str, NodeResult]] = {}
        self.cache: dict[str, CachedAnswer] = {}
        self.batches: dict[str, BatchRecord] = {}
        self.batch_items: dict[str, dict[int, BatchItem]] = {}
        self.evidence: set[tuple[str, Tier, str]] = set()
        """(task key, tier, evidence id) of the observations recorded with an id."""

    async def tier_stats(self, task_key: str) -> dict[Tier, TierStats]:
        return self.stats.get(task_key, {})

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
        if evidence_id is not None:
            if (task_key, tier, evidence_id) in self.evidence:
                return False
            self.evidence.add((task_key, tier, evidence_id))
        by_tier = self.stats.setdefault(task_key, {})
        st = by_tier.get(tier)
        if st is None:
            st = by_tier[tier] = TierStats(task_key, tier)
        st.apply(success, weight, cost, latency_s, half_life)
        return True

    async def all_stats(self) -> list[TierStats]:
        return [st for by_tier in self.stats.values() for st in by_tier.values()]

    async def begin_run(self, record: RunRecord, owner: RunOwner | None = None) -> None:
        from .._exceptions import RunClaimed

        owner = owner or RunOwner.this_process()
        old = self.runs.get(record.run_id)
        holder = None if old is None else claim_refused_by(old.status, old.owner, owner, None)
        if holder is not None:
            raise RunClaimed(run_id=record.run_id, holder=holder)
        record.pid, record.host, record.owner_token = owner.pid, owner.host, owner.token
        if old is not None:
            record.cost, record.started_at = old.cost, old.started_at
        record.status, record.finished_at = "running", None
        self.runs[record.run_id] = record
        self.nodes.setdefault(record.run_id, {})

    async def claim_run(
        self, run_id: str, owner: RunOwner, *, take_over: RunOwner | None = None
    ) -> bool:
        rec = self.runs.get(run_id)
        if rec is None or claim_refused_by(rec.status, rec.owner, owner, take_over) is not None:
            return False
        rec.status, rec.finished_at = "running", None
        rec.pid, rec.host, rec.owner_token = owner.pid, owner.host, owner.token
        return True

    async def commit_node(self, run_id: str, result: NodeResult) -> None:
        await self.commit_nodes(run_id, (result,))

    async def commit_nodes(self, run_id: str, results: Sequence[NodeResult]) -> None:
        nodes = self.nodes.setdefault(run_id, {})
        rec = self.runs.get(run_id)
        for result in results:
            nodes[result.node_id] = result
            if rec is not None:
                rec.cost += result.cost

    async def finish_run(self, run_id: str, status: RunStatus, cost: float) -> None:
        rec = self.runs.get(run_id)
        if rec is not None:
            rec.status, rec.cost, rec.finished_at = status, max(rec.cost, cost), time.time()

    async def load_run(self, run_id: str) -> tuple[RunRecord, dict[str, NodeResult]] | None:
        rec = self.runs.get(run_id)
        return None if rec is None else (as_seen(rec), dict(self.nodes.get(run_id, {})))

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        newest = sorted(self.runs.values(), key=lambda r: r.started_at, reverse=True)[:limit]
        return [as_seen(r) for r in newest]

    async def cache_get(self, key: str, *, ttl_s: float | None) -> CachedAnswer | None:
        hit = self.cache.get(key)
        if hit is None or (ttl_s is not None and hit.created_at < time.time() - ttl_s):
            return None
        return hit

    async def cache_put(self, key: str, answer: CachedAnswer) -> None:
        self.cache[key] = answer

    async def cache_clear(self, *, older_than_s: float | None = None) -> int:
        cutoff = time.time() - older_than_s if older_than_s is not None else float("inf")
        old = [k for k, v in self.cache.items() if v.created_at < cutoff]
        for k in old:
            del self.cache[k]
        return len(old)

    async def claim_batch(self, record: BatchRecord) -> BatchRecord | None:
        held = self.batches.get(record.batch_id)
        if held is None:
            self.batches[record.batch_id] = held = record
            self.batch_items[record.batch_id] = {}
        elif held.status == "running":  # one process: a batch running here is alive
            return None
        held.status, held.finished_at = "running", None
        held.budget, held.source = record.budget, record.source
        return held

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
        self.batch_items.setdefault(batch_id, {})[index] = BatchItem(
            index, line, run_id, status, error=error
        )

    async def finish_batch(self, batch_id: str, status: str) -> None:
        rec = self.batches.get(batch_id)
        if rec is not None:
            rec.status, rec.finished_at = status, time.time()

    async def load_batch(self, batch_id: str) -> tuple[BatchRecord, list[BatchItem]] | None:
        rec = self.batches.get(batch_id)
        if rec is None:
            return None
        items = []
        for _, it in sorted(self.batch_items.get(batch_id, {}).items()):
            run = self.runs.get(it.run_id) if it.run_id else None
            if run is not None:
                it = BatchItem(
                    it.index, it.line, it.run_id, run.status, run.cost, it.error, run.finished_at
                )
            items.append(it)
        return rec, items

    async def list_batches(self, limit: int = 50) -> list[BatchRecord]:
        return sorted(self.batches.values(), key=lambda r: r.started_at, reverse=True)[:limit]


__all__ = [
    "ENV_STORE",
    "BatchItem",
    "BatchQueue",
    "BatchRecord",
    "BatchStore",
    "BudgetLedger",
    "BudgetState",
    "CachedAnswer",
    "MemoryStore",
    "QueuedItem",
    "ResultCache",
    "RunOwner",
    "RunRecord",
    "RunStore",
    "StandInStats",
    "StatsStore",
    "TierStats",
    "default_store_path",
    "is_postgres_url",
    "open_store",
    "process_alive",
    "redact_url",
    "shown_location",
]
