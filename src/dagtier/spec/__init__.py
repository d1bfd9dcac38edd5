"""Workflow specs: YAML -> validated pydantic models, with errors that say where."""

from __future__ import annotations

import json
from typing import Any

from .loader import load_workflow, parse_workflow
from .models import (
    AdaptivePolicy,
    CascadePolicy,
    InputSpec,
    Node,
    NodeSettings,
    OutputSpec,
    StaticPolicy,
    Workflow,
)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the workflow format, for editor completion (``dagtier schema``)."""
    schema = Workflow.model_json_schema(by_alias=True)
    defs = schema["$defs"]
    # the shorthands the models accept before validation (``text: string``, ``output:
    # json``) are invisible to pydantic's schema; without them an editor would flag
    # valid files
    defs["InputSpec"] = {
        "anyOf": [defs["InputSpec"], defs["InputSpec"]["properties"]["type"]],
        "description": defs["InputSpec"].get("description", ""),
    }
    defs["OutputSpec"] = {
        "anyOf": [defs["OutputSpec"], defs["OutputSpec"]["properties"]["format"]],
        "description": defs["OutputSpec"].get("description", ""),
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dagtier workflow"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2)


__all__ = [
    "AdaptivePolicy",
    "CascadePolicy",
    "InputSpec",
    "Node",
    "NodeSettings",
    "OutputSpec",
    "StaticPolicy",
    "Workflow",
    "json_schema",
    "load_workflow",
    "parse_workflow",
]
