"""dagtier: run LLM agent workflows declared as YAML DAGs on the cheapest model tier that works."""

from __future__ import annotations
