"""dagtier's exceptions: one tree.

::

    DagtierError
      SpecError        the user's YAML or config is wrong; holds a list of SpecIssue
      GraphError       a cycle or an unknown dependency (also reported through SpecError)
      CatalogError     a model catalog is wrong or names an unknown model / tier
      ProviderError    a model call failed (.provider .model .retryable)
        ProviderConnectionError
          ProviderTimeout          no response arrived in time
        ProviderStatusError        the provider answered with an error status
          RateLimited   429 (.retry_after)
          Overloaded    529 / 503
          ServerError   other >= 500
          BadRequest    400 / 404 / 422
            ContextTooLong         the prompt does not fit the model's context window
          ContentFiltered          refused or filtered by the provider's safety system
          AuthError     401 / 403
        ProviderResponseError      a 200 whose body is unusable (malformed, empty)
        ModelUnavailable           no model of a tier could be called (after fallback)
      RunError         a run stopped: node failed, budget exhausted, interrupted
        RunNotFound                ``resume=`` names a run the store does not hold
        RunClaimed                 another live owner is running the run (resume refused)
        BudgetExhausted            the run's budget cannot cover the next call
          NodeBudgetExceeded       a node's own cap cannot (the node fails, the run goes on)
        StepError                  a code node, a command or a tool loop failed (the node fails)
      StoreError
    DagtierUsageError(TypeError)   Python code called dagtier wrongly
    DagtierWarning(UserWarning)    worth knowing, though the run goes on
      LocalFallbackWarning         a tier has no usable model: the embedded local model serves it
      NoStatsStoreWarning          an adaptive node runs with nowhere to keep what it learns

Constructors take the message first and every structured field as a keyword argument
(``SpecError`` takes only keywords: it builds its message from its issues), so every raise
site reads the same. ``tests/core/test_exceptions.py`` holds this drawing to the classes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .catalog import Usage
    from .store import RunOwner


class DagtierError(Exception):
    """Base of every error dagtier raises on purpose."""

    code: str = "dagtier-error"
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem in a spec file: where it is, what is wrong, how to fix it."""

    path: str
    """Field path like ``nodes.plan.depends_on[0]``; empty for the whole document."""
    message: str
    code: str
    """Stable kebab-case code, e.g. ``unknown-dependency``."""
    line: int | None = None
    """1-based line in the file, when known."""
    column: int | None = None
    hint: str | None = None

    def render(self) -> str:
        where = self.path or "(document)"
        if self.line is not None:
            where += f"  (line {self.line}, col {self.column or 1})"
        text = f"  {where}\n      {self.message}  [code={self.code}]"
        if self.hint:
            text += f"\n      hint: {self.hint}"
        return text


