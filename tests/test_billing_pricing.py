"""Every price change is kept: who, when, before and after; margins in bulk; prices that lose money."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import RequestFactory
from django.utils import timezone

from billing import pricing
from billing.models import ModelRate, PriceChange
from billing.tasks import flag_prices_below_cost
from tests import factories
from tests.concurrency import at_once

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")


def catalog(public_id, provider, **rate):
    return factories.add_model(provider, public_id, public_id.split("/")[-1], **rate)


@pytest.fixture
def providers(transactional_db):
    return (
        factories.provider("openai", kind="openai_compatible", preset="openai"),
        factories.provider("deepseek", kind="openai_compatible", preset="custom"),
    )


@pytest.fixture
def models(providers):
    openai, deepseek = providers
    return {
        "mini": catalog(
            "openai/gpt-4o-mini", openai, input_cost=Decimal("0.15"), output_cost=Decimal("0.6"), margin=Decimal("0.1")
        ),
        "big": catalog(
            "openai/gpt-4o",
            openai,
            input_cost=Decimal("2.5"),
            output_cost=Decimal("10"),
            input_price=Decimal("3"),
            output_price=Decimal("12"),
        ),
        "chat": catalog(
            "deepseek/chat",
            deepseek,
            input_cost=Decimal("0.27"),
            output_cost=Decimal("1.1"),
            input_price=Decimal("0.2"),
            output_price=Decimal("1.5"),
        ),
    }


@pytest.fixture
def operator(transactional_db):
    from accounts.models import User

    return User.objects.create_superuser(username="operator", email="op@example.com", password="pw-not-used")


def history(model):
    return list(PriceChange.objects.filter(model=model).order_by("id"))


def test_creating_a_rate_is_recorded_with_its_derived_prices(models):
    (created,) = history(models["mini"])
    assert created.action == "created" and created.old == {} and created.model_name == "openai/gpt-4o-mini"
    assert created.new == {
        "input_cost": "0.1500000000",
        "output_cost": "0.6000000000",
        "margin": "0.1000",
        "input_price": "0.1650000000",
        "output_price": "0.6600000000",
    }


def test_a_change_keeps_old_and_new_values_and_an_unchanged_save_records_nothing(models):
    rate = models["big"].rate
    rate.output_price = Decimal("11")
    rate.save()
    rate.save()
    ModelRate.objects.get(pk=rate.pk).save()

    _, changed = history(models["big"])
    assert changed.action == "changed" and changed.changed_by is None
    assert (changed.old["output_price"], changed.new["output_price"]) == ("12.0000000000", "11.0000000000")
    assert changed.old["input_price"] == changed.new["input_price"] == "3.0000000000"


def test_price_changes_are_append_only(models):
    change = PriceChange.objects.first()
    change.new = {}
    with pytest.raises(ValueError):
        change.save()
    with pytest.raises(ValueError):
        change.delete()


def test_admin_edits_record_the_operator(models, operator):
    from billing.admin import ModelRateAdmin

    request = RequestFactory().post("/admin/")
    request.user = operator
    rate_admin = ModelRateAdmin(ModelRate, admin.site)
    rate = ModelRate.objects.get(model=models["chat"])
    rate.input_price = Decimal("0.3")
    rate_admin.save_model(request, rate, form=None, change=True)

    change = history(models["chat"])[-1]
    assert (change.action, change.changed_by, change.source) == ("changed", operator, "admin")
    assert "0.3" in rate_admin.price_history(rate)

    rate_admin.delete_model(request, rate)
    deleted = history(models["chat"])[-1]
    assert (deleted.action, deleted.changed_by, deleted.new) == ("deleted", operator, {})


def test_deleting_a_model_keeps_its_history_by_name(models):
    models["big"].delete()
    changes = list(PriceChange.objects.filter(model_name="openai/gpt-4o").order_by("id"))
    assert [c.action for c in changes] == ["created", "deleted"]
    assert all(c.model_id is None for c in changes)


def test_the_price_at_a_moment_comes_from_the_history(models):
    before = timezone.now()
    PriceChange.objects.filter(model=models["chat"]).update(changed_at=before - timedelta(days=1))
    pricing.rate_save(rate=_with(models["chat"].rate, input_price=Decimal("0.5")), source="test")

    assert pricing.price_at(model=models["chat"], when=before)["input_price"] == "0.2000000000"
    assert pricing.price_at(model=models["chat"], when=timezone.now())["input_price"] == "0.5000000000"
    assert pricing.price_at(model=models["chat"], when=before - timedelta(days=2)) is None


def _with(rate, **values):
    for name, value in values.items():
        setattr(rate, name, value)
    return rate


def test_hub_prices_margin_applies_over_cost_and_records_each_change_once(models, capsys):
    call_command("hub_prices", "margin", "--margin", "0.25")
    call_command("hub_prices", "margin", "--margin", "0.25")

    rates = {m: ModelRate.objects.get(model=models[m]) for m in models}
    assert (rates["mini"].input_price, rates["mini"].output_price) == (Decimal("0.1875"), Decimal("0.75"))
    assert (rates["big"].input_price, rates["big"].output_price) == (Decimal("3.125"), Decimal("12.5"))
    assert (rates["chat"].input_price, rates["chat"].output_price) == (Decimal("0.3375"), Decimal("1.375"))
    changes = PriceChange.objects.filter(source="hub_prices margin")
    assert changes.count() == 3 and {c.action for c in changes} == {"changed"}
    assert "changed 3 rate(s)" in capsys.readouterr().out


def test_hub_prices_margin_filters_by_provider_and_model(models):
    call_command("hub_prices", "margin", "--margin", "0.5", "--provider", "openai", "--model", "*-mini")
    assert PriceChange.objects.filter(source="hub_prices margin").get().model == models["mini"]
    call_command("hub_prices", "margin", "--margin", "0.5", "--provider", "deepseek")
    assert ModelRate.objects.get(model=models["chat"]).margin == Decimal("0.5")
    assert ModelRate.objects.get(model=models["big"]).margin is None


def test_hub_prices_dry_run_and_bad_margins_change_nothing(models, capsys):
    call_command("hub_prices", "margin", "--margin", "1", "--dry-run")
    assert "would change 3 rate(s)" in capsys.readouterr().out
    for bad in ("-0.1", "abc", "0.00001", "NaN"):
        with pytest.raises(CommandError):
            call_command("hub_prices", "margin", "--margin", bad)
    assert not PriceChange.objects.filter(action="changed").exists()
    assert ModelRate.objects.get(model=models["big"]).margin is None


def test_prices_below_cost_are_flagged_every_run(models, caplog):
    for _ in range(2):
        (flagged,) = flag_prices_below_cost.delay().get()
        assert flagged["model"] == "deepseek/chat" and flagged["below"] == ["input"]
    assert "price below cost: deepseek/chat" in caplog.text

    call_command("hub_prices", "margin", "--margin", "0", "--model", "deepseek/*")
    assert flag_prices_below_cost.delay().get() == []


def test_hub_prices_lists_what_is_below_cost(models, capsys):
    call_command("hub_prices", "below-cost")
    assert "deepseek/chat: input below cost" in capsys.readouterr().out


@postgres_only
def test_concurrent_bulk_margins_record_each_change_once(models):
    at_once(*[lambda: pricing.margin_apply(margin="0.3")] * 3)
    assert PriceChange.objects.filter(source="hub_prices margin").count() == 3
