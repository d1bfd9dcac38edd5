"""Routers: look at a node's rendered input before any model runs.

A router maps the input to an *input class* and, optionally, a *start tier*. The class joins
the node's task key (``KEY[class]``), so adaptive learns a start tier and an escalation
ceiling per class; the start tier is a floor for the node's policy (a cascade still climbs
one tier at a time from there). A router that abstains leaves the node to its policy.

* :class:`RulesRouter`: length, regex/keyword and upstream-field conditions; the first rule
  that matches wins.
* :class:`ClassifierRouter`: a text classifier trained online on the node's own recorded
  outcomes (did the cheapest tier's answer pass, for which input): word and character
  n-grams, a logistic regression, Platt-calibrated on cross-validated scores (scikit-learn,
  the ``dagtier[router]`` extra; CPU only, nothing downloaded). It abstains until it has
  enough evidence, when its cross-validated ranking is too weak to trust, and whenever it
  is not confident enough that skipping the cheap tier pays.
* :class:`LlmRouter`: a tier-1 model names one of the declared classes (its cost is charged
  to the node as an attempt of purpose ``route``); an answer outside the classes falls back
  to the node's policy, logged.
* :class:`HybridRouter`: rules, then the classifier, then the LLM: the first that does not
  abstain decides.

Every decision is logged with its reason (a :class:`~dagtier.events.PolicyDecision`).
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._exceptions import DagtierUsageError, ProviderError
from .._types import Tier
from ..results import Attempt
from .escalation import ceiling, ceiling_evidence

if TYPE_CHECKING:
    from ..spec.models import RouterSpec
    from ..store import StatsStore
    from .base import NodeContext

ROUTE_PURPOSE = "route"
"""``Attempt.purpose`` of the LLM router's call (charged to the node, not an answer)."""


@dataclass(frozen=True, slots=True)
class Route:
    """A router's decision. ``cls`` None: it abstained (the node runs its policy as is)."""

    cls: str | None
    start: Tier | None
    reason: str
    by: str
    """Which router decided: ``rules``, ``classifier``, ``llm`` (or ``none``)."""

    @property
    def abstained(self) -> bool:
        return self.cls is None


ABSTAIN = Route(None, None, "no router", "none")


@dataclass(frozen=True, slots=True)
class RouteInput:
    """What a router sees: the rendered input, the node's dependencies' outputs, its task
    key and statistics (for prices), and the node context (for the LLM router's call)."""

    text: str
    upstream: Mapping[str, Any]
    task_key: str
    stats: StatsStore | None
    ctx: NodeContext | None = None


@runtime_checkable
class Router(Protocol):
    """Decides an input's class; may learn from the node's outcomes."""

    async def route(self, inp: RouteInput) -> Route: ...

    async def learn(
        self, text: str, task_key: str, tier: Tier, passed: bool, cost: float | None = None
    ) -> None:
        """One recorded outcome: the answer of ``tier`` to ``text`` passed or not, and what
        that answer cost (None: not known)."""
        ...

    def status(self) -> dict[str, Any]:
        """What the router knows, for ``dagtier stats``."""
        ...


