"""The model catalog: tiers -> ordered models -> prices.

The default catalog ships as ``default.yaml`` next to this file. A user catalog
(``--models FILE`` or ``DAGTIER_MODELS``) is merged over it: a model entry of the same name
replaces the default one, a new name adds a model, and a tier listed replaces that tier's list.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._exceptions import CatalogError, SpecError, SpecIssue
from .._types import TIERS, Tier
from .._yaml import did_you_mean, issues_from_validation_error, load_yaml, read_text

ProviderName = Literal["anthropic", "openai", "local", "replay", "python"]
"""``openai`` also serves every OpenAI-compatible endpoint through ``base_url``.
``replay`` answers from recorded outcomes; ``python`` calls a Python function (tests, benches)."""

ENV_CATALOG = "DAGTIER_MODELS"


@dataclass(slots=True)
class Usage:
    """Tokens of one call, by kind. The kinds are disjoint: no token is counted twice.

    ``input_tokens`` excludes cache reads and writes; ``output_tokens`` excludes reasoning.
    Providers normalise their usage blocks to this shape.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
            + self.reasoning_tokens
        )


class Price(BaseModel):
    """USD per million tokens. Input and output are required: a model is never silently free.

    Cache prices default to the input price and reasoning to the output price, the
    conservative reading when a provider does not publish a separate rate.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    reasoning: float | None = Field(default=None, ge=0)

    def cost(self, usage: Usage) -> float:
        """The exact cost in USD of a call with this usage."""
        cr = self.input if self.cache_read is None else self.cache_read
        cw = self.input if self.cache_write is None else self.cache_write
        rs = self.output if self.reasoning is None else self.reasoning
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * cr
            + usage.cache_write_tokens * cw
            + usage.reasoning_tokens * rs
        ) / 1_000_000


class ModelEntry(BaseModel):
    """One concrete model a tier can use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = ""
    """The catalog's name for the entry (its key); filled in by the loader."""
    provider: ProviderName
    model: str = Field(min_length=1)
    """The provider's model id, sent on the wire."""
    price: Price
    context_window: int = Field(default=128_000, gt=0)
    base_url: str | None = None
    api_key_env: str | None = None
    """The name of the environment variable holding the key. Never the key itself."""
    max_concurrency: int | None = Field(default=None, gt=0)
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)

    @field_validator("api_key_env")
    @classmethod
    def _not_a_key(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("sk-") or len(value) > 64):
            raise ValueError(
                "api_key_env takes the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                "not the key itself"
            )
        return value

    def cost(self, usage: Usage) -> float:
        return self.price.cost(usage)

    @property
    def is_local(self) -> bool:
        return self.provider == "local"


class CatalogFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prices_checked: str | None = None
    models: dict[str, ModelEntry] = Field(default_factory=dict)
    tiers: dict[Tier, list[str]] = Field(default_factory=dict)
    local_fallback: str | None = None


