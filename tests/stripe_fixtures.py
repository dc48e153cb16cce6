"""Stripe in tests: localstripe on loopback for the session, the settings that point the hub at it, a
client for the test's own calls (the browser's or Stripe's side), and signed deliveries to the webhook."""

import json
import time

import pytest
import stripe
from django.test import Client

from tests.fakes.server import running
from tests.fakes.stripe_server import LocalStripe, sign

SECRET = "whsec_test_hub"
WEBHOOK = "/manage/v1/billing/stripe/webhook"
GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # attaches, then every charge is declined


@pytest.fixture(scope="session")
def localstripe():
    with running(LocalStripe()) as server:
        yield server


@pytest.fixture
def stripe_settings(settings, localstripe):
    settings.STRIPE_SECRET_KEY = "sk_test_hub"
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_CURRENCY = "usd"
    return settings


@pytest.fixture
def stripe_client(localstripe):
    return stripe.StripeClient("sk_test_hub", base_addresses={"api": localstripe.url})


@pytest.fixture
def localstripe_webhook(localstripe, hub, stripe_settings):
    """localstripe delivers payment intent events to the live hub while the test runs."""
    # localstripe sends each event a second after it happens, to the webhooks
    # registered then: let earlier tests' events go to nobody first.
    time.sleep(1.2)
    localstripe.webhook(f"{hub.url}{WEBHOOK}", SECRET, ["payment_intent.succeeded", "payment_intent.payment_failed"])
    yield
    localstripe.webhook(f"{hub.url}{WEBHOOK}", SECRET, ["none"])


def card_of(stripe_client, card: str = GOOD_CARD, customer=None):
    """(customer, payment method) with the card attached, as a saved card is."""
    customer = customer or stripe_client.v1.customers.create()
    method = stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    stripe_client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    return customer, method


def deliver(evt: dict, secret: str = SECRET, payload: bytes | None = None):
    """POST an event to the webhook, signed the way Stripe signs it."""
    payload = payload if payload is not None else json.dumps(evt).encode()
    return Client().post(
        WEBHOOK, data=payload, content_type="application/json", headers={"Stripe-Signature": sign(payload, secret)}
    )


def wait_for(condition, timeout=10.0) -> bool:
    """For what localstripe delivers a second late: True once `condition()` holds, False after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