# --- rules ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule; every condition given must hold. ``field`` reads an upstream node's output
    (``node`` or ``node.key.sub``); ``equals`` compares it, else it must be truthy."""

    cls: str
    start: Tier | None = None
    min_chars: int | None = None
    max_chars: int | None = None
    pattern: str | None = None
    keywords: tuple[str, ...] = ()
    field: str | None = None
    equals: Any = None
    _regex: re.Pattern[str] | None = None

    @classmethod
    def make(cls, klass: str, **kw: Any) -> Rule:
        """Build a rule, compiling its regex.

        Raises:
            DagtierUsageError: an invalid regex (the spec loader reports it with its line).
        """
        pattern = kw.get("pattern")
        regex = None
        if pattern is not None:
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                raise DagtierUsageError(f"invalid regex {pattern!r}: {exc}") from None
        kw["keywords"] = tuple(k.casefold() for k in kw.get("keywords", ()))
        return cls(klass, _regex=regex, **kw)

    def matches(self, text: str, upstream: Mapping[str, Any]) -> str | None:
        """Why the rule matches (None: it does not)."""
        why = []
        n = len(text)
        if self.min_chars is not None:
            if n < self.min_chars:
                return None
            why.append(f"{n} chars >= {self.min_chars}")
        if self.max_chars is not None:
            if n > self.max_chars:
                return None
            why.append(f"{n} chars <= {self.max_chars}")
        if self._regex is not None:
            if self._regex.search(text) is None:
                return None
            why.append(f"matches /{self.pattern}/")
        if self.keywords:
            folded = text.casefold()
            hit = next((k for k in self.keywords if k in folded), None)
            if hit is None:
                return None
            why.append(f"contains '{hit}'")
        if self.field is not None:
            value = _lookup(upstream, self.field)
            if self.equals is not None:
                if value != self.equals:
                    return None
                why.append(f"{self.field} == {self.equals!r}")
            elif not value:
                return None
            else:
                why.append(f"{self.field} is set")
        return ", ".join(why) or "matches anything"


def _lookup(upstream: Mapping[str, Any], path: str) -> Any:
    node, *keys = path.split(".")
    value: Any = upstream.get(node)
    for k in keys:
        value = value.get(k) if isinstance(value, Mapping) else None
    return value


class RulesRouter:
    """First matching rule wins; no match abstains."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)

    async def route(self, inp: RouteInput) -> Route:
        for i, rule in enumerate(self.rules):
            why = rule.matches(inp.text, inp.upstream)
            if why is not None:
                return Route(rule.cls, rule.start, f"rule {i + 1} ({why})", "rules")
        return Route(None, None, f"no rule of {len(self.rules)} matched", "rules")

    async def learn(
        self, text: str, task_key: str, tier: Tier, passed: bool, cost: float | None = None
    ) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"kind": "rules", "rules": len(self.rules)}


# --- classifier ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Model:
    coef: Any
    intercept: float
    a: float
    b: float
    auc: float
    examples: int
    fail_rate: float
    cv: Any
    """The calibrated cross-validated chance of failure of each example it was fitted on."""


@dataclass(frozen=True, slots=True)
class _CostLine:
    """The base tier's cost of an answer as a line in the input's length, least squares on
    the recorded answers: what sending an input up costs grows with it where a call's price
    grows with its prompt."""

    fixed: float
    per_char: float
    mean: float

    @classmethod
    def fit(cls, chars: Sequence[int], costs: Sequence[float]) -> _CostLine | None:
        import numpy as np

        if len(costs) < 2 or min(costs) <= 0:
            return None
        x = np.asarray(chars, dtype=float)
        y = np.asarray(costs, dtype=float)
        per_char = 0.0
        if x.std() > 0:
            per_char = max(0.0, float(np.cov(x, y, bias=True)[0, 1] / x.var()))
        fixed = float(y.mean() - per_char * x.mean())
        return cls(fixed, per_char, float(y.mean()))

    def relative(self, chars: int) -> float:
        """The input's predicted cost over the mean (never below a tenth of it)."""
        return max(0.1, (self.fixed + self.per_char * chars) / self.mean)


