"""One rate card, one usage shape: every amount of a ModelRate is on the card, derived alike on both, and
reaches what a request costs; every count of an adapter's Usage reaches the usage event and its record.
A new kind of price or a new count that is only half added fails here."""

from dataclasses import fields
from decimal import Decimal

import pytest

from billing.models import ModelRate, UsageRecord
from billing.money import MoneyField
from billing.ratecard import FIELDS, PAIRS, TIERS, RateCard, decimal_tiers, price_usage
from billing.usage import UsageEvent, record_of
from hub.admin import ModelRateInline
from providers.adapters.base import Usage

TIER = "1024x1024/hd"
# Some of every kind of usage: fresh, cached and image input, output, an image of TIER, a second of audio.
EVERYTHING = {
    "prompt_tokens": 3_000_000,
    "cached_tokens": 1_000_000,
    "image_input_tokens": 1_000_000,
    "completion_tokens": 1_000_000,
    "images": 1,
    "image_tier": TIER,
    "seconds": Decimal(1),
}


def amount(name: str, value) -> Decimal | dict:
    return {TIER: Decimal(value)} if name in TIERS else Decimal(value)


def test_every_amount_of_a_model_rate_is_on_the_card_as_a_cost_or_its_price():
    amounts = {
        f.name
        for f in ModelRate._meta.concrete_fields
        if isinstance(f, MoneyField) or f.get_internal_type() == "JSONField"
    }
    assert amounts == set(FIELDS)
    assert sorted(name for pair in PAIRS for name in pair) == sorted(FIELDS)


def test_every_amount_is_carried_from_the_rate_to_the_card():
    rate = ModelRate(margin=None)
    for n, name in enumerate(FIELDS, 1):
        setattr(rate, name, {TIER: str(n)} if name in TIERS else Decimal(n))
    card = RateCard.of(rate)
    assert {name: getattr(card, name) for name in FIELDS} == {name: amount(name, n) for n, name in enumerate(FIELDS, 1)}


def test_a_margin_makes_every_price_alike_on_the_model_and_on_its_card():
    rate = ModelRate(margin=Decimal("0.5"))
    for n, (cost, price) in enumerate(PAIRS, 1):
        setattr(rate, cost, {TIER: str(n)} if cost in TIERS else Decimal(n))
        setattr(rate, price, {} if price in TIERS else Decimal(0))
    card = RateCard.of(rate)
    rate.derive_prices()
    for n, (cost, price) in enumerate(PAIRS, 1):
        expected = amount(price, Decimal(n) * Decimal("1.5"))
        assert getattr(card, price) == expected, price
        stored = getattr(rate, price)
        assert (decimal_tiers(stored) if price in TIERS else stored) == expected, price


def test_a_rate_with_costs_only_is_priced_at_the_default_margin(settings):
    settings.HUB_DEFAULT_MARGIN = Decimal("0.25")
    rate = ModelRate(margin=None)
    for cost, price in PAIRS:
        setattr(rate, cost, amount(cost, 4))
        setattr(rate, price, {} if price in TIERS else None if price.startswith(("cached", "image_input")) else 0)
    card = RateCard.of(rate)
    assert {price: getattr(card, price) for _, price in PAIRS} == {price: amount(price, 5) for _, price in PAIRS}


@pytest.mark.parametrize("cost, price", PAIRS)
def test_every_kind_of_cost_and_price_reaches_what_a_request_costs(cost, price):
    assert price_usage(RateCard(**{cost: amount(cost, 1)}), **EVERYTHING) == (Decimal(1) * _uses(cost), 0)
    assert price_usage(RateCard(**{price: amount(price, 1)}), **EVERYTHING) == (0, Decimal(1) * _uses(price))


def _uses(name: str) -> int:
    # The input rate also prices cached and image input, which have none of their own here.
    return 3 if name.startswith("input_") else 1


def test_every_count_of_a_call_reaches_its_event_and_its_record():
    usage = Usage(
        **{f.name: n for n, f in enumerate(fields(Usage), 1) if f.type in (int, "int")},
        estimated=True,
        image_tier=TIER,
        seconds=Decimal("2.5"),
        invalid="",
    )
    event = UsageEvent.of_call(usage, request_id="req_1", organization_id=1, model_name="m", status="ok")
    record = record_of(event)
    for f in fields(Usage):
        if f.name == "invalid":
            continue  # turned into the record's error by the gateway (hub/relay.py)
        ours = {"estimated": "usage_estimated", "seconds": "audio_seconds"}.get(f.name, f.name)
        assert getattr(event, ours) == getattr(record, ours) == getattr(usage, f.name), f.name
    assert record.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_every_field_of_an_event_is_recorded_but_its_hold():
    columns = {f.attname for f in UsageRecord._meta.concrete_fields}
    assert {f.name for f in fields(UsageEvent)} - columns == {"lease"}
    event = UsageEvent(
        request_id="req_1",
        organization_id=1,
        model_name="m",
        status="ok",
        api_key_id=2,
        model_id=3,
        provider_id=4,
        credential_id=5,
        cost=Decimal("0.1"),
        price=Decimal("0.2"),
        first_token_ms=7,
    )
    record = record_of(event)
    for f in fields(UsageEvent):
        if f.name not in ("lease", "served_model", "billing_mode"):
            assert getattr(record, f.name) == getattr(event, f.name), f.name
    assert (record.served_model, record.billing_mode) == ("m", event.mode)


def test_a_call_is_priced_at_the_card_of_the_route_that_served():
    card = RateCard(input_price=Decimal(2), output_price=Decimal(4), input_cost=Decimal(1))
    event = UsageEvent.of_call(
        Usage(1_000_000, 500_000), rate=card, request_id="r", organization_id=1, model_name="m", status="ok"
    )
    assert (event.cost, event.price) == (Decimal(1), Decimal(4))
    free = UsageEvent.of_call(Usage(1_000_000, 500_000), request_id="r", organization_id=1, model_name="m", status="ok")
    assert (free.cost, free.price) == (0, 0)


def test_the_admin_edits_every_amount_of_a_rate():
    assert sorted(name for row in ModelRateInline.fields for name in row) == sorted((*FIELDS, "margin"))
