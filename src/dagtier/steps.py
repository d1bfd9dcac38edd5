"""Code nodes: a Python function (``run:``) or a subprocess (``command:``), no model.

They take the run's inputs and upstream outputs like a prompt node, and their result is
stored like any node's, so a resumed run never repeats them. Any failure is a
:class:`~dagtier.StepError` naming what failed: the node fails, other branches go on.

``run: module:function`` gets keyword arguments by parameter name: an upstream node's id
gets that node's output, an input's name gets the input's value, ``inputs`` gets them all.
A sync function runs in a worker thread (so a slow one does not stall other nodes); the
return value must be JSON (it is stored).

``command: [argv...]`` renders each argument as a template, runs the program without a
shell in its own process group (a timeout kills the group: test runners spawn children),
and outputs ``{"stdout", "stderr", "exit_code"}``. A non-zero exit fails the node with the
tail of its output.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from io import BytesIO
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.to_thread

from ._exceptions import DagtierError, StepError
from ._types import JSON

if TYPE_CHECKING:
    from .spec.models import Node

__all__ = [
    "CommandResult",
    "call_function",
    "function_arguments",
    "run_command",
    "signature_problem",
]

TAIL_LINES = 30
"""Lines of a failed command's output kept in the node's error (the end is what matters)."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float

    def as_output(self) -> dict[str, Any]:
        return {"stdout": self.stdout, "stderr": self.stderr, "exit_code": self.exit_code}

    def tail(self) -> str:
        """The last lines of the output (stderr when it has any, else stdout)."""
        text = self.stderr.strip() or self.stdout.strip()
        lines = text.splitlines()[-TAIL_LINES:]
        return "\n".join(lines)

    def failure(self) -> str:
        tail = self.tail()
        return f"command {_show(self.argv)} exited with code {self.exit_code}" + (
            f":\n{tail}" if tail else " (no output)"
        )


def _show(argv: Sequence[str]) -> str:
    shown = " ".join(argv)
    return f"'{shown[:200]}{'...' if len(shown) > 200 else ''}'"


