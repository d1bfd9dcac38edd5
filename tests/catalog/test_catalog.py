"""The model catalog: prices of every token kind, the user catalog merged over the default
one, close-match hints for unknown names, and which models a tier will really call."""

from __future__ import annotations

from pathlib import Path

import pytest
from _catalog import make_catalog

from dagtier import CatalogError, SpecError
from dagtier.catalog import (
    Catalog,
    Price,
    Usage,
    catalog_from_dict,
    default_catalog,
    load_catalog,
)
from dagtier.providers.registry import ProviderRegistry


def test_every_token_kind_is_priced_and_unlisted_kinds_take_the_conservative_rate() -> None:
    """Cache reads/writes cost the input price and reasoning the output price unless given."""
    usage = Usage(1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000)
    assert Price(input=1, output=5).cost(usage) == pytest.approx(1 + 5 + 1 + 1 + 5)
    priced = Price(input=1, output=5, cache_read=0.1, cache_write=1.25, reasoning=10)
    assert priced.cost(usage) == pytest.approx(1 + 5 + 0.1 + 1.25 + 10)
    assert (usage + Usage(input_tokens=3)).total == 5_000_003


def test_the_default_catalog_prices_every_model_and_fills_every_tier() -> None:
    """Each tier lists a model, each model has a price, and the fallback model exists."""
    cat = default_catalog()
    assert all(cat.tiers[t] for t in (1, 2, 3))
    for entry in cat.models.values():
        if entry.provider != "local":
            assert entry.price.input > 0 and entry.price.output > 0, entry.name
    assert cat.local_fallback in cat.models


def test_a_user_catalog_replaces_models_and_tiers_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model of the same name replaces the default one, a new name is added, a tier listed
    replaces that tier's list, and DAGTIER_MODELS points at the file."""
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  gpt-4o-mini: {provider: openai, model: gpt-4o-mini, price: {input: 9, output: 9}}\n"
        "  mine: {provider: openai, model: my-model, base_url: 'http://127.0.0.1:9/v1',"
        " price: {input: 0.5, output: 1}}\n"
        "tiers:\n"
        "  1: [mine]\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("DAGTIER_MODELS", str(path))
    cat = load_catalog()
    default = default_catalog()
    assert cat.tiers[1] == ("mine",)
    assert cat.tiers[2] == default.tiers[2] and cat.tiers[3] == default.tiers[3]
    assert cat.model("gpt-4o-mini").price.input == 9
    assert cat.model("mine").model == "my-model"
    assert cat.source == str(path)


def test_a_mistyped_field_in_a_user_catalog_names_its_line_and_the_close_field(
    tmp_path: Path,
) -> None:
    """A wrong field is a spec error with the file's line and a did-you-mean hint."""
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n  mine:\n    provider: openai\n    model: m\n    prce: {input: 1, output: 1}\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as info:
        load_catalog(path)
    issues = {(i.path, i.line, i.code) for i in info.value.issues}
    assert ("models.mine.prce", 5, "unknown-field") in issues
    assert any(i.hint == "did you mean 'price'?" for i in info.value.issues)


def test_unknown_model_names_get_close_matches() -> None:
    """A tier naming an undefined model, or a lookup by a mistyped name, suggests the
    close name."""
    with pytest.raises(CatalogError) as info:
        make_catalog({1: ["fats"]}).model("fast")
    assert info.value.hint == "did you mean 'fats'?"
    with pytest.raises(CatalogError, match="tier 1 names unknown model 'fst'") as info:
        catalog_from_dict(
            {
                "models": {
                    "fast": {"provider": "python", "model": "f", "price": {"input": 1, "output": 1}}
                },
                "tiers": {1: ["fst"]},
            }
        )
    assert "fast" in str(info.value)


def test_a_key_pasted_where_its_variable_name_belongs_is_rejected_unechoed() -> None:
    """api_key_env takes a variable's name; a pasted key is refused and not repeated."""
    secret = "sk-live-abcdefghijklmnop1234567890"
    with pytest.raises(SpecError) as info:
        make_catalog({1: ["m"]}, {"m": {"provider": "openai", "api_key_env": secret}})
    assert "api_key_env takes the NAME" in str(info.value)
    assert secret not in str(info.value)


