"""`hub_config apply FILE`: the whole catalogue from one YAML file, idempotently."""

import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from billing.models import ModelRate
from providers.models import CatalogModel, Credential, Provider

EXAMPLE = Path(__file__).resolve().parent.parent / "providers" / "hub_config.example.yaml"
ENV = {"OPENAI_API_KEY": "sk-openai-from-env-123456", "DEEPSEEK_API_KEY": "sk-deepseek-from-env-7890"}


def apply(path, monkeypatch, env=ENV) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    call_command("hub_config", "apply", str(path), stdout=out)
    return out.getvalue()


def test_the_example_file_applies_and_is_idempotent(transactional_db, monkeypatch):
    first = apply(EXAMPLE, monkeypatch)
    assert "created provider openai" in first and "created model openai/gpt-4o-mini" in first
    assert apply(EXAMPLE, monkeypatch).strip() == "already up to date"
    assert Provider.objects.count() == 3 and CatalogModel.objects.count() == 3
    assert Credential.objects.get(provider__name="openai").get_secret() == ENV["OPENAI_API_KEY"]
    assert Provider.objects.get(name="openai").effective_base_url == "https://api.openai.com/v1"
    rate = ModelRate.objects.get(model__public_id="openai/gpt-4o-mini")
    assert (rate.input_price, rate.output_price) == (Decimal("0.1875"), Decimal("0.75"))
    direct = ModelRate.objects.get(model__public_id="deepseek/deepseek-chat")
    assert (direct.margin, direct.input_price) == (None, Decimal("0.35"))


def test_a_changed_secret_or_price_is_updated(transactional_db, monkeypatch, tmp_path):
    apply(EXAMPLE, monkeypatch)
    changed = tmp_path / "hub.yaml"
    changed.write_text(EXAMPLE.read_text().replace('margin: "0.25"', 'margin: "0.5"'))
    out = apply(changed, monkeypatch, dict(ENV, OPENAI_API_KEY="sk-rotated-openai-key-0000"))
    assert "updated credential openai/main" in out and "set rate of openai/gpt-4o-mini" in out
    assert ModelRate.objects.get(model__public_id="openai/gpt-4o-mini").input_price == Decimal("0.225")
    assert Credential.objects.get(provider__name="openai").get_secret() == "sk-rotated-openai-key-0000"


def test_a_missing_secret_variable_is_an_error_and_changes_nothing(transactional_db, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(CommandError, match="OPENAI_API_KEY is not set"):
        apply(EXAMPLE, monkeypatch, env={"DEEPSEEK_API_KEY": "x"})
    assert not Provider.objects.exists()


@pytest.mark.parametrize("text, message", [
    ("providers: [{name: x, preset: nope}]", "unknown preset"),
    ("providers: [{name: x, preset: openai, credentials: [{secret: sk-inline}]}]", "secret_env"),
    ("providers: [{name: x}]", "needs a base URL"),
    ("models: [{id: a/b, provider: missing, upstream: b}]", "unknown provider"),
    ("models: [{id: a/b}]", "'provider' is required"),
    ("- just a list", "mapping"),
])
def test_a_bad_file_says_what_is_wrong(transactional_db, monkeypatch, tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CommandError, match=message):
        apply(path, monkeypatch)
