"""What a request is charged: cached input at its own rate, a default margin for rates
with costs only, and organisations' price plans (a discount or a margin of their own)."""

from decimal import Decimal

import openai
import pytest

from billing.models import CreditAccount, ModelRate, PricePlan, UsageRecord
from billing.ratecard import Plan, RateCard, price_usage
from tests.factories import add_model

HELLO = [{"role": "user", "content": "hello"}]


Rates = RateCard(
    input_cost=Decimal(2),
    cached_input_cost=Decimal("0.5"),
    output_cost=Decimal(8),
    input_price=Decimal(3),
    cached_input_price=Decimal(1),
    output_price=Decimal(12),
)


@pytest.mark.parametrize(
    "plan, cost, price",
    [
        # cost: 9 fresh × 2 + 1 cached × 0.5 + 2 out × 8 = 34.5 per million; price: 9 × 3 + 1 × 1 + 2 × 12 = 52
        (None, "0.0000345", "0.000052"),
        (Plan(discount=Decimal("0.25")), "0.0000345", "0.000039"),
        (Plan(margin=Decimal("1")), "0.0000345", "0.000069"),
    ],
)
def test_usage_is_priced_with_cached_input_and_the_plan(plan, cost, price):
    assert price_usage(Rates, prompt_tokens=10, completion_tokens=2, cached_tokens=1, plan=plan) == (
        Decimal(cost),
        Decimal(price),
    )


def test_cached_input_falls_back_to_the_input_rate():
    Plain = RateCard(
        input_cost=Rates.input_cost,
        output_cost=Rates.output_cost,
        input_price=Rates.input_price,
        output_price=Rates.output_price,
    )

    assert price_usage(Plain, prompt_tokens=10, completion_tokens=0, cached_tokens=4) == (
        Decimal("0.00002"),
        Decimal("0.00003"),
    )


def charged(client, hub, model="gpt-4o-mini"):
    reply = client.chat.completions.create(model=model, messages=HELLO)
    hub.drain()
    return reply.usage, UsageRecord.objects.latest("created_at")


def test_an_organisation_on_a_discount_plan_pays_less(client, hub, upstream, organization):
    plan = PricePlan.objects.create(name="startup", discount=Decimal("0.5"))
    CreditAccount.objects.filter(organization=organization).update(price_plan=plan)
    usage, record = charged(client, hub)
    full = (Decimal(usage.prompt_tokens) * 2 + Decimal(usage.completion_tokens) * 4) / 10**6
    assert record.price == full / 2 and record.cost == full / 2  # cost 1/2 per million, price 2/4


def test_an_organisation_on_a_margin_plan_pays_cost_plus_its_margin(client, hub, upstream, organization):
    plan = PricePlan.objects.create(name="enterprise", margin=Decimal("0.1"))
    CreditAccount.objects.filter(organization=organization).update(price_plan=plan)
    _usage, record = charged(client, hub)
    assert record.price == record.cost * Decimal("1.1")


def test_a_rate_with_costs_only_is_sold_at_the_default_margin(client, hub, upstream, openai_provider, settings):
    settings.HUB_DEFAULT_MARGIN = Decimal("0.5")
    add_model(openai_provider, "openai/unpriced", "gpt-4o-mini", input_cost=Decimal(2), output_cost=Decimal(4))
    _usage, record = charged(client, hub, "openai/unpriced")
    assert record.price == record.cost * Decimal("1.5") > 0


def test_a_margin_derives_the_cached_input_price_too(openai_provider):
    model = add_model(
        openai_provider,
        "openai/cached",
        "gpt-4o-mini",
        input_cost=Decimal(2),
        cached_input_cost=Decimal("0.5"),
        output_cost=Decimal(8),
        margin=Decimal("0.2"),
    )
    rate = ModelRate.objects.get(model=model)
    assert (rate.input_price, rate.cached_input_price, rate.output_price) == (
        Decimal("2.4"),
        Decimal("0.6"),
        Decimal("9.6"),
    )


def test_a_plan_has_a_discount_or_a_margin_not_both(transactional_db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        PricePlan(name="both", discount=Decimal("0.1"), margin=Decimal("0.1")).full_clean()
    with pytest.raises(ValidationError):
        PricePlan(name="neither").full_clean()
    with pytest.raises(ValidationError):
        PricePlan(name="too much", discount=Decimal("1.5")).full_clean()


def test_the_plan_lowers_what_a_request_must_hold(client, hub, upstream, organization, openai_provider):
    # 0.001 credit: a 100-token answer at 20,000 per million output tokens needs 2 credits to hold,
    # 1 credit under a 50% discount plan; the organisation has 10 then 1.5.
    add_model(openai_provider, "openai/pricey", "gpt-4o-mini", input_price=Decimal(0), output_price=Decimal(20000))
    from billing.services import credit_grant

    credit_grant(organization=organization, amount=Decimal("-8.5"), kind="adjustment", description="down to 1.5")
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="openai/pricey", messages=HELLO, max_tokens=100)
    assert raised.value.status_code == 402
    plan = PricePlan.objects.create(name="half", discount=Decimal("0.5"))
    CreditAccount.objects.filter(organization=organization).update(price_plan=plan)
    from hub import auth

    auth.forget_all()  # plans reach the gateway with the key (HUB_AUTH_CACHE_SECONDS)
    assert client.chat.completions.create(model="openai/pricey", messages=HELLO, max_tokens=100).choices


def test_operators_put_an_organisation_on_a_plan_in_the_admin(organization, transactional_db):
    from django.contrib import admin
    from django.test import Client, RequestFactory

    from accounts.models import User

    operator = User.objects.create_superuser("operator", "op@example.com", "pw")
    browser = Client()
    browser.force_login(operator)
    assert browser.post("/admin/billing/priceplan/add/", {"name": "nonprofit", "discount": "0.3"}).status_code == 302
    account = CreditAccount.objects.get(organization=organization)
    page = browser.get(f"/admin/billing/creditaccount/{account.pk}/change/").content.decode()
    assert 'name="price_plan"' in page and "nonprofit" in page
    request = RequestFactory().post("/")
    request.user = operator
    form = admin.site._registry[CreditAccount].get_form(request, account)(
        data={"price_plan": PricePlan.objects.get().pk}, instance=account
    )
    assert form.is_valid(), form.errors
    form.save()
    assert CreditAccount.objects.get(pk=account.pk).price_plan.name == "nonprofit"
