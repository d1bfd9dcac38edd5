"""The workflow format as frozen pydantic models (the JSON Schema is generated from these)."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .._callables import SPEC_PATTERN
from .._types import TIERS, FixWorth
from .._types import Tier as _Tier

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_CONCURRENCY = 1024
"""More nodes calling models at once than any provider's rate limit admits."""
_ID_RE = re.compile(ID_PATTERN)


def _check_tier(value: Any) -> Any:
    # before pydantic's literal check, whose "Input should be 1, 2 or 3" says nothing of
    # what a tier is; the error type becomes the issue code 'unknown-tier'
    if isinstance(value, bool) or value not in TIERS:
        raise PydanticCustomError(
            "unknown_tier",
            "tier must be 1, 2 or 3 (1 cheap, 2 mid, 3 frontier), got {value}",
            {"value": repr(value)},
        )
    return value


Tier = Annotated[_Tier, BeforeValidator(_check_tier)]
"""A model tier as written in a workflow: 1, 2 or 3, with a message that says what they are."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


# --- inputs -----------------------------------------------------------------------------

InputType = Literal["string", "integer", "number", "boolean", "object", "array"]


class InputSpec(_Model):
    """A declared workflow input. ``inputs: {code: string}`` is short for ``{type: string}``."""

    type: InputType = "string"
    required: bool = True
    default: Any = None
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_means_optional(self) -> InputSpec:
        if self.default is not None and "required" not in self.model_fields_set:
            object.__setattr__(self, "required", False)
        return self


# --- checks -----------------------------------------------------------------------------


class NonEmptyCheck(_Model):
    """The output is not blank."""

    type: Literal["non_empty"]


class JsonCheck(_Model):
    """The output parses as JSON."""

    type: Literal["json"]


class JsonSchemaCheck(_Model):
    """The output is JSON valid against ``schema`` (default: the node's output schema)."""

    type: Literal["json_schema"]
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )


class RegexCheck(_Model):
    """The output matches (``must_match: true``) or does not match ``pattern``."""

    type: Literal["regex"]
    pattern: str
    must_match: bool = True

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class LengthCheck(_Model):
    """The output's length in characters lies within [min, max]."""

    type: Literal["length"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _min_le_max(self) -> LengthCheck:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise PydanticCustomError(
                "impossible_check",
                "min {min} is above max {max}: no answer could pass this check",
                {"min": self.min, "max": self.max, "hint": "set min <= max"},
            )
        return self


CallableRef = Annotated[str, Field(pattern=SPEC_PATTERN)]
"""``module:function``: importable from ``sys.path`` or the workflow file's directory."""


def _check_argv(value: Any) -> Any:
    # a shell string would have to be split, and quoting rules differ by shell: refuse it
    # with the list it should be, instead of pydantic's bare "Input should be a valid list"
    if isinstance(value, str):
        raise PydanticCustomError(
            "command_not_a_list",
            "command must be a list of arguments, not a string (nothing is split by a shell); "
            "write it as {suggestion}",
            {"suggestion": "[" + ", ".join(value.split()) + "]"},
        )
    if isinstance(value, list) and not value:
        raise PydanticCustomError(
            "command_not_a_list", "command is empty; give at least the program to run"
        )
    if isinstance(value, list) and not all(isinstance(v, str | int | float) for v in value):
        raise PydanticCustomError(
            "command_not_a_list",
            "every argument of command must be a string, got {value}",
            {"value": repr(value)},
        )
    if isinstance(value, list):
        return [str(v) for v in value]
    return value


Argv = Annotated[list[str], BeforeValidator(_check_argv)]
"""A subprocess's argv as a YAML list; each item is a template (``{{ inputs.path }}``)."""


class PythonCheck(_Model):
    """A user function ``module:function`` taking the output (and the node id) and returning
    ``bool`` or ``(bool, reason)``."""

    type: Literal["python"]
    function: CallableRef


class CommandCheck(_Model):
    """A subprocess that must exit 0: the answer is in the file ``{{ answer_file }}`` names
    (also ``$DAGTIER_ANSWER_FILE``), and the arguments may use inputs and upstream outputs.
    The tail of its output is the failing check's reason (what a cascade escalates on)."""

    type: Literal["command"]
    command: Argv
    cwd: str | None = None
    env: dict[str, str] | None = None
    timeout_s: float = Field(default=300, gt=0)


class JudgeCheck(_Model):
    """An LLM judge on ``tier`` (default 1) that must answer PASS or FAIL."""

    type: Literal["judge"]
    tier: Tier = 1
    prompt: str | None = None
    """Overrides the default judge prompt; may use {{ task }} and {{ answer }}."""
    min_score: float | None = Field(default=None, ge=0, le=1)


Check = Annotated[
    NonEmptyCheck
    | JsonCheck
    | JsonSchemaCheck
    | RegexCheck
    | LengthCheck
    | PythonCheck
    | CommandCheck
    | JudgeCheck,
    Field(discriminator="type"),
]

# --- policies ---------------------------------------------------------------------------


def _check_fix_worth(value: Any) -> Any:
    # a [low, high] range arrives from YAML as a list; pydantic's tuple errors would not say
    # what the two numbers mean
    if isinstance(value, list | tuple):
        if len(value) != 2 or not all(_positive_number(v) for v in value):
            raise PydanticCustomError(
                "bad_fix_worth",
                "fix_worth must be a number or [low, high] of numbers > 0 (calls of the max "
                "tier a fixed answer is worth), got {value}",
                {"value": repr(value)},
            )
        low, high = value
        if low > high:
            raise PydanticCustomError(
                "bad_fix_worth",
                "fix_worth [low, high] has low {low} above high {high}; write [{high}, {low}]",
                {"low": low, "high": high},
            )
        return (float(low), float(high))
    if not _positive_number(value):
        raise PydanticCustomError(
            "bad_fix_worth",
            "fix_worth must be a number > 0 (calls of the max tier a fixed answer is worth), "
            "or a [low, high] range, got {value}",
            {"value": repr(value)},
        )
    return float(value)


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


FixWorthField = Annotated[FixWorth, BeforeValidator(_check_fix_worth)]
"""``fix_worth`` as written in a workflow: a number or ``[low, high]`` (see
:mod:`dagtier.policies.escalation`)."""


class _PolicyModel(_Model):
    """What every policy knows about itself, whatever its fields are called in YAML
    (``tier``; ``start``/``max``; ``min_tier``/``max_tier``)."""

    @property
    def start_tier(self) -> _Tier:
        """The lowest tier the node may run on (where it starts without evidence)."""
        raise NotImplementedError

    @property
    def top_tier(self) -> _Tier:
        """The highest tier the node may run on: where it meets its checks without routing."""
        raise NotImplementedError

    @property
    def tiers(self) -> tuple[_Tier, ...]:
        """Every tier an answer of the node may come from, lowest first."""
        return tuple(t for t in TIERS if self.start_tier <= t <= self.top_tier)

    def may_use(self, tier: int) -> bool:
        return self.start_tier <= tier <= self.top_tier

    @property
    def label(self) -> str:
        """The policy in a few characters (``dagtier graph``, reports, logs)."""
        raise NotImplementedError

    def as_cascade(self) -> CascadePolicy:
        """The cascade this node would run as: its own, else the default one (tiers 1-3)."""
        return CascadePolicy(kind="cascade")

    def as_adaptive(self) -> AdaptivePolicy:
        """The adaptive policy this node would run as: its own, else the default one (tiers
        1-3, target 0.9, 1% canary)."""
        return AdaptivePolicy(kind="adaptive")


class StaticPolicy(_PolicyModel):
    """Always run on ``tier``."""

    kind: Literal["static"]
    tier: Tier

    @property
    def start_tier(self) -> _Tier:
        return self.tier

    @property
    def top_tier(self) -> _Tier:
        return self.tier

    @property
    def label(self) -> str:
        return f"static T{self.tier}"


class CascadePolicy(_PolicyModel):
    """Run on ``start``; when the output fails its checks, escalate one tier, up to ``max``."""

    kind: Literal["cascade"]
    start: Tier = 1
    max: Tier = 3
    on_exhausted: Literal["fail", "accept_unverified"] = "fail"
    """What happens when even the max tier fails its checks."""
    fix_worth: float = Field(default=2.0, gt=0)
    """With ``on_exhausted: accept_unverified``: escalate to a tier while an answer it fixes
    costs at most this many calls of the max tier (learnt per task key); quality first."""

    @model_validator(mode="after")
    def _start_le_max(self) -> CascadePolicy:
        if self.start > self.max:
            raise PydanticCustomError(
                "impossible_policy",
                "start tier {start} is above max tier {max}: the cascade could never run; "
                "set start <= max (e.g. start: {max})",
                {"start": self.start, "max": self.max},
            )
        return self

    @property
    def start_tier(self) -> _Tier:
        return self.start

    @property
    def top_tier(self) -> _Tier:
        return self.max

    @property
    def label(self) -> str:
        return f"cascade T{self.start}→T{self.max}"

    def as_cascade(self) -> CascadePolicy:
        return self


class AdaptivePolicy(_PolicyModel):
    """Learn per task which is the cheapest tier that meets ``target`` success."""

    kind: Literal["adaptive"]
    target: float = Field(default=0.9, gt=0, le=1)
    min_tier: Tier = 1
    max_tier: Tier = 3
    canary: float = Field(default=0.01, ge=0, le=1)
    """Share of runs that also run the top tier to watch for silent quality drops."""
    half_life: float = Field(default=50, gt=0)
    """Evidence fades: an observation counts half after this many newer ones."""
    on_exhausted: Literal["fail", "accept_unverified"] = "fail"
    fix_worth: FixWorthField = (1.0, 3.0)
    """With ``on_exhausted: accept_unverified``: what an answer fixed by escalating is worth,
    in calls of the max tier; a range spreads the belief, each run drawing from it (cost aware)."""

    @model_validator(mode="after")
    def _min_le_max(self) -> AdaptivePolicy:
        if self.min_tier > self.max_tier:
            raise PydanticCustomError(
                "impossible_policy",
                "min_tier {min_tier} is above max_tier {max_tier}: no tier is allowed; "
                "set min_tier <= max_tier",
                {"min_tier": self.min_tier, "max_tier": self.max_tier},
            )
        return self

    @property
    def start_tier(self) -> _Tier:
        return self.min_tier

    @property
    def top_tier(self) -> _Tier:
        return self.max_tier

    @property
    def label(self) -> str:
        return f"adaptive T{self.min_tier}–T{self.max_tier} ≥{self.target:g}"

    def as_adaptive(self) -> AdaptivePolicy:
        return self


Policy = Annotated[StaticPolicy | CascadePolicy | AdaptivePolicy, Field(discriminator="kind")]

# --- nodes ------------------------------------------------------------------------------


# --- routers --------------------------------------------------------------------------------


class RouterClass(_Model):
    """A declared input class."""

    start: Tier | None = None
    """The tier inputs of this class start at (a floor for the policy); none: the policy's."""


class RouterRule(_Model):
    """A rule of a ``rules`` router: every condition given must hold; the first rule that
    matches names the input's class."""

    class_: str = Field(alias="class")
    min_chars: int | None = Field(default=None, ge=0)
    max_chars: int | None = Field(default=None, ge=0)
    pattern: str | None = None
    """A regular expression searched in the rendered input."""
    keywords: list[str] = Field(default_factory=list)
    """Any of these words (case-insensitive)."""
    field: str | None = None
    """An upstream node's output field, ``node`` or ``node.key``: must equal ``equals``, or
    be truthy when ``equals`` is not given."""
    equals: Any = None


class ClassifierSettings(_Model):
    class_: str = Field(default="hard", alias="class")
    """The class it gives inputs the cheapest tier is likely to fail (their start: one tier up)."""
    threshold: float | None = Field(default=None, ge=0, le=1)
    """Route when the calibrated chance of failure reaches this; none: break even on the
    tiers' recorded prices."""
    min_examples: int = Field(default=200, ge=1)
    """It abstains until this many of the node's answers were judged."""
    skip_worth: float = Field(default=0.0, ge=0)
    """With no ``threshold``: what avoiding one escalation (a cheap answer thrown away, and
    its round trip) is worth, in calls of the node's max tier. 0: route only where it pays
    in money; 0.01-0.03 trades a little quality for far fewer wasted attempts."""


class LlmRouterSettings(_Model):
    tier: Tier = 1
    instructions: str = ""


class RouterSpec(_Model):
    """``router:`` on a node: classify the rendered input before any model runs."""

    kind: Literal["rules", "classifier", "llm", "hybrid"]
    classes: dict[str, RouterClass | None] = Field(default_factory=dict)
    rules: list[RouterRule] = Field(default_factory=list)
    classifier: ClassifierSettings | None = None
    llm: LlmRouterSettings | None = None


class OutputSpec(_Model):
    """``output: text`` or ``output: json`` or ``output: {schema: {...}}`` (JSON with a schema)."""

    format: Literal["text", "json"] = "text"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"format": value}
        if isinstance(value, dict) and "schema" in value and "format" not in value:
            return {**value, "format": "json"}
        return value

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from jsonschema import Draft202012Validator, SchemaError

            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as exc:
                raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        return value


