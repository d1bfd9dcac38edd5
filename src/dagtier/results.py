"""What a run produces: attempts, node results, the run result. Plain slotted dataclasses:
the executor builds thousands of them, and pydantic models would cost more than the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ._types import JSON, NodeStatus, RunStatus, Tier, Verdict
from .catalog import Usage


@dataclass(slots=True)
class CheckResult:
    check: str
    """The check's type (``json_schema``, ``judge``, ...)."""
    passed: bool
    reason: str = ""
    score: float | None = None


@dataclass(slots=True)
class ToolCallRecord:
    """One tool call of a turn: which tool, how long it ran, whether it answered an error."""

    name: str
    duration_s: float
    error: bool = False


@dataclass(slots=True)
class Turn:
    """One model call of a tool loop and the tool calls it asked for (none on the last)."""

    model: str
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    latency_s: float = 0.0
    tool_calls: list[ToolCallRecord] = field(default_factory=list)


@dataclass(slots=True)
class Attempt:
    """One model call made for a node (after the gateway's retries and fallbacks)."""

    index: int
    tier: Tier
    model: str
    """Catalog name of the model that served (or was last tried, on error)."""
    provider: str
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    latency_s: float = 0.0
    verdict: Verdict = "unchecked"
    reason: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    judge_cost: float = 0.0
    judge_usage: Usage = field(default_factory=Usage)
    request_id: str | None = None
    fallbacks: list[str] = field(default_factory=list)
    """The provider errors of this attempt's failed tries (retries and same-tier fallbacks):
    those survived before the answer, or all of them when no model answered."""
    purpose: str = "answer"
    """``answer`` for the node's own call, ``canary`` for an adaptive quality canary."""
    output: str | None = None
    response_model: str | None = None
    """The model id the provider says served the call (may differ from the one asked for)."""
    turns: list[Turn] = field(default_factory=list)
    """A tool loop's model calls, in order (empty for a single call); ``usage`` and
    ``cost`` are their sums."""

    @property
    def total_cost(self) -> float:
        return self.cost + self.judge_cost

    @property
    def tries(self) -> int:
        """Provider calls this attempt made: its failed tries, plus the one that answered."""
        return len(self.fallbacks) + (0 if self.verdict == "error" else 1)


@dataclass(slots=True)
class NodeResult:
    node_id: str
    status: NodeStatus
    output: JSON = None
    """The answer: text, or the parsed object for JSON nodes."""
    text: str | None = None
    tier: Tier | None = None
    model: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    task_key: str | None = None
    decision: str | None = None
    """The policy's reason for the tier it chose (adaptive), for logs and reports."""
    cache_hit: bool = False
    error_code: str | None = None
    """For a node that failed because no model answered, the code of the provider's error
    underneath (``provider-auth`` for a refused key, ``provider-rate-limited``...)."""
    deadline_tier: Tier | None = None
    """The tier the run's deadline started the node at, above where its policy starts
    (None: the deadline changed nothing). *Added in issue 16.*"""

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "unverified", "cached")

    @property
    def tries(self) -> int:
        """Provider calls made for the node: every retry and fallback counts."""
        return sum(a.tries for a in self.attempts)

    @property
    def cost(self) -> float:
        return sum(a.total_cost for a in self.attempts)

    @property
    def judge_cost(self) -> float:
        return sum(a.judge_cost for a in self.attempts)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for a in self.attempts:
            total = total + a.usage + a.judge_usage
        return total

    @property
    def latency_s(self) -> float:
        if self.started_at is None or self.finished_at is None:
            return 0.0
        return self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cost"] = self.cost
        d["judge_cost"] = self.judge_cost
        return d


@dataclass(slots=True)
class RunResult:
    run_id: str
    workflow: str
    status: RunStatus
    nodes: dict[str, NodeResult]
    outputs: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    finished_at: float = 0.0
    error: str | None = None
    deadline_s: float | None = None
    """The run's deadline in seconds from its start (None: none). *Added in issue 16.*"""

    @property
    def cost(self) -> float:
        return sum(n.cost for n in self.nodes.values())

    @property
    def elapsed_s(self) -> float:
        return self.finished_at - self.started_at if self.finished_at else 0.0

    @property
    def deadline_met(self) -> bool | None:
        """Whether the run ended within its deadline (None: it had none)."""
        return deadline_met(self.deadline_s, self.elapsed_s)

    @property
    def deadline_late_s(self) -> float | None:
        """By how much the run missed its deadline (None: met, or it had none)."""
        return deadline_late_s(self.deadline_s, self.elapsed_s)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def __getitem__(self, node_id: str) -> NodeResult:
        return self.nodes[node_id]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "cost": self.cost,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "deadline_s": self.deadline_s,
            "deadline_met": self.deadline_met,
            "outputs": self.outputs,
            "nodes": {k: v.to_dict() for k, v in self.nodes.items()},
        }


def deadline_met(deadline_s: float | None, elapsed_s: float) -> bool | None:
    """Whether ``elapsed_s`` is within ``deadline_s`` (None: no deadline)."""
    return None if deadline_s is None else elapsed_s <= deadline_s


def deadline_late_s(deadline_s: float | None, elapsed_s: float) -> float | None:
    """By how much ``elapsed_s`` missed ``deadline_s`` (None: met, or no deadline)."""
    if deadline_s is None or elapsed_s <= deadline_s:
        return None
    return elapsed_s - deadline_s
