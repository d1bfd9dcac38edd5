"""The ``replay`` provider: answers with the recorded outcome of the model asked.

The one-node replay workflow's prompt is the query id, so the real executor renders it
from the run's inputs like any prompt and nothing else has to carry it. When the replay has
the queries' texts (for routers, which read the input), the prompt is the text and the id
travels as the system prompt. The provider
charges the recorded cost through ``Completion.cost_usd`` (the gateway uses a cost the
provider reports over the catalog's token prices) and puts the recorded quality in
``Completion.meta`` for the judge.
"""

from __future__ import annotations

from .._exceptions import BadRequest
from ..catalog import ModelEntry, Usage
from ..providers.base import Completion, CompletionRequest
from ._data import Outcomes
from ._judge import ReplayJudge

_NO_TOKENS = Usage()
"""Replayed calls report no tokens (the recorded cost is the truth); shared, never mutated."""


class ReplayProvider:
    """Serves catalog entries whose ``provider`` is ``replay`` from recorded outcomes.

    Args:
        outcomes: the recorded outcomes (``table[query_id][model]``).
        judge: the judge to hand to the node's judge check; None leaves judging to the
            node's own configuration.
    """

    def __init__(self, outcomes: Outcomes, judge: ReplayJudge | None = None) -> None:
        self._table = outcomes.table
        self._source = outcomes.source
        self.judge = judge
        self._threshold = judge.threshold if judge is not None else 0.5

    async def complete(self, model: ModelEntry, request: CompletionRequest) -> Completion:
        query_id = request.system if request.system is not None else request.messages[-1].content
        name = model.model
        try:
            quality, cost = self._table[query_id][name]
        except KeyError:
            raise BadRequest(
                f"no recorded outcome for query '{query_id}' in {self._source}",
                provider="replay",
                model=name,
            ) from None
        meta: dict[str, object] = {"quality": quality, "query_id": query_id, "model": name}
        if self.judge is not None:
            meta["judge"] = self.judge
        return Completion(
            _answer_text(query_id, name, quality, self._threshold),
            name,
            _NO_TOKENS,
            meta=meta,
            cost_usd=cost,
        )

    async def aclose(self) -> None:
        return None


def _answer_text(query_id: str, model: str, quality: float, threshold: float) -> str:
    """A stand-in for the recorded answer. Right answers to one query read the same, as
    the one right choice or number does, so the adaptive policy's quality canary sees two
    right answers agree; a wrong answer differs from every other answer."""
    if quality >= threshold:
        return f"[right answer to {query_id}]"
    return f"[wrong answer of {model} to {query_id}]"
