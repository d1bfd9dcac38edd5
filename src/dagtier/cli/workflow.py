"""``validate``, ``graph``, ``schema`` and ``models``: look at a workflow and the catalog
without running anything."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import (
    app,
    guarded,
    usage,
)
from ._options import ModelsOpt, WorkflowArg


@app.command()
def validate(workflow: WorkflowArg) -> None:
    """Check a workflow file and report every problem with its line and column."""
    from ..spec.loader import load_and_import

    wf = guarded(lambda: load_and_import(workflow))
    policies: dict[str, int] = {}
    for nid, node in wf.nodes.items():
        kind = node.kind if not node.uses_model else wf.node_policy(nid).kind
        policies[kind] = policies.get(kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(policies.items()))
    typer.echo(f"ok: {workflow} is valid: workflow '{wf.name}', {len(wf.nodes)} nodes ({summary})")


@app.command()
def graph(
    workflow: WorkflowArg,
    format: Annotated[str, typer.Option("--format", "-f", help="mermaid or dot.")] = "mermaid",
) -> None:
    """Print the workflow's DAG as Mermaid or Graphviz dot, nodes labelled with policy and tier."""
    from ..graph import to_dot, to_mermaid
    from ..spec import load_workflow

    if format not in ("mermaid", "dot"):
        usage(f"--format must be mermaid or dot, got '{format}'")
    wf = guarded(lambda: load_workflow(workflow))
    typer.echo(to_mermaid(wf) if format == "mermaid" else to_dot(wf), nl=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the workflow format (point your editor's YAML plugin at it)."""
    from ..spec import json_schema_text

    typer.echo(json_schema_text())


@app.command()
def models(models: ModelsOpt = None) -> None:
    """List the catalog by tier and say which models are usable now, and why not."""
    from ..catalog import load_catalog
    from ..report.tables import output_console, print_models

    cat = guarded(lambda: load_catalog(models))
    print_models(cat, output_console())
