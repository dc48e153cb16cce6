"""What fuzzing the management API found: each once a 500, now a defined 4xx (or 503) in the API's error shape."""

from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import ApiKey
from billing.models import StripeEvent
from billing.money import max_amount
from tests.actors import as_user
from tests.fakes.stripe_server import event, sign
from tests.stripe_fixtures import SECRET, WEBHOOK, deliver

KEYS = "/manage/v1/orgs/acme/keys/"
INT_MAX = 2**31 - 1  # a PositiveIntegerField on PostgreSQL is an `integer`


def assert_error(response, status, param=None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param, error
    return error


@pytest.mark.parametrize(
    "field, value",
    [
        ("rpm_limit", INT_MAX + 1),
        ("rpm_limit", 10**30),
        ("tpm_limit", INT_MAX + 1),
        ("tpm_limit", 10**30),
        ("budget", "922337204"),
        ("budget", "999999999.9999999999"),
    ],
)
def test_a_limit_beyond_its_column_is_a_400_naming_the_field(world, field, value):
    response = as_user(world.owner).post(KEYS, {"name": "huge", field: value}, format="json")

    assert_error(response, 400, param=field)
    assert not ApiKey.objects.filter(name="huge").exists()


def test_the_largest_limits_the_columns_hold_are_kept(world):
    response = as_user(world.owner).post(
        KEYS, {"name": "max", "rpm_limit": INT_MAX, "tpm_limit": INT_MAX, "budget": str(max_amount())}, format="json"
    )

    assert response.status_code == 201, response.content
    key = ApiKey.objects.get(name="max")
    assert (key.rpm_limit, key.tpm_limit, key.budget) == (INT_MAX, INT_MAX, max_amount())


def test_an_auto_recharge_threshold_beyond_the_money_column_is_a_400(world):
    response = as_user(world.owner).put(
        "/manage/v1/orgs/acme/billing/auto-recharge",
        {"enabled": False, "threshold": "9999999999.99", "amount": "10.00"},
        format="json",
    )

    assert_error(response, 400, param="threshold")


def test_options_and_refusals_on_the_printable_invoice_answer_in_json(world):
    options = as_user(world.owner).options("/manage/v1/orgs/acme/invoices/HUB-1/print")
    missing = as_user(world.owner).get("/manage/v1/orgs/acme/invoices/HUB-1/print")
    forbidden = as_user(world.viewer).get("/manage/v1/orgs/acme/invoices/HUB-1/print")

    assert options.status_code == 200 and options.json()["name"]
    assert_error(missing, 404)
    assert_error(forbidden, 403)


def test_saving_a_card_with_stripe_unreachable_is_a_503_like_checkout(world, settings):
    settings.STRIPE_SECRET_KEY = "sk_test_hub"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there

    response = as_user(world.owner).post("/manage/v1/orgs/acme/billing/auto-recharge/card")

    error = assert_error(response, 503)
    assert error["type"] == "server_error" and "Stripe" in error["message"]


@pytest.mark.parametrize(
    "envelope",
    [
        {"type": "payment_intent.succeeded", "data": {"object": {}}},  # no id
        {"id": 7, "type": "payment_intent.succeeded", "data": {"object": {}}},
        {"id": "evt_1", "data": {"object": {}}},  # no type
        {"id": "evt_1", "type": "x" * 101, "data": {"object": {}}},
        {"id": "evt_" + "1" * 300, "type": "payment_intent.succeeded", "data": {"object": {}}},
        {"id": "evt_\ud800", "type": "payment_intent.succeeded", "data": {"object": {}}},  # a lone surrogate
        {"id": "evt_1", "type": "payment_intent.succeeded"},  # no data.object
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": "pi_1"}},
        [1, 2],
    ],
)
def test_a_signed_event_not_shaped_like_one_is_a_400(db, settings, envelope):
    settings.STRIPE_WEBHOOK_SECRET = SECRET

    response = deliver(envelope)

    assert_error(response, 400)
    assert not StripeEvent.objects.exists()


def test_a_signed_payload_that_is_not_json_is_a_400_in_the_error_shape(db, settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    payload = b"{not json"

    response = Client().post(
        WEBHOOK, data=payload, content_type="application/json", headers={"Stripe-Signature": sign(payload, SECRET)}
    )

    assert_error(response, 400)


def test_a_well_shaped_event_still_goes_through(db, settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET

    response = deliver(event("customer.created", {"id": "cus_1"}))

    assert response.status_code == 200 and response.json()["outcome"] == "ignored: type not handled"


def test_the_largest_amount_is_what_a_64_bit_column_of_units_holds():
    assert max_amount() == Decimal(2**63 - 1).scaleb(-10) == Decimal("922337203.6854775807")