class NodeSettings(_Model):
    """Settings a node may take from ``defaults``."""

    policy: Policy | None = None
    checks: list[Check] | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    timeout_s: float | None = Field(default=None, gt=0)
    cache: bool | None = None
    budget: float | None = Field(default=None, gt=0)
    """Per-node spending cap in USD (all attempts and judge calls)."""


NodeKind = Literal["prompt", "run", "command", "agent"]
_KINDS: tuple[NodeKind, ...] = ("prompt", "run", "command", "agent")


class Node(NodeSettings):
    """One step of the workflow. Its kind is the one of these it sets:

    - ``prompt``: a prompt sent to a model chosen by the node's policy (with ``tools``, the
      model may call Python functions over several turns);
    - ``run``: a Python function ``module:function`` (no model);
    - ``command``: a subprocess (no model); a non-zero exit fails the node;
    - ``agent``: a Python function driving its own agent loop through dagtier's gateway,
      on the tier the node's policy chooses.
    """

    prompt: str | None = Field(default=None, min_length=1)
    system: str | None = None
    run: CallableRef | None = None
    """``module:function`` called with the inputs and upstream outputs its parameters name."""
    command: Argv | None = None
    """A subprocess's arguments; output ``{stdout, stderr, exit_code}``."""
    cwd: str | None = None
    """``command``: the working directory (a template)."""
    env: dict[str, str] | None = None
    """``command``: variables added to the environment (values are templates)."""
    agent: CallableRef | None = None
    """``module:function`` taking an :class:`~dagtier.AgentContext`; returns the answer."""
    tools: list[CallableRef] = Field(default_factory=list)
    """``prompt`` and ``agent`` nodes: Python functions the model may call."""
    max_turns: int = Field(default=10, gt=0)
    """A tool loop's model calls per attempt; past it the loop has stalled."""
    stall_turns: int = Field(default=3, gt=0)
    """A tool loop whose calls only repeat earlier ones for this many turns has stalled: a
    cascade continues the conversation one tier up."""
    on_stall: Literal["continue", "restart"] = "continue"
    """When a stalled loop escalates: the next tier continues its conversation, or starts
    over (``bench/agent_loop.py`` measures both)."""
    tool_timeout_s: float = Field(default=60, gt=0)
    """Each tool call's time limit; past it the model gets an error result."""
    depends_on: list[str] = Field(default_factory=list)
    task: str | None = None
    """A label (classification, extraction, code, ...) that shares learning across workflows."""
    router: RouterSpec | None = None
    """Classifies the rendered input before the policy runs: its class joins the task key,
    its start tier is a floor (see dagtier.policies.routers)."""
    output: OutputSpec = OutputSpec()
    description: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Node:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if not given:
            raise PydanticCustomError(
                "missing_node_kind",
                "a node needs one of prompt (a model call), run (a Python function), "
                "command (a subprocess) or agent",
            )
        if len(given) != 1:
            raise PydanticCustomError(
                "node_kind",
                "a node sets exactly one of prompt, run, command, agent; this one sets {given}",
                {"given": ", ".join(given) or "none"},
            )
        kind = given[0]
        if kind != "command" and (self.cwd is not None or self.env is not None):
            raise PydanticCustomError(
                "node_kind",
                "cwd and env belong to command nodes; this is a {kind} node",
                {"kind": kind},
            )
        if self.tools and kind not in ("prompt", "agent"):
            raise PydanticCustomError(
                "node_kind",
                "tools belong to prompt and agent nodes; this is a {kind} node",
                {"kind": kind},
            )
        if self.system is not None and kind != "prompt":
            raise PydanticCustomError(
                "node_kind",
                "system belongs to prompt nodes; this is a {kind} node",
                {"kind": kind},
            )
        return self

    @property
    def kind(self) -> NodeKind:
        """Which of prompt, run, command, agent the node is (the executor dispatches on it)."""
        for k in _KINDS:
            if getattr(self, k) is not None:
                return k
        raise AssertionError("validated: a node has a kind")  # pragma: no cover

    @property
    def uses_model(self) -> bool:
        return self.kind in ("prompt", "agent")

    def templates(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every template of the node with its field path: prompt, system, a command's
        arguments, cwd and env values."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if self.prompt is not None:
            out.append((("prompt",), self.prompt))
        if self.system is not None:
            out.append((("system",), self.system))
        for i, arg in enumerate(self.command or ()):
            out.append((("command", i), arg))
        if self.cwd is not None:
            out.append((("cwd",), self.cwd))
        for k, v in (self.env or {}).items():
            out.append((("env", k), v))
        return out


DEFAULT_POLICY = StaticPolicy(kind="static", tier=1)
DEFAULT_MAX_TOKENS = 1024


class Workflow(_Model):
    """A workflow file. Nodes are keyed by id; order in the file does not matter."""

    name: str = Field(min_length=1)
    description: str | None = None
    version: int = 1
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    defaults: NodeSettings = NodeSettings()
    nodes: dict[str, Node]
    outputs: dict[str, str] = Field(default_factory=dict)
    """Named results built from node outputs with the same template syntax as prompts."""
    budget: float | None = Field(default=None, gt=0)
    """Run budget in USD: no call starts that could take spending past it."""
    concurrency: int = Field(default=16, gt=0)
    """Most nodes calling models at once (at most ``MAX_CONCURRENCY``)."""
    fail_fast: bool = False
    deadline_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Seconds a run should end within: critical nodes whose policy would likely miss it
    start higher (see :mod:`dagtier.policies.deadline`). *Added in issue 16.*"""
    _source: str = PrivateAttr(default="<workflow>")
    _positions: dict[Any, tuple[int, int]] = PrivateAttr(default_factory=dict)
    """YAML positions by field path (for messages about fields after loading)."""

    @property
    def source(self) -> str:
        """The file the workflow came from (for messages)."""
        return self._source

    @field_validator("concurrency")
    @classmethod
    def _concurrency_bounded(cls, value: int) -> int:
        if value > MAX_CONCURRENCY:
            raise PydanticCustomError(
                "value_too_large",
                "concurrency {value} is more than {max} nodes calling models at once",
                {
                    "value": value,
                    "max": MAX_CONCURRENCY,
                    "hint": "providers refuse far fewer concurrent calls (429); try 16 to 64",
                },
            )
        return value

    @field_validator("deadline_s", mode="before")
    @classmethod
    def _deadline_seconds(cls, value: Any) -> Any:
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and not (math.isfinite(value) and value > 0)
        ):
            raise PydanticCustomError(
                "value_too_small" if value <= 0 else "finite_number",
                "deadline_s must be a number of seconds above 0, got {value}",
                {
                    "value": value,
                    "hint": "deadline_s: 30 asks the run to end within 30 s; "
                    "leave it out for no deadline",
                },
            )
        return value

    @field_validator("nodes")
    @classmethod
    def _not_empty(cls, value: dict[str, Node]) -> dict[str, Node]:
        if not value:
            raise PydanticCustomError(
                "empty_workflow", "the workflow has no nodes; add at least one under 'nodes:'"
            )
        return value

    # --- resolved view: what a node actually runs with -----------------------------------

    def node_policy(self, node_id: str) -> StaticPolicy | CascadePolicy | AdaptivePolicy:
        return self.nodes[node_id].policy or self.defaults.policy or DEFAULT_POLICY

    def node_checks(self, node_id: str) -> list[Any]:
        node = self.nodes[node_id]
        if node.checks is not None:
            return list(node.checks)
        return list(self.defaults.checks or [])

    def node_label(self, node_id: str) -> str:
        """A node in a few characters: its policy's label (``cascade T1→T3``), or its kind
        for code (``run``, ``command``: no model, no policy). ``dagtier graph``, reports
        and logs show it."""
        kind = self.nodes[node_id].kind
        if kind in ("run", "command"):
            return kind
        return self.node_policy(node_id).label

    def task_key(self, node_id: str) -> str:
        """The key a node's learning is filed under: its ``task:`` label, else
        ``workflow/node``."""
        return self.nodes[node_id].task or f"{self.name}/{node_id}"

    def node_setting(self, node_id: str, field: str) -> Any:
        """A node's own value for ``field``, else the workflow default, else the built-in one."""
        value = getattr(self.nodes[node_id], field)
        if value is None:
            value = getattr(self.defaults, field)
        if value is None and field == "max_tokens":
            value = DEFAULT_MAX_TOKENS
        return value


def is_identifier(name: str) -> bool:
    return bool(_ID_RE.match(name))
