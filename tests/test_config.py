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


@pytest.mark.parametrize(
    "text, message",
    [
        ("providers: [{name: x, preset: nope}]", "unknown preset"),
        ("providers: [{name: x, preset: openai, credentials: [{secret: sk-inline}]}]", "secret_env"),
        ("providers: [{name: x}]", "needs a base URL"),
        ("models: [{id: a/b, provider: missing, upstream: b}]", "unknown provider"),
        ("models: [{id: a/b}]", "'provider' is required"),
        ("- just a list", "mapping"),
    ],
)
def test_a_bad_file_says_what_is_wrong(transactional_db, monkeypatch, tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CommandError, match=message):
        apply(path, monkeypatch)


CATALOGUE = Path(__file__).resolve().parent.parent / "providers" / "catalogue"


def test_every_shipped_catalogue_applies_with_a_margin(transactional_db, monkeypatch):
    files = sorted(CATALOGUE.glob("*.yaml"))
    env = {
        "OPENAI_API_KEY": "a",
        "ANTHROPIC_API_KEY": "b",
        "GEMINI_API_KEY": "c",
        "DEEPSEEK_API_KEY": "d",
        "XAI_API_KEY": "e",
        "MISTRAL_API_KEY": "f",
        "OPENROUTER_API_KEY": "g",
        "BEDROCK_CREDENTIALS_JSON": '{"access_key_id": "AKIA", "secret_access_key": "s"}',
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    call_command("hub_config", "apply", *map(str, files), "--margin", "0.25", stdout=out)
    mini = CatalogModel.objects.get(public_id="openai/gpt-4o-mini")
    assert (mini.context_window, mini.supports_vision, mini.rate.input_price) == (128000, True, Decimal("0.1875"))
    assert CatalogModel.objects.get(public_id="openai/o3-mini").supports_vision is False
    assert Provider.objects.get(name="bedrock").effective_base_url == "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert ModelRate.objects.get(model__public_id="ollama/llama3.2").input_price == 0
    again = io.StringIO()
    call_command("hub_config", "apply", *map(str, files), "--margin", "0.25", stdout=again)
    assert again.getvalue().strip() == "already up to date"