@dataclass(slots=True)
class ClassifierRouter:
    """Estimates, per input, the chance that the cheapest tier's answer fails its checks,
    and starts such inputs one tier higher when that pays.

    Args:
        cls: the class it assigns (joins the task key).
        threshold: route when the calibrated chance of failure reaches it; None (``auto``)
            derives it from the tiers' mean costs and failure rates in the statistics (judge
            included): trying tier t first on an input that fails wastes its cost C_t;
            skipping it on one that passes costs E_{t+1} - C_t more, where E_{t+1} is what
            an input costs from tier t+1 up (escalations included); skipping pays above
            1 - C_t / E_{t+1}.
        min_examples: abstain until this many outcomes were recorded.
        min_auc: abstain while the cross-validated ranking (ROC AUC) is below this: the
            text does not predict failure.
        explore: share of would-be routed inputs left to the cheap tier anyway, so it keeps
            being measured where the router would skip it.
        base_tier: the tier whose failures it predicts.
        per_cost: rank inputs by their chance of failure per dollar of sending them up (p
            over the input's predicted cost relative to the mean, from a line fitted on the
            recorded answers' costs and lengths): with a fixed threshold and no judge
            (route-only), the same spend then buys more of the failures where a call's price
            grows with its prompt. A break-even threshold needs no such weight: both sides of
            it scale with the input's cost.
        skip_worth: what avoiding one escalation is worth beyond its price (a round trip of
            latency: the cheap answer that would have been thrown away), in calls of the
            node's max tier. 0 routes only where skipping pays in money; above 0 the
            automatic threshold drops, trading a little cost, and the cheap tier's right
            answers on the inputs it skips, for fewer wasted attempts.
    """

    cls: str = "hard"
    threshold: float | None = None
    min_examples: int = 200
    min_auc: float = 0.55
    explore: float = 0.05
    base_tier: Tier = 1
    per_cost: bool = False
    skip_worth: float = 0.0
    features: TextFeatures | None = None
    """Shared between routers that see the same texts (replay's policies); made on first
    use otherwise."""
    _texts: list[Any] = field(default_factory=list)
    _labels: list[int] = field(default_factory=list)
    _chars: list[int] = field(default_factory=list)
    _costs: list[tuple[int, float]] = field(default_factory=list)
    _model: _Model | None = None
    _cost_line: _CostLine | None = None
    _fitted_at: int = 0
    routed: int = 0
    abstained: int = 0

    def _featurize(self, text: str, task_key: str) -> Any:
        if self.features is None:
            self.features = TextFeatures()
        return self.features.row(text, task_key)

    def probability(self, text: str, task_key: str) -> float | None:
        """The calibrated chance the base tier fails on ``text`` (None: no model yet)."""
        m = self._model
        if m is None:
            return None
        row = self._featurize(text, task_key)
        score = float(row.dot(m.coef)[0]) + m.intercept
        z = m.a * score + m.b
        return 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0

    def score(self, text: str, task_key: str) -> float | None:
        """What the threshold is compared with: the chance of failure, per dollar of sending
        the input up with ``per_cost`` (None: no model yet)."""
        p = self.probability(text, task_key)
        if p is None or not self.per_cost or self._cost_line is None:
            return p
        return p / self._cost_line.relative(len(text))

    def cross_validated_scores(self) -> list[float]:
        """:meth:`score` of each learnt example, from models that did not see it (the last
        fit's cross-validation): what a threshold can be chosen on without peeking. Empty
        before the first fit; call :meth:`refit` first to cover every example."""
        m = self._model
        if m is None:
            return []
        line = self._cost_line if self.per_cost else None
        if line is None:
            return [float(p) for p in m.cv]
        return [float(p) / line.relative(c) for p, c in zip(m.cv, self._chars, strict=False)]

    async def route(self, inp: RouteInput) -> Route:
        route = await self._route(inp)
        if route.abstained:
            self.abstained += 1
        else:
            self.routed += 1
        m = self._model
        if m is not None and m.auc >= self.min_auc:
            # the model's evidence travels with each decision (the node keeps its last), so
            # ``dagtier stats`` can show it from the store after the process that ran it
            route = Route(
                route.cls,
                route.start,
                f"{route.reason} [cross-validated AUC {m.auc:.2f} on {m.examples} outcomes]",
                route.by,
            )
        return route

    async def _route(self, inp: RouteInput) -> Route:
        n = len(self._labels)
        m = self._model
        if m is None:
            return Route(
                None,
                None,
                f"abstains: {n} recorded outcomes, needs {self.min_examples}",
                "classifier",
            )
        if m.auc < self.min_auc:
            return Route(
                None,
                None,
                f"abstains: the text does not predict failure (cross-validated AUC {m.auc:.2f} "
                f"< {self.min_auc:.2f} on {m.examples} outcomes)",
                "classifier",
            )
        threshold, how = await self._threshold(inp)
        if threshold is None:
            return Route(None, None, f"abstains: {how}", "classifier")
        p = self.score(inp.text, inp.task_key)
        assert p is not None
        if self.per_cost and self._cost_line is not None:
            how += f", p per relative cost ({self._cost_line.relative(len(inp.text)):.2f})"
        if p < threshold:
            return Route(
                None,
                None,
                f"abstains: tier {self.base_tier} fails with p={p:.2f} < {threshold:.2f} ({how})",
                "classifier",
            )
        start: Tier = self.base_tier + 1  # type: ignore[assignment]
        if self.explore and inp.ctx is not None and inp.ctx.rng.random() < self.explore:
            return Route(
                None,
                None,
                f"exploring: tier {self.base_tier} fails with p={p:.2f} >= {threshold:.2f}, "
                "tried anyway to keep measuring it",
                "classifier",
            )
        return Route(
            self.cls,
            start,
            f"tier {self.base_tier} fails with p={p:.2f} >= {threshold:.2f} ({how}): start at "
            f"tier {start}",
            "classifier",
        )

    async def _threshold(self, inp: RouteInput) -> tuple[float | None, str]:
        if self.threshold is not None:
            return self.threshold, "threshold set"
        if inp.stats is None:
            return None, "no statistics store to price the tiers"
        stats = await inp.stats.tier_stats(inp.task_key)
        base = stats.get(self.base_tier)
        if base is None or base.mean_cost <= 0:
            return None, f"tier {self.base_tier} not priced yet"
        # what an input costs from the next tier up: each tier's mean cost (judge
        # included), the next one's paid as often as this one fails, up to the tier the
        # node would stop at (a tier above its learnt ceiling is not paid)
        top = await _learnt_ceiling(inp, self.cls, self.base_tier + 1)  # type: ignore[arg-type]
        above = sorted(t for t in stats if self.base_tier < t <= top)
        if not above or above[0] != self.base_tier + 1:
            return None, f"tier {self.base_tier + 1} not priced yet"
        onward = 0.0
        for t in reversed(above):
            st = stats[t]
            seen = st.successes + st.failures
            fails = st.failures / seen if seen > 0 else 1.0
            onward = st.mean_cost + (fails * onward if t != above[-1] else 0.0)
        # trying tier b first costs C + p E, starting above it E: skip when the extra
        # E - (C + p E) is at most the p escalations it avoids, worth W each, i.e. when
        # p >= (E - C) / (E + W) (W = 0: the money break-even, 1 - C / E)
        c = base.mean_cost
        worth = self.skip_worth * stats[max(stats)].mean_cost
        even = min(1.0, max(0.0, (onward - c) / (onward + worth))) if onward > 0 else 1.0
        what = "break-even" if not worth else f"skip worth {self.skip_worth:g} max-tier calls"
        return even, (
            f"{what}: p >= (E{self.base_tier + 1} - C{self.base_tier}) / "
            f"(E{self.base_tier + 1} + W) = {even:.2f}: tier {self.base_tier} costs {c:.3g}, an "
            f"input from tier {self.base_tier + 1} up to tier {above[-1]} {onward:.3g}"
        )

    async def learn(
        self, text: str, task_key: str, tier: Tier, passed: bool, cost: float | None = None
    ) -> None:
        if tier != self.base_tier:
            return
        self._texts.append(self._featurize(text, task_key))
        self._labels.append(0 if passed else 1)
        self._chars.append(len(text))
        if cost is not None:
            self._costs.append((len(text), cost))
        n = len(self._labels)
        # refit on a doubling schedule: the cost of fitting stays a constant factor of the
        # cost of collecting the outcomes
        if n >= self.min_examples and n >= 2 * self._fitted_at:
            await self.refit()

    async def refit(self) -> None:
        """Fit on every outcome learnt so far (learning refits on a doubling schedule)."""
        import anyio

        n = len(self._labels)
        if n < self.min_examples or n == self._fitted_at:
            return
        self._fitted_at = n
        rows, labels = list(self._texts), list(self._labels)
        model = await anyio.to_thread.run_sync(_fit, rows, labels)
        if model is not None:
            self._model = model
        self._cost_line = _CostLine.fit([c for c, _ in self._costs], [d for _, d in self._costs])

    def status(self) -> dict[str, Any]:
        m = self._model
        out: dict[str, Any] = {
            "kind": "classifier",
            "class": self.cls,
            "outcomes": len(self._labels),
            "routed": self.routed,
            "abstained": self.abstained,
        }
        if m is None:
            out["state"] = f"abstaining: {len(self._labels)} of {self.min_examples} outcomes"
        elif m.auc < self.min_auc:
            out["state"] = f"abstaining: cross-validated AUC {m.auc:.2f} < {self.min_auc:.2f}"
        else:
            out["state"] = f"routing: cross-validated AUC {m.auc:.2f} on {m.examples} outcomes"
        if m is not None:
            out["auc"] = m.auc
            out["fail_rate"] = m.fail_rate
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out


