"""The replay judge: the recorded quality, seen through a judge that makes mistakes.

A real LLM judge is wrong some of the time, and a cascade is only worth what its judge is
worth (RouterBench). The replay judge models that with two error rates: the false-accept
rate (a wrong answer is passed) and the false-reject rate (a right answer is failed), and
charges a fixed cost per call.

Its errors are a deterministic function of (seed, query, model): the same answer gets the
same verdict under every policy of one replay, so policies are compared on the same judge
luck (common random numbers), and a different seed draws a different, independent judge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import DagtierUsageError
from ..results import CheckResult

if TYPE_CHECKING:
    from ..policies.judge import JudgeRequest, JudgeVerdict

_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class ReplayJudge:
    """Judges a replayed answer from its recorded quality.

    Plugged in through ``Completion.meta["judge"]`` by the replay provider: the node's
    ``judge`` check calls it instead of calling a model (see :mod:`dagtier.policies.judge`).

    Args:
        false_accept: probability that a wrong answer is passed.
        false_reject: probability that a right answer is failed.
        cost: USD charged per judgement.
        seed: selects the judge's (reproducible) mistakes.
        threshold: recorded quality at or above which an answer counts as right (the
            check's ``min_score`` overrides it for sources that grade in [0, 1]).
    """

    false_accept: float = 0.1
    false_reject: float = 0.1
    cost: float = 0.0
    seed: int = 0
    threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("false_accept", "false_reject"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DagtierUsageError(f"ReplayJudge {name} must lie in [0, 1], got {value}")
        if self.cost < 0:
            raise DagtierUsageError(f"ReplayJudge cost must not be negative, got {self.cost}")

    def uniform(self, query_id: str, model: str) -> float:
        """The judge's random draw for this answer, uniform in [0, 1)."""
        h = hashlib.blake2b(
            f"{query_id}\x00{model}".encode(),
            digest_size=8,
            key=self.seed.to_bytes(8, "little", signed=True),
        )
        return int.from_bytes(h.digest(), "little") / _SCALE

    def judge(
        self, query_id: str, model: str, quality: float, threshold: float | None = None
    ) -> bool:
        """Whether the judge passes this answer."""
        right = quality >= (self.threshold if threshold is None else threshold)
        u = self.uniform(query_id, model)
        return (u >= self.false_reject) if right else (u < self.false_accept)

    def verdict(self, check: Any, meta: Mapping[str, Any]) -> tuple[CheckResult, float]:
        """The verdict on one replayed answer (from its ``Completion.meta``) and its cost."""
        quality = float(meta["quality"])
        passed = self.judge(
            str(meta["query_id"]), str(meta["model"]), quality, getattr(check, "min_score", None)
        )
        reason = "" if passed else f"replay judge: FAIL (recorded quality {quality:g})"
        return CheckResult("judge", passed, reason, score=1.0 if passed else 0.0), self.cost

    def __call__(self, req: JudgeRequest) -> JudgeVerdict:
        """The judge seam of :mod:`dagtier.policies.judge`: ``Completion.meta["judge"]`` is
        called with a ``JudgeRequest`` and returns a ``JudgeVerdict``."""
        from ..policies.judge import JudgeVerdict

        result, cost = self.verdict(req.check, req.meta)
        return JudgeVerdict(result.passed, result.reason, result.score, cost)
