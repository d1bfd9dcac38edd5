"""A gateway dagtier builds for a run (or a batch) is closed when the run ends, so the SDK
clients' connections never outlive the event loop; a gateway the caller passed in stays
open for the caller's next run. Real SDKs against the loopback fault server."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest
import structlog
from _catalog import loopback_catalog_file
from _fault_server import FaultServer
from _helpers import make_catalog
from typer.testing import CliRunner

import dagtier
from dagtier.cli import app
from dagtier.providers import Gateway

FLOW = """\
name: tiny
nodes:
  first: {prompt: say hi, policy: {kind: static, tier: 1}}
  second: {prompt: "again {{ first }}", depends_on: [first], policy: {kind: static, tier: 1}}
"""


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """The CLI configures structlog globally when run in-process: undo it for later tests."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def leaks() -> Iterator[Callable[[], list[str]]]:
    """Every warning (ResourceWarning included: unclosed transports and sockets) raised
    while the test runs or when its garbage is collected."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")

        def collected() -> list[str]:
            gc.collect()
            return [f"{w.category.__name__}: {w.message}" for w in seen]

        yield collected


def test_a_run_closes_the_gateway_it_built(
    fault_server: FaultServer, fake_keys: dict[str, str], leaks: Callable[[], list[str]]
) -> None:
    """dagtier.run() without a gateway, its event loop ended: no unclosed connection."""
    wf = dagtier.parse_workflow(FLOW)
    catalog = make_catalog(fault_server.base_url, {1: ["o-model"]})
    result = anyio.run(lambda: dagtier.run(wf, catalog=catalog))
    assert result.ok, result.error
    assert len(fault_server.requests_for("o-model")) == 2
    assert leaks() == []


def test_the_cli_run_in_process_leaves_no_connection_open(
    tmp_path: Path, fault_server: FaultServer, leaks: Callable[[], list[str]]
) -> None:
    """`dagtier run` in-process (as CliRunner and embedding programs call it) against an
    OpenAI-compatible server ends with its connections closed."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    models = loopback_catalog_file(
        tmp_path / "models.yaml",
        fault_server.base_url,
        {t: ["o-model"] for t in (1, 2, 3)},
        models={"o-model": {"price": {"input": 1, "output": 2}}},
    )
    res = CliRunner().invoke(
        app,
        ["run", str(flow), "--models", str(models), "--store", str(tmp_path / "r.db"), "-q"],
        env={"TEST_OPENAI_KEY": "sk-test-key-0123456789"},
    )
    assert res.exit_code == 0, res.output
    assert leaks() == []


def test_a_batch_closes_the_gateway_it_built(
    tmp_path: Path,
    fault_server: FaultServer,
    fake_keys: dict[str, str],
    leaks: Callable[[], list[str]],
) -> None:
    """dagtier.run_batch() without a gateway closes the one it built when the batch ends."""
    items = tmp_path / "items.jsonl"
    items.write_text("{}\n{}\n", encoding="utf-8")
    wf = dagtier.parse_workflow(FLOW)
    catalog = make_catalog(fault_server.base_url, {1: ["o-model"]})
    summary = anyio.run(lambda: dagtier.run_batch(wf, items, catalog=catalog))
    assert summary.succeeded == 2
    assert leaks() == []


def test_an_eval_closes_the_gateway_it_built(
    fault_server: FaultServer, fake_keys: dict[str, str], leaks: Callable[[], list[str]]
) -> None:
    """dagtier.eval.evaluate() without a gateway closes the one it built when the eval ends
    (every run of the eval shares that gateway, so none of them may close it)."""
    from dagtier.eval import evaluate

    wf = dagtier.parse_workflow(FLOW)
    catalog = make_catalog(fault_server.base_url, {1: ["o-model"]})
    result = anyio.run(lambda: evaluate(wf, [{"inputs": {}}], tiers=[1], catalog=catalog))
    assert result.status == "finished"
    assert len(result.units) == 2 and all(u.status == "succeeded" for u in result.units)
    assert leaks() == []


def test_a_gateway_the_caller_passed_stays_open_for_its_next_run(
    fault_server: FaultServer, fake_keys: dict[str, str], leaks: Callable[[], list[str]]
) -> None:
    """Two runs share the caller's gateway (the second reuses its SDK client); the caller
    closes it, and then nothing is left open."""
    wf = dagtier.parse_workflow(FLOW)
    gateway = Gateway(make_catalog(fault_server.base_url, {1: ["o-model"]}))

    async def two_runs() -> list[bool]:
        try:
            first = await dagtier.run(wf, gateway=gateway)
            provider = gateway.registry.get(gateway.catalog.model("o-model"))
            client = provider._client._client  # type: ignore[attr-defined]
            second = await dagtier.run(wf, gateway=gateway)
            assert provider._client._client is client  # type: ignore[attr-defined]
            return [first.ok, second.ok]
        finally:
            await gateway.aclose()

    assert anyio.run(two_runs) == [True, True]
    assert len(fault_server.requests_for("o-model")) == 4
    assert leaks() == []
