"""Resume and the result cache: the executor's durable-run helpers, kept out of its hot path.

Resume treats the store as the truth: a node the store has as succeeded (or unverified, or
cached) is never called again, unless the workflow changed under it and the caller forces
a rerun of exactly the changed nodes and their descendants.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._exceptions import DagtierUsageError, RunClaimed, RunError, RunNotFound
from .fingerprint import stale_nodes
from .results import NodeResult
from .store import CachedAnswer, RunRecord, RunStore

if TYPE_CHECKING:
    from .budget import Budget
    from .spec.models import Workflow

DEFAULT_CACHE_TTL_S = 7 * 24 * 3600.0
"""Cached answers are reused for a week unless told otherwise (``--cache-ttl``)."""


async def load_for_resume(
    store: RunStore | None, run_id: str, workflow: Workflow
) -> tuple[RunRecord, dict[str, NodeResult]]:
    """The run's record and the results it committed.

    This only looks: the run is claimed atomically by the store's ``begin_run`` later, which
    refuses it if another resume got there first; :func:`catch_up` then adds what that
    other owner committed in between.

    Raises:
        DagtierUsageError: no run store to resume from.
        RunNotFound: the store holds no such run.
        RunError: another workflow.
        RunClaimed: a live process is running it.
    """
    if store is None:
        raise DagtierUsageError("run(..., resume=...) needs a store that keeps runs")
    loaded = await store.load_run(run_id)
    if loaded is None:
        raise RunNotFound(
            f"no run '{run_id}' in the store\nhint: `dagtier runs` lists the runs it holds "
            "(and pass the same --store as the first run)",
            run_id=run_id,
        )
    record, nodes = loaded
    if record.workflow != workflow.name:
        raise RunError(
            f"run '{run_id}' ran workflow '{record.workflow}', not '{workflow.name}'",
            run_id=run_id,
        )
    if record.status == "running":  # its process is alive (else it reads 'interrupted')
        raise RunClaimed(run_id=run_id, holder=record.owner)
    return record, nodes


async def catch_up(
    store: RunStore,
    workflow: Workflow,
    prior: tuple[RunRecord, dict[str, NodeResult]],
    current: Mapping[str, str],
    done: dict[str, NodeResult],
) -> float:
    """After the claim: add to ``done`` the finished nodes another owner committed between
    :func:`load_for_resume` and the claim (two resumes racing, the other one finishing
    first), so none is paid twice. Returns what those nodes cost."""
    loaded = await store.load_run(prior[0].run_id)
    if loaded is None:
        return 0.0
    new = {nid: r for nid, r in loaded[1].items() if nid not in prior[1] or r != prior[1][nid]}
    if not new:
        return 0.0
    keep = finished_to_keep(workflow, prior[0], {**prior[1], **new}, current, force=True)
    added = {nid: r for nid, r in keep.items() if nid in new and nid not in done}
    done.update(added)
    return sum(r.cost for r in added.values())


def finished_to_keep(
    workflow: Workflow,
    record: RunRecord,
    nodes: Mapping[str, NodeResult],
    current: Mapping[str, str],
    *,
    force: bool,
) -> dict[str, NodeResult]:
    """The committed results the resumed run keeps: every finished node still up to date.

    Raises:
        RunError: a finished node is stale and ``force`` is false; the message names the
            edited nodes and the finished nodes affected.
    """
    then = record.node_fingerprints
    finished = {nid for nid, r in nodes.items() if r.ok and nid in workflow.nodes}
    stale = stale_nodes(then, current, finished)
    if stale and not force:
        # Edited: changed while every parent is unchanged (fingerprints chain downwards).
        edited = sorted(
            n
            for n, node in workflow.nodes.items()
            if n in then
            and then[n] != current[n]
            and all(then.get(p) == current[p] for p in node.depends_on)
        )
        many = len(stale) > 1
        raise RunError(
            f"the workflow changed since run '{record.run_id}': edited "
            f"{', '.join(edited) or '(the graph)'}; finished node{'s' if many else ''} "
            f"{', '.join(stale)} {'were' if many else 'was'} run with another prompt, inputs "
            "or models\n"
            "hint: add --force to rerun exactly those nodes and their descendants "
            "(run(..., force=True)), or start a new run",
            run_id=record.run_id,
        )
    return {nid: nodes[nid] for nid in finished if nid not in stale}


def run_error(status: str, budget: Budget | None, run_id: str, workflow: Workflow) -> str | None:
    """The run's one-line reason to stop, for statuses that need one."""
    if status == "budget_exhausted" and budget is not None and budget.exhausted is not None:
        return (
            f"{budget.exhausted}\nnote: every result so far is kept.\n"
            f"hint: resume with a larger budget: dagtier run {workflow.source} --resume "
            f"{run_id} --budget USD"
        )
    return None


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str, option: str) -> float:
    """Seconds in ``30``, ``45s``, ``10m``, ``12h``, ``7d`` or ``2w``.

    Raises:
        SpecError: not a duration, naming the option and the accepted forms.
    """
    from ._exceptions import SpecError, SpecIssue

    t = text.strip().lower()
    unit = _UNITS.get(t[-1:])
    number = t[:-1] if unit is not None else t
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        value = -1.0
    if value < 0:
        raise SpecError(
            source=option,
            issues=[
                SpecIssue(
                    "",
                    f"'{text}' is not a duration",
                    "bad-duration",
                    hint="write seconds or a number with s, m, h, d or w: 30s, 12h, 7d",
                )
            ],
        )
    return value


def cached_result(nid: str, key: str | None, hit: CachedAnswer, started: float) -> NodeResult:
    return NodeResult(
        nid,
        "cached",
        output=hit.output,
        text=hit.text,
        tier=hit.tier,
        model=hit.model,
        started_at=started,
        finished_at=time.time(),
        task_key=key,
        decision=f"cache hit: the answer of run {hit.run_id} node {hit.node_id} "
        f"(saved ${hit.cost:.6f})",
        cache_hit=True,
    )


def answer_of(run_id: str, result: NodeResult) -> CachedAnswer:
    return CachedAnswer(
        run_id,
        result.node_id,
        result.output,
        result.text,
        result.tier,
        result.model,
        result.cost,
        time.time(),
    )


def out_of_budget(nid: str, exc: Any, attempts: list[Any], started: float, key: str) -> NodeResult:
    """A node stopped by the budget: keeps what it already paid for; a resume reruns it."""
    from ._exceptions import NodeBudgetExceeded

    return NodeResult(
        nid,
        "failed" if isinstance(exc, NodeBudgetExceeded) else "cancelled",
        attempts=attempts,
        error=str(exc),
        started_at=started,
        finished_at=time.time(),
        task_key=key,
    )