class SpecError(DagtierError):
    """The workflow or catalog file is invalid. ``issues`` lists every problem found."""

    code = "spec-invalid"

    def __init__(self, *, source: str, issues: Sequence[SpecIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        n = len(self.issues)
        title = f"{n} problem{'s' if n != 1 else ''} in {source}"
        body = "\n".join(i.render() for i in self.issues)
        super().__init__(f"{title}\n{body}")


class GraphError(DagtierError):
    """The workflow's dependencies do not form a DAG."""

    code = "graph-invalid"

    def __init__(self, message: str, *, cycle: Sequence[str] = ()) -> None:
        self.cycle = list(cycle)
        super().__init__(message)


class CatalogError(DagtierError):
    code = "catalog-invalid"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.hint = hint
        super().__init__(message)


class ProviderError(DagtierError):
    """A model call failed. ``retryable`` says whether trying again may help."""

    code = "provider-error"
    retryable: bool = False
    cost: float = 0.0
    """USD the failed call(s) were billed anyway (an unusable 200 is billed by its usage;
    for :class:`ModelUnavailable`, every failed try of the call). Not a refund estimate."""
    failures: Sequence[ProviderError] = ()
    """For :class:`ModelUnavailable`: every failed try of the call, oldest first."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable
        details = []
        if status_code is not None:
            details.append(f"status {status_code}")
        if request_id:
            details.append(f"request id {request_id}")
        if retry_after is not None:
            details.append(f"retry-after {retry_after:g}s")
        text = f"{provider}/{model}: {message}"
        super().__init__(f"{text} ({', '.join(details)})" if details else text)

    @property
    def failure_code(self) -> str:
        """The code of what went wrong underneath (for exit codes and reports)."""
        return self.code


class ProviderConnectionError(ProviderError):
    code = "provider-connection"
    retryable = True


class ProviderTimeout(ProviderConnectionError):
    code = "provider-timeout"


class ProviderStatusError(ProviderError):
    code = "provider-status"


class RateLimited(ProviderStatusError):
    code = "provider-rate-limited"
    retryable = True


class Overloaded(ProviderStatusError):
    code = "provider-overloaded"
    retryable = True


class ServerError(ProviderStatusError):
    code = "provider-server-error"
    retryable = True


class BadRequest(ProviderStatusError):
    code = "provider-bad-request"


class ContextTooLong(BadRequest):
    code = "provider-context-too-long"


class ContentFiltered(ProviderStatusError):
    code = "provider-content-filtered"


class AuthError(ProviderStatusError):
    code = "provider-auth"
    hint = "check the API key named by the model's api_key_env in the catalog"


class ProviderResponseError(ProviderError):
    """A 200 whose body is unusable (malformed JSON, no content). Retryable: often transient."""

    code = "provider-bad-response"
    retryable = True
    usage: Usage | None = None
    """The response's token usage, when its body reported one (an empty answer does)."""


class ModelUnavailable(ProviderError):
    """Every model of a tier failed or is switched off (circuit open, no key)."""

    code = "model-unavailable"

    @property
    def failure_code(self) -> str:
        # the last model's own error says what to fix (a refused key, a rate limit)
        cause = self.__cause__
        return cause.failure_code if isinstance(cause, ProviderError) else self.code


class RunError(DagtierError):
    code = "run-failed"

    def __init__(
        self, message: str, *, run_id: str | None = None, node_id: str | None = None
    ) -> None:
        self.run_id = run_id
        self.node_id = node_id
        super().__init__(message)


class RunNotFound(RunError):
    """``resume=RUN_ID`` names a run the store does not hold (a usage error: exit 2)."""

    code = "run-not-found"


class RunClaimed(RunError):
    """Another live process (or another task of this one) is running the run: starting it
    here too would pay for its nodes twice. ``.holder`` is that owner (host, pid, token)."""

    code = "run-claimed"

    def __init__(self, *, run_id: str, holder: RunOwner | None) -> None:
        self.holder = holder
        who = (
            f"process {holder.pid} on {holder.host}"
            + (" (this process)" if holder.pid == os.getpid() else "")
            if holder is not None
            else "another process"
        )
        super().__init__(
            f"run '{run_id}' is already being run by {who}; running it here too would pay for "
            "its nodes twice\nhint: wait for that process to end (or stop it), then resume "
            "again",
            run_id=run_id,
        )


class BudgetExhausted(RunError):
    code = "budget-exhausted"


class NodeBudgetExceeded(BudgetExhausted):
    code = "node-budget-exceeded"


class StepError(RunError):
    """A node's own code failed: a ``run`` function raised, a ``command`` exited non-zero or
    was not found, a tool loop called an undeclared tool or returned what JSON cannot hold.
    The node fails; the run's other branches go on."""

    code = "step-failed"

    @property
    def failure_code(self) -> str:
        """The code of what went wrong (for exit codes and reports), as ProviderError's."""
        return self.code


class StoreError(DagtierError):
    code = "store-error"


class DagtierUsageError(TypeError):
    """dagtier's Python API was called wrongly (a programming error, not a user-data error)."""


class DagtierWarning(UserWarning):
    """Something a program embedding dagtier should know; the run goes on. Warnings are
    emitted with :mod:`warnings`, so the usual filters apply (each shows once by default)."""


class LocalFallbackWarning(DagtierWarning):
    """None of a tier's models can be called here (no API key set), so the catalog's
    embedded local model serves the tier: small, free, and no judge of quality."""


class NoStatsStoreWarning(DagtierWarning):
    """An adaptive node ran without a store that outlives the run: what it learnt about
    its task is lost, and the next run starts from nothing."""