async def _learnt_ceiling(inp: RouteInput, cls: str, start: Tier) -> Tier:
    """The highest tier the node would climb to from ``start`` for this input routed to
    ``cls``: its max tier, or the cascade ceiling the class learnt, else its key (a node
    that accepts its last answer unverified stops below a tier whose fixes are ruled out as
    not worth their price)."""
    ctx, stats = inp.ctx, inp.stats
    if ctx is None or stats is None:
        return 3
    policy = ctx.workflow.node_policy(ctx.node_id)
    top = policy.top_tier
    if policy.kind == "static" or policy.on_exhausted != "accept_unverified" or start >= top:
        return top
    evidence = await ceiling_evidence(stats, routed_key(inp.task_key, cls), inp.task_key)
    if evidence is None:
        return top
    yields, prices = evidence
    # adaptive's worth is a range it samples; the cascade's test takes its top
    return ceiling(yields, prices, start, top, worth=policy.fix_worth).top


_ITEM = re.compile(r"^\s*(?:[A-Za-z]|\d{1,2})[.)]\s|^\s*[-*•]\s")
"""A list item's opening: ``A. ``, ``3) ``, ``- ``."""


def text_shape(text: str) -> list[float]:
    """The shape of a prompt, which words miss: how many list items (options, steps) it
    has, how long its prose is, how many of its items hold numbers and how many numbers its
    prose has (computation fails cheap models more than recall). Each scaled to about
    [0, 1], as the n-gram rows are."""
    lines = [line for line in text.split("\n") if line.strip()]
    items = [line for line in lines if _ITEM.match(line)]
    prose = " ".join(line for line in lines if not _ITEM.match(line))
    numeric = sum(1 for line in items if any(ch.isdigit() for ch in line))
    return [
        min(len(items), 20) / 10,
        math.log1p(len(prose)) / 8,
        numeric / len(items) if items else 0.0,
        min(len(re.findall(r"\d+", prose)), 20) / 20,
    ]


