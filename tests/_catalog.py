"""The one catalog builder of the test suite.

Most tests serve their models from an in-process Python function (``provider: python``):
they are about what dagtier does with the answers, and the test must decide each answer.
The provider tests serve theirs from the loopback fault server (:func:`loopback_catalog`);
the CLI tests read the same catalog from a file (:func:`loopback_catalog_file`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dagtier.catalog import Catalog, catalog_from_dict

PRICE = {"input": 1.0, "output": 2.0}
"""USD per million tokens unless a test says otherwise: easy arithmetic."""


def make_catalog(
    tiers: Mapping[int, Sequence[str]],
    models: Mapping[str, Mapping[str, Any]] | None = None,
) -> Catalog:
    """A catalog whose ``tiers`` list model names.

    Every named model is an in-process ``python`` model whose model id is its name, priced
    at :data:`PRICE`; ``models[name]`` overrides any of those fields or adds limits.
    """
    return catalog_from_dict(_catalog_data(tiers, models))


def _catalog_data(
    tiers: Mapping[int, Sequence[str]], models: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, Any]:
    names = dict.fromkeys(n for tier in sorted(tiers) for n in tiers[tier])
    names.update(dict.fromkeys(models or {}))
    defs = {
        name: {"provider": "python", "model": name, "price": PRICE, **(models or {}).get(name, {})}
        for name in names
    }
    return {"models": defs, "tiers": {t: list(ns) for t, ns in tiers.items()}}


def one_per_tier(
    prefix: str,
    *,
    model_id: str = "{prefix}{tier}",
    prices: Mapping[int, float | tuple[float, float]] | None = None,
) -> Catalog:
    """Tiers 1, 2 and 3 each served by their own python model ``{prefix}1`` .. ``{prefix}3``.

    Args:
        prefix: the model names' prefix.
        model_id: the model id's pattern (``{prefix}`` and ``{tier}`` are filled in).
        prices: per tier, one USD-per-million price for input and output alike, or an
            (input, output) pair; :data:`PRICE` where not given.
    """
    models: dict[str, dict[str, Any]] = {}
    for tier in (1, 2, 3):
        entry: dict[str, Any] = {"model": model_id.format(prefix=prefix, tier=tier)}
        price = (prices or {}).get(tier)
        if price is not None:
            inp, out = price if isinstance(price, tuple) else (price, price)
            entry["price"] = {"input": inp, "output": out}
        models[f"{prefix}{tier}"] = entry
    return make_catalog({t: [f"{prefix}{t}"] for t in (1, 2, 3)}, models)


def loopback_catalog(
    url: str,
    tiers: Mapping[int, Sequence[str]],
    *,
    models: Mapping[str, Mapping[str, Any]] | None = None,
) -> Catalog:
    """A catalog whose models live on the fault server at ``url``: ``a-*`` names speak
    Anthropic, the rest OpenAI. Prices are Haiku's and GPT-4o-mini's unless ``models`` says
    otherwise."""
    return make_catalog(tiers, _loopback_models(url, tiers, models))


def loopback_catalog_file(
    path: Path,
    url: str,
    tiers: Mapping[int, Sequence[str]],
    *,
    models: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """:func:`loopback_catalog` written to ``path``, for the CLI's ``--models``."""
    data = _catalog_data(tiers, _loopback_models(url, tiers, models))
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _loopback_models(
    url: str,
    tiers: Mapping[int, Sequence[str]],
    models: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, dict[str, Any]]:
    defs: dict[str, dict[str, Any]] = {}
    for name in {n for ns in tiers.values() for n in ns}:
        anthropic = name.startswith("a-")
        defs[name] = {
            "provider": "anthropic" if anthropic else "openai",
            "base_url": url if anthropic else url + "/v1",
            "api_key_env": "TEST_ANTHROPIC_KEY" if anthropic else "TEST_OPENAI_KEY",
            "price": (
                {"input": 1.0, "output": 5.0, "cache_read": 0.10, "cache_write": 1.25}
                if anthropic
                else {"input": 0.15, "output": 0.60, "cache_read": 0.075}
            ),
        }
    for name, extra in (models or {}).items():
        defs.setdefault(name, {}).update(extra)
    return defs