def test_a_tier_without_a_key_runs_on_the_local_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """With its key unset a model is unusable (the reason names the variable) and its tier
    is served by the fallback; once the key is set the tier's own model is called."""
    models = {
        "remote": {"provider": "openai", "api_key_env": "TEST_CATALOG_KEY"},
        "stand-in": {},  # in-process: always usable
    }
    monkeypatch.delenv("TEST_CATALOG_KEY", raising=False)
    data = {
        "models": {
            name: {"provider": "python", "model": name, "price": {"input": 1, "output": 1}, **m}
            for name, m in models.items()
        },
        "tiers": {1: ["remote"], 2: ["remote", "stand-in"]},
        "local_fallback": "stand-in",
    }
    cat = catalog_from_dict(data)

    def usable(tier: int) -> tuple[list[str], bool]:
        models, stand_in = ProviderRegistry.usable(cat, tier)
        return [m.name for m in models], stand_in

    assert ProviderRegistry.availability(cat.model("remote")) == (
        False,
        "$TEST_CATALOG_KEY is not set",
    )
    assert usable(1) == (["stand-in"], True)
    assert usable(2) == (["stand-in"], False)  # the tier's own second model, not a stand-in
    monkeypatch.setenv("TEST_CATALOG_KEY", "k")
    assert usable(1) == (["remote"], False)


def _keyed_catalog() -> Catalog:
    """Tiers 1 and 3 on OpenAI-style models whose key variable is unset, tier 2 in-process,
    and an in-process local fallback (always usable)."""
    return catalog_from_dict(
        {
            "models": {
                "o-1": {"provider": "openai", "model": "o-1", "api_key_env": "DAGTIER_TEST_UNSET_1",
                        "base_url": "http://127.0.0.1:9/v1", "price": {"input": 1, "output": 2}},
                "o-3": {"provider": "openai", "model": "o-3", "api_key_env": "DAGTIER_TEST_UNSET_3",
                        "base_url": "http://127.0.0.1:9/v1", "price": {"input": 1, "output": 2}},
                "p-2": {"provider": "python", "model": "p-2", "price": {"input": 1, "output": 2}},
                "fb": {"provider": "python", "model": "fb", "price": {"input": 0, "output": 0}},
            },
            "tiers": {1: ["o-1"], 2: ["p-2"], 3: ["o-3"]},
            "local_fallback": "fb",
        }
    )  # fmt: skip


def test_the_key_variables_of_the_models_that_served_are_named() -> None:
    """A refused key is traced to the variables of the catalog entries that served the
    calls, once each, sorted; a model dagtier did not call names nothing."""
    cat = _keyed_catalog()
    served = [("openai", "o-3"), ("openai", "o-1"), ("openai", "o-3"), ("python", "p-2")]
    assert cat.key_variables(served) == ["DAGTIER_TEST_UNSET_1", "DAGTIER_TEST_UNSET_3"]
    assert cat.key_variables([("openai", "elsewhere")]) == []


def test_the_tiers_a_workflow_runs_on_the_local_fallback_are_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the tiers the workflow's nodes may use and whose own models have no key set:
    tier 3 falls back too, but no node may climb to it."""
    from dagtier import parse_workflow

    monkeypatch.delenv("DAGTIER_TEST_UNSET_1", raising=False)
    monkeypatch.delenv("DAGTIER_TEST_UNSET_3", raising=False)
    cat = _keyed_catalog()
    wf = parse_workflow(
        "name: w\nnodes:\n"
        "  a: {prompt: hi, policy: {kind: static, tier: 1}}\n"
        "  b: {prompt: hi, policy: {kind: cascade, start: 1, max: 2}}\n"
    )
    assert ProviderRegistry.local_fallback_tiers(cat, wf) == [1]
    monkeypatch.setenv("DAGTIER_TEST_UNSET_1", "sk-test")
    assert ProviderRegistry.local_fallback_tiers(cat, wf) == []