class TextFeatures:
    """Word 1-2 grams of the text and character 3-5 grams of its opening, hashed (nothing
    is fitted or kept per vocabulary), the task key one-hot (the classifier is per node, the
    key may vary by input: each key gets its own intercept) and the text's shape
    (:func:`text_shape`). Remembers the last ``memo`` rows: an input is routed before it
    is learnt from. ``memo=None`` keeps every row (a replay's finite stream)."""

    def __init__(self, memo: int | None = 4096) -> None:
        self._limit = memo
        self._memo: dict[str, Any] = {}
        try:
            from sklearn.feature_extraction.text import HashingVectorizer
        except ImportError:
            raise DagtierUsageError(
                "the classifier router needs scikit-learn: pip install 'dagtier[router]'"
            ) from None
        self.words = HashingVectorizer(
            ngram_range=(1, 2), n_features=1 << 18, alternate_sign=False, norm="l2"
        )
        self.chars = HashingVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), n_features=1 << 16, alternate_sign=False
        )
        self.keys = HashingVectorizer(
            analyzer=lambda key: [key], n_features=1 << 12, alternate_sign=False, norm=None
        )

    def row(self, text: str, task_key: str) -> Any:
        row = self._memo.get(task_key + "\x00" + text)
        if row is not None:
            return row
        self.prime([(text, task_key)])
        return self._memo[task_key + "\x00" + text]

    def prime(self, items: Sequence[tuple[str, str]]) -> None:
        """Featurize many ``(text, task_key)`` at once (sklearn's per-call overhead is
        several times the work for one short text)."""
        from scipy.sparse import csr_matrix, hstack

        texts = [text for text, _ in items]
        # characters of the opening only: most of their signal at a fraction of the cost
        rows = hstack(
            [
                self.words.transform(texts),
                self.chars.transform([t[:256] for t in texts]),
                self.keys.transform([key for _, key in items]),
                csr_matrix([text_shape(t) for t in texts]),
            ],
            format="csr",
            dtype="float32",
        )
        if self._limit is not None and len(self._memo) + len(items) > self._limit:
            self._memo.clear()
        for i, (text, key) in enumerate(items):
            self._memo[key + "\x00" + text] = rows[i]


_C = 0.1
"""The logistic regression's inverse regularization. Strong: a few thousand noisy verdicts
against some 330,000 hashed columns (on MMLU-Pro's judged tier-1 answers, 0.1 ranked the
top fifth of failures 1.5-3 points more precisely than 0.5 or 1)."""