async def run_command(
    argv: Sequence[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
) -> CommandResult:
    """Run a program to completion and capture its output; a non-zero exit is returned,
    not raised (the caller decides what it means).

    Cancellation kills the process group and waits for it.

    Raises:
        StepError: the program is not found or cannot start, or it ran past ``timeout_s``
            (it is killed).
    """
    argv = tuple(argv)
    full_env = {**os.environ, **env} if env else None
    t0 = time.perf_counter()
    try:
        process = await anyio.open_process(
            argv,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        if cwd is not None and exc.filename == cwd:
            raise StepError(
                f"command {_show(argv)}: working directory '{cwd}' does not exist"
            ) from None
        raise StepError(
            f"command not found: '{argv[0]}' ({exc.strerror}); check the spelling and PATH"
        ) from None
    except OSError as exc:
        raise StepError(f"command {_show(argv)} could not start: {exc}") from None
    out, err = BytesIO(), BytesIO()
    try:
        with anyio.fail_after(timeout_s):
            async with anyio.create_task_group() as tg:
                assert process.stdout is not None and process.stderr is not None
                tg.start_soon(_drain, process.stdout, out)
                tg.start_soon(_drain, process.stderr, err)
                await process.wait()
    except TimeoutError:
        await _kill(process)
        raise StepError(
            f"command {_show(argv)} did not finish within {timeout_s:g}s and was killed"
            + (f"; its last output:\n{_tail(out, err)}" if _tail(out, err) else "")
        ) from None
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _kill(process)
        raise
    return CommandResult(
        argv,
        process.returncode if process.returncode is not None else -1,
        out.getvalue().decode("utf-8", "replace"),
        err.getvalue().decode("utf-8", "replace"),
        time.perf_counter() - t0,
    )


async def _drain(stream: anyio.abc.ByteReceiveStream, buf: BytesIO) -> None:
    async for chunk in stream:
        buf.write(chunk)


def _tail(out: BytesIO, err: BytesIO) -> str:
    text = (err.getvalue() or out.getvalue()).decode("utf-8", "replace").strip()
    return "\n".join(text.splitlines()[-TAIL_LINES:])


async def _kill(process: anyio.abc.Process) -> None:
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
    with anyio.CancelScope(shield=True):
        await process.aclose()


async def run_command_check(
    argv: Sequence[str],
    answer: str,
    *,
    cwd: str | None,
    env: Mapping[str, str] | None,
    timeout_s: float,
    render: Callable[[str, str], str],
) -> tuple[bool, str]:
    """Run a ``command`` check on ``answer``: its text goes to a temporary file named by
    ``{{ answer_file }}`` and ``$DAGTIER_ANSWER_FILE``; exit 0 passes.

    ``render(template, answer_file)`` renders one argument. A command that is not found or
    times out fails the check with that reason (the answer is what is being judged).
    """
    with tempfile.TemporaryDirectory(prefix="dagtier-check-") as tmp:
        path = os.path.join(tmp, "answer.txt")
        await anyio.Path(path).write_text(answer, encoding="utf-8")
        try:
            args = [render(a, path) for a in argv]
            where = render(cwd, path) if cwd is not None else None
            variables = {k: render(v, path) for k, v in (env or {}).items()}
        except Exception as exc:
            return False, f"cannot render the check's command: {exc}"
        variables["DAGTIER_ANSWER_FILE"] = path
        try:
            res = await run_command(args, cwd=where, env=variables, timeout_s=timeout_s)
        except StepError as exc:
            return False, str(exc)
    if res.exit_code != 0:
        return False, res.failure()
    return True, ""


# --- run: module:function ----------------------------------------------------------------


def signature_problem(fn: Callable[..., Any], available: set[str]) -> str | None:
    """Why ``fn`` cannot be called with the names a node offers it, or None.

    A required parameter must name an upstream node, an input, or be ``inputs``.
    """
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return "its signature cannot be read"
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.kind is p.POSITIONAL_ONLY and p.default is p.empty:
            return f"parameter '{p.name}' is positional-only; dagtier passes arguments by name"
        if p.default is p.empty and p.name not in available and p.name != "inputs":
            offered = ", ".join(sorted(available | {"inputs"}))
            return (
                f"required parameter '{p.name}' names no upstream node and no input "
                f"(it may take: {offered})"
            )
    return None


def function_arguments(fn: Callable[..., Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments for ``fn`` from the node's values (inputs, upstream outputs)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        names: Sequence[str] = [k for k in values if k != "inputs"]
    else:
        names = list(params)
    inputs = values.get("inputs") or {}
    kwargs: dict[str, Any] = {}
    for name in names:
        if name == "inputs":
            kwargs[name] = inputs
        elif name in values:
            kwargs[name] = values[name]
        elif name in inputs:
            kwargs[name] = inputs[name]
    return kwargs


async def call_function(
    fn: Callable[..., Any],
    kwargs: Mapping[str, Any],
    spec: str,
    *,
    args: tuple[Any, ...] = (),
    what: str = "run",
) -> JSON:
    """Call a ``run`` or ``agent`` function (a sync one in a worker thread) and check that
    its result can be stored. A dagtier error it raises (a provider error from a call it
    made through its context, the budget) passes through as itself.

    Raises:
        StepError: it raised, or returned something JSON cannot hold.
    """
    try:
        if inspect.iscoroutinefunction(fn):
            value = await fn(*args, **kwargs)
        else:
            value = await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))
    except DagtierError:
        raise
    except Exception as exc:
        raise StepError(f"{what} '{spec}' raised {type(exc).__name__}: {exc}") from exc
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise StepError(
            f"{what} '{spec}' returned a {type(value).__name__}, which is not JSON-serialisable "
            f"({exc}); the result is stored, so return str, numbers, lists or dicts"
        ) from None
    return value


# --- the node ----------------------------------------------------------------------------


def search_dirs(source: str) -> tuple[str, ...]:
    """Where a workflow's own ``module:function`` references are also looked for: the
    directory of its file (none for a workflow parsed from a string)."""
    if source.startswith("<") or not source:
        return ()
    return (os.path.dirname(os.path.abspath(source)),)


async def run_step(node: Node, values: Mapping[str, Any], search: Sequence[str]) -> JSON:
    """Run a ``run`` or ``command`` node with its template values (inputs and upstream
    outputs); its output.

    Raises:
        StepError: the step failed (the message says how).
    """
    from ._callables import CallableError, import_callable
    from .spec.templates import Template

    if node.run is not None:
        try:
            fn = import_callable(node.run, search=search, what="run")
        except CallableError as exc:
            raise StepError(str(exc)) from None
        available = {k for k in values if k != "inputs"} | set(values.get("inputs") or {})
        problem = signature_problem(fn, available)
        if problem:
            raise StepError(f"run '{node.run}': {problem}")
        return await call_function(fn, function_arguments(fn, values), node.run)
    assert node.command is not None
    try:
        argv = [Template(a).render(values) for a in node.command]
        cwd = Template(node.cwd).render(values) if node.cwd is not None else None
        env = {k: Template(v).render(values) for k, v in (node.env or {}).items()}
    except Exception as exc:
        raise StepError(f"cannot render the command: {exc}") from None
    res = await run_command(argv, cwd=cwd, env=env, timeout_s=node.timeout_s)
    if res.exit_code != 0:
        raise StepError(res.failure())
    return res.as_output()
