"""dagtier: run LLM agent workflows declared as YAML DAGs, each node on the cheapest model
tier that does the job.

>>> import dagtier
>>> wf = dagtier.load_workflow("workflows/extract_contact.yaml")
>>> result = await dagtier.run(wf, {"text": "..."})          # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._exceptions import (
    AuthError,
    BadRequest,
    BudgetExhausted,
    CatalogError,
    ContentFiltered,
    ContextTooLong,
    DagtierError,
    DagtierUsageError,
    DagtierWarning,
    GraphError,
    LocalFallbackWarning,
    ModelUnavailable,
    NodeBudgetExceeded,
    NoStatsStoreWarning,
    Overloaded,
    ProviderConnectionError,
    ProviderError,
    ProviderResponseError,
    ProviderStatusError,
    ProviderTimeout,
    RateLimited,
    RunClaimed,
    RunError,
    RunNotFound,
    ServerError,
    SpecError,
    SpecIssue,
    StepError,
    StoreError,
)

if TYPE_CHECKING:
    from .agent import AgentContext
    from .batch import BatchSummary, ItemResult, batch_results, run_batch
    from .catalog import Catalog, ModelEntry, Price, Usage, catalog_from_dict, load_catalog
    from .events import EventBus
    from .executor import run
    from .plan import Plan, compile_workflow
    from .policies import record_outcome
    from .providers import Completion, CompletionRequest, Gateway, Provider, PythonProvider
    from .results import Attempt, CheckResult, NodeResult, RunResult
    from .spec import Workflow, json_schema, load_workflow, parse_workflow
    from .store import MemoryStore, ResultCache, RunStore, StatsStore, open_store
    from .store.sqlite import SqliteStore

# Public names are imported on first use: `import dagtier` stays fast (pydantic, networkx,
# jinja2 and structlog cost a few hundred ms together; provider SDKs more).
_LAZY: dict[str, str] = {
    "AgentContext": "agent",
    "BatchSummary": "batch",
    "ItemResult": "batch",
    "batch_results": "batch",
    "run_batch": "batch",
    "Catalog": "catalog",
    "ModelEntry": "catalog",
    "Price": "catalog",
    "Usage": "catalog",
    "catalog_from_dict": "catalog",
    "load_catalog": "catalog",
    "EventBus": "events",
    "run": "executor",
    "Plan": "plan",
    "compile_workflow": "plan",
    "Completion": "providers",
    "CompletionRequest": "providers",
    "Gateway": "providers",
    "Provider": "providers",
    "PythonProvider": "providers",
    "Attempt": "results",
    "CheckResult": "results",
    "NodeResult": "results",
    "RunResult": "results",
    "Workflow": "spec",
    "json_schema": "spec",
    "load_workflow": "spec",
    "parse_workflow": "spec",
    "MemoryStore": "store",
    "ResultCache": "store",
    "RunStore": "store",
    "StatsStore": "store",
    "open_store": "store",
    "SqliteStore": "store.sqlite",
    "record_outcome": "policies",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dagtier' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = (
    "AgentContext",
    "Attempt",
    "AuthError",
    "BadRequest",
    "BatchSummary",
    "BudgetExhausted",
    "Catalog",
    "CatalogError",
    "CheckResult",
    "Completion",
    "CompletionRequest",
    "ContentFiltered",
    "ContextTooLong",
    "DagtierError",
    "DagtierUsageError",
    "DagtierWarning",
    "EventBus",
    "Gateway",
    "GraphError",
    "ItemResult",
    "LocalFallbackWarning",
    "MemoryStore",
    "ModelEntry",
    "ModelUnavailable",
    "NoStatsStoreWarning",
    "NodeBudgetExceeded",
    "NodeResult",
    "Overloaded",
    "Plan",
    "Price",
    "Provider",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderResponseError",
    "ProviderStatusError",
    "ProviderTimeout",
    "PythonProvider",
    "RateLimited",
    "ResultCache",
    "RunClaimed",
    "RunError",
    "RunNotFound",
    "RunResult",
    "RunStore",
    "ServerError",
    "SpecError",
    "SpecIssue",
    "SqliteStore",
    "StatsStore",
    "StepError",
    "StoreError",
    "Usage",
    "Workflow",
    "__version__",
    "batch_results",
    "catalog_from_dict",
    "compile_workflow",
    "json_schema",
    "load_catalog",
    "load_workflow",
    "open_store",
    "parse_workflow",
    "record_outcome",
    "run",
    "run_batch",
)