def _fit(rows: list[Any], labels: list[int]) -> _Model | None:
    """Logistic regression, Platt-calibrated on 3-fold cross-validated scores, whose AUC
    says how well the text ranks failures. None when only one label was seen."""
    import numpy as np
    from scipy.sparse import vstack
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    y = np.asarray(labels)
    if y.min() == y.max():
        return None
    x = vstack(rows, format="csr")
    model = LogisticRegression(C=_C, solver="liblinear").fit(x, y)
    scores = cross_val_predict(
        LogisticRegression(C=_C, solver="liblinear"), x, y, cv=3, method="decision_function"
    )
    platt = LogisticRegression(C=1e6).fit(scores.reshape(-1, 1), y)
    cv = 1.0 / (1.0 + np.exp(-np.clip(platt.coef_[0, 0] * scores + platt.intercept_[0], -500, 500)))
    return _Model(
        cv=cv,
        coef=model.coef_.ravel(),
        intercept=float(model.intercept_[0]),
        a=float(platt.coef_[0, 0]),
        b=float(platt.intercept_[0]),
        auc=float(roc_auc_score(y, scores)),
        examples=len(labels),
        fail_rate=float(y.mean()),
    )


# --- LLM ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LlmRouter:
    """A model of ``tier`` names the input's class. ``classes`` maps each declared class to
    its start tier (None: the policy's)."""

    classes: Mapping[str, Tier | None]
    tier: Tier = 1
    instructions: str = ""

    def prompt(self, text: str) -> str:
        names = ", ".join(self.classes)
        return (
            f"{self.instructions}\nClassify the input below into exactly one of these classes: "
            f"{names}. Answer with the class name only.\n\nInput:\n{text}"
        ).lstrip()

    async def route(self, inp: RouteInput) -> Route:
        ctx = inp.ctx
        if ctx is None:
            return Route(None, None, "abstains: no model to ask outside a run", "llm")
        from ..providers.base import CompletionRequest, Message

        request = CompletionRequest(
            (Message("user", self.prompt(inp.text)),),
            None,
            16,
            0.0,
            None,
            ctx.request.timeout_s,
            ctx.request.metadata,
        )
        try:
            call = await ctx.gateway.call(self.tier, request, ctx.call)
        except ProviderError as exc:
            return Route(None, None, f"abstains: the router model failed ({exc})", "llm")
        comp = call.completion
        ctx.attempts.append(
            Attempt(
                len(ctx.attempts),
                self.tier,
                call.model.name,
                call.model.provider,
                usage=comp.usage,
                cost=call.cost,
                latency_s=comp.latency_s,
                purpose=ROUTE_PURPOSE,
                output=comp.text,
            )
        )
        answer = comp.text.strip().strip(".\"'`*").strip()
        folded = {c.casefold(): c for c in self.classes}
        cls = folded.get(answer.casefold())
        if cls is None:
            shown = answer if len(answer) <= 40 else answer[:40] + "..."
            return Route(
                None,
                None,
                f"the router model answered {shown!r}, not one of {', '.join(self.classes)}: "
                "the node's policy decides",
                "llm",
            )
        return Route(cls, self.classes[cls], f"tier {self.tier} model says '{cls}'", "llm")

    async def learn(
        self, text: str, task_key: str, tier: Tier, passed: bool, cost: float | None = None
    ) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"kind": "llm", "tier": self.tier, "classes": list(self.classes)}


# --- hybrid ------------------------------------------------------------------------------------


class HybridRouter:
    """Rules, then the classifier, then the LLM: the first that does not abstain decides."""

    def __init__(self, *routers: Router) -> None:
        self.routers = routers

    async def route(self, inp: RouteInput) -> Route:
        why: list[str] = []
        for r in self.routers:
            route = await r.route(inp)
            if not route.abstained:
                if why:
                    route = Route(
                        route.cls, route.start, f"{route.reason} (after {'; '.join(why)})", route.by
                    )
                return route
            why.append(f"{route.by}: {route.reason}")
        return Route(None, None, "; ".join(why) or "no router", "hybrid")

    async def learn(
        self, text: str, task_key: str, tier: Tier, passed: bool, cost: float | None = None
    ) -> None:
        for r in self.routers:
            await r.learn(text, task_key, tier, passed, cost)

    def status(self) -> dict[str, Any]:
        return {"kind": "hybrid", "routers": [r.status() for r in self.routers]}


# --- applying a router to a node ------------------------------------------------------------


def routed_key(task_key: str, cls: str) -> str:
    """The task key of an input class: adaptive learns each class apart."""
    return f"{task_key}[{cls}]"