class Catalog:
    """Models by name and tiers as ordered model lists. Immutable once built."""

    def __init__(
        self,
        models: dict[str, ModelEntry],
        tiers: dict[Tier, list[str]],
        *,
        local_fallback: str | None = None,
        prices_checked: str | None = None,
        source: str = "<catalog>",
    ) -> None:
        self.models = {name: m.model_copy(update={"name": name}) for name, m in models.items()}
        self.tiers: dict[Tier, tuple[str, ...]] = {t: tuple(tiers.get(t, ())) for t in TIERS}
        self.local_fallback = local_fallback
        self.prices_checked = prices_checked
        self.source = source
        problems = []
        for tier, names in self.tiers.items():
            for name in names:
                if name not in self.models:
                    hint = did_you_mean(name, self.models)
                    problems.append(
                        f"tier {tier} names unknown model '{name}'" + (f" ({hint})" if hint else "")
                    )
        if local_fallback and local_fallback not in self.models:
            problems.append(f"local_fallback names unknown model '{local_fallback}'")
        if problems:
            raise CatalogError(
                f"{source}: " + "; ".join(problems),
                hint=f"models defined: {', '.join(sorted(self.models))}",
            )

    def model(self, name: str) -> ModelEntry:
        try:
            return self.models[name]
        except KeyError:
            hint = did_you_mean(name, self.models)
            raise CatalogError(f"unknown model '{name}'", hint=hint) from None

    def key_variables(self, served: Iterable[tuple[str, str]]) -> list[str]:
        """The API key variables of the entries serving these (provider, model) pairs,
        sorted: what to check when a provider refused a key."""
        pairs = set(served)
        return sorted(
            {
                m.api_key_env
                for m in self.models.values()
                if m.api_key_env and (m.provider, m.model) in pairs
            }
        )

    def tier_models(self, tier: Tier) -> list[ModelEntry]:
        """The tier's models in fallback order (all of them, usable or not)."""
        return [self.models[n] for n in self.tiers[tier]]

    def top_price_model(self) -> ModelEntry | None:
        """The first tier-3 model: the reference for "what if everything ran on tier 3"."""
        names = self.tiers[3]
        return self.models[names[0]] if names else None

    def with_overrides(self, other: CatalogFile, source: str) -> Catalog:
        models = {**self.models, **other.models}
        tiers: dict[Tier, list[str]] = {t: list(v) for t, v in self.tiers.items()}
        tiers.update(other.tiers)
        return Catalog(
            models,
            tiers,
            local_fallback=other.local_fallback or self.local_fallback,
            prices_checked=other.prices_checked or self.prices_checked,
            source=source,
        )


def parse_catalog_file(text: str, source: str) -> CatalogFile:
    data, positions = load_yaml(text, source)
    if data is None:
        data = {}
    try:
        return CatalogFile.model_validate(data)
    except ValidationError as exc:
        issues = issues_from_validation_error(
            exc,
            positions,
            data,
            field_choices={
                (): list(CatalogFile.model_fields),
                ("models", "*"): [f for f in ModelEntry.model_fields if f != "name"],
                ("models", "*", "price"): list(Price.model_fields),
            },
        )
        raise SpecError(source=source, issues=issues) from None


def default_catalog() -> Catalog:
    text = resources.files(__package__).joinpath("default.yaml").read_text(encoding="utf-8")
    f = parse_catalog_file(text, "default catalog")
    return Catalog(
        f.models,
        f.tiers,
        local_fallback=f.local_fallback,
        prices_checked=f.prices_checked,
        source="default catalog",
    )


def load_catalog(path: str | Path | None = None) -> Catalog:
    """The default catalog with a user catalog merged over it.

    Args:
        path: a catalog YAML file; when None, ``$DAGTIER_MODELS`` if set.

    Raises:
        SpecError: the user catalog is not valid YAML or has wrong fields (with line numbers).
        CatalogError: a tier names a model the catalog does not define.
    """
    base = default_catalog()
    path = path or os.environ.get(ENV_CATALOG) or None
    if path is None:
        return base
    f = parse_catalog_file(read_text(path), str(path))
    return base.with_overrides(f, str(path))


def catalog_from_dict(data: dict[str, Any], *, base: Catalog | None = None) -> Catalog:
    """Build a catalog from a Python dict in the catalog file's shape (for programs and tests)."""
    try:
        f = CatalogFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError(
            source="<catalog dict>", issues=issues_from_validation_error(exc, {}, data)
        ) from None
    if base is None:
        return Catalog(
            f.models,
            f.tiers,
            local_fallback=f.local_fallback,
            prices_checked=f.prices_checked,
            source="<catalog dict>",
        )
    return base.with_overrides(f, "<catalog dict>")


__all__ = [
    "Catalog",
    "CatalogFile",
    "ModelEntry",
    "Price",
    "ProviderName",
    "SpecIssue",
    "Usage",
    "catalog_from_dict",
    "default_catalog",
    "load_catalog",
]