_RECENT_LIMIT = 4096
_recent: OrderedDict[tuple[str, str], tuple[Router, str, str]] = OrderedDict()
"""The routed input of the last runs' nodes, by (run id, node id): an outcome the
application reports later (:func:`~dagtier.record_outcome`) reaches the router that saw the
input. A router's model lives in memory, so this is per process, as the router is."""


async def apply_route(router: Router, ctx: NodeContext, upstream: Mapping[str, Any]) -> Route:
    """Route the node's input: set its class key and start floor, log the decision."""
    text = ctx.request.messages[-1].content
    _recent[(ctx.run_id, ctx.node_id)] = (router, text, ctx.task_key)
    _recent.move_to_end((ctx.run_id, ctx.node_id))
    while len(_recent) > _RECENT_LIMIT:
        _recent.popitem(last=False)
    route = await router.route(RouteInput(text, upstream, ctx.task_key, ctx.stats, ctx))
    ctx.route = route
    tier: Tier = route.start or 1
    if route.abstained:
        why = route.reason.removeprefix("abstains: ")
        ctx.decide(tier, f"router ({route.by}) abstains: {why}")
        return route
    ctx.base_key = ctx.task_key
    ctx.task_key = routed_key(ctx.task_key, route.cls)  # type: ignore[arg-type]
    start = f", start at tier {route.start} or above" if route.start else ""
    ctx.decide(tier, f"router ({route.by}): class '{route.cls}'{start}: {route.reason}")
    return route


async def learn_route(router: Router, ctx: NodeContext, first: int = 0) -> None:
    """Feed the router the judged answers of this node (from ``first`` on)."""
    text = ctx.request.messages[-1].content
    key = ctx.base_key or ctx.task_key
    for a in ctx.attempts[first:]:
        if a.purpose == "answer" and a.verdict in ("pass", "fail"):
            await router.learn(text, key, a.tier, a.verdict == "pass", a.cost)


async def learn_reported(
    run_id: str, node_id: str, tier: Tier, passed: bool, cost: float | None
) -> bool:
    """Feed an outcome the application reported to the router that routed the node's input
    in this process (False: none did, or it was too long ago to be remembered)."""
    seen = _recent.get((run_id, node_id))
    if seen is None:
        return False
    router, text, key = seen
    await router.learn(text, key, tier, passed, cost)
    return True


def start_floor(ctx: NodeContext, start: Tier, top: Tier) -> Tier:
    """The policy's start, raised to the router's start tier and to the run deadline's
    (never above ``top``)."""
    route = ctx.route
    floor = route.start if route is not None and route.start is not None else start
    if ctx.deadline_start is not None and ctx.deadline_start > floor:
        floor = ctx.deadline_start
    if floor <= start:
        return start
    return min(floor, top)


def floor_by(ctx: NodeContext, tier: Tier) -> str:
    """Who raised a node's start to ``tier`` (see :func:`start_floor`)."""
    return "the deadline" if ctx.deadline_start == tier else "the router"


def build_router(spec: RouterSpec) -> Router:
    """The router a node's ``router:`` describes (fresh: it learns from its plan's runs)."""
    starts = {name: (c.start if c is not None else None) for name, c in spec.classes.items()}
    rules = RulesRouter(
        [
            Rule.make(
                r.class_,
                start=starts.get(r.class_),
                min_chars=r.min_chars,
                max_chars=r.max_chars,
                pattern=r.pattern,
                keywords=tuple(r.keywords),
                field=r.field,
                equals=r.equals,
            )
            for r in spec.rules
        ]
    )
    c = spec.classifier
    classifier = (
        ClassifierRouter(
            cls=c.class_,
            threshold=c.threshold,
            min_examples=c.min_examples,
            skip_worth=c.skip_worth,
        )
        if c is not None
        else ClassifierRouter()
    )
    ls = spec.llm
    llm = LlmRouter(starts, tier=ls.tier if ls else 1, instructions=ls.instructions if ls else "")
    if spec.kind == "rules":
        return rules
    if spec.kind == "classifier":
        return classifier
    if spec.kind == "llm":
        return llm
    parts: list[Router] = [rules] if spec.rules else []
    parts.append(classifier)
    if spec.classes and ls is not None:
        parts.append(llm)
    return HybridRouter(*parts)
