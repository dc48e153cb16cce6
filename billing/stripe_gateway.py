"""The one place that talks to Stripe, and the one place that converts money to its minor units.

Credits are USD-denominated Decimals; Stripe counts integers of the
currency's minor unit (cents). Outbound calls carry an idempotency key
derived from the hub row they pay for, so a retried call (ours or the
library's) never creates a second session or a second charge.
"""

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import stripe
from django.conf import settings
from django.utils.translation import gettext as _

from accounts.errors import DomainError, Unavailable

from .models import StripeEvent

if TYPE_CHECKING:
    from stripe._base_address import BaseAddresses

CENT = Decimal("0.01")


class PaymentRefused(DomainError):
    """An amount or request that payments do not take (the answering layer makes it a 400)."""


class PaymentsUnavailable(Unavailable):
    """Payments are not configured here, or Stripe cannot be reached: not the caller's fault (a 503)."""


class InvalidEvent(DomainError):
    """A webhook delivery that is not a Stripe event signed with our secret, or not shaped like one (a 400)."""


class PaymentDeclined(Exception):
    """Stripe refused the charge itself (card declined, authentication needed): not worth retrying."""


def to_minor_units(amount: Decimal) -> int:
    """Credits (USD) as Stripe's minor units; refuses anything that is not whole cents."""
    amount = Decimal(amount)
    if not amount.is_finite() or amount != amount.quantize(CENT):
        raise PaymentRefused(_("%(amount)s is not a whole number of cents.") % {"amount": amount}, param="amount")
    return int(amount.scaleb(2))


def from_minor_units(units: int) -> Decimal:
    return Decimal(int(units)).scaleb(-2)


def currency() -> str:
    code = settings.STRIPE_CURRENCY.lower()
    if code != "usd":
        # Credits are priced in USD; charging another currency would need an
        # exchange rate the ledger does not keep.
        raise PaymentsUnavailable(f"STRIPE_CURRENCY must be usd, not {code!r}")
    return code


def client() -> stripe.StripeClient:
    if not settings.STRIPE_SECRET_KEY:
        raise PaymentsUnavailable(_("Payments are not configured on this hub (STRIPE_SECRET_KEY)."))
    base: BaseAddresses | None = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    # Retries are safe: every call that creates something carries an idempotency key.
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, base_addresses=base, max_network_retries=2)


@dataclass
class CheckoutSession:
    id: str
    url: str


def checkout_session_create(*, payment, success_url: str, cancel_url: str) -> CheckoutSession:
    metadata = {"hub_payment": str(payment.pk), "hub_organization": str(payment.organization_id)}
    try:
        session = _checkout_create(payment=payment, metadata=metadata, success_url=success_url, cancel_url=cancel_url)
    except stripe.StripeError as exc:
        raise PaymentsUnavailable(
            _("Stripe could not open a checkout: %(reason)s") % {"reason": exc.user_message or exc}
        ) from exc
    return CheckoutSession(id=session.id, url=session.url)


def _checkout_create(*, payment, metadata: dict, success_url: str, cancel_url: str):
    return client().v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency(),
                        "unit_amount": to_minor_units(payment.amount),
                        "product_data": {"name": "Hub credits"},
                    },
                }
            ],
            "client_reference_id": str(payment.pk),
            "metadata": metadata,
            # The payment intent carries the same metadata, so its own events
            # (payment_intent.succeeded, refunds) find the payment too.
            "payment_intent_data": {"metadata": metadata},
            "success_url": success_url,
            "cancel_url": cancel_url,
        },
        options={"idempotency_key": f"{payment.idempotency_key}-checkout"},
    )


@dataclass
class Charge:
    payment_intent_id: str
    status: str


def off_session_charge(*, payment, customer_id: str, payment_method_id: str) -> Charge:
    """Create and confirm a payment intent for a saved card, with no customer present."""
    return _off_session_charge(
        amount=payment.amount,
        customer_id=customer_id,
        payment_method_id=payment_method_id,
        metadata={"hub_payment": str(payment.pk), "hub_organization": str(payment.organization_id)},
        idempotency_key=f"{payment.idempotency_key}-intent",
    )


def invoice_charge(*, invoice, customer_id: str, payment_method_id: str) -> Charge:
    """Charge an invoice's total to a saved card. Its metadata names the invoice, never a payment:
    the webhook marks the invoice paid and grants no credit."""
    return _off_session_charge(
        amount=invoice.total,
        customer_id=customer_id,
        payment_method_id=payment_method_id,
        metadata={
            "hub_invoice": str(invoice.pk),
            "hub_invoice_number": invoice.number,
            "hub_organization": str(invoice.organization_id),
        },
        idempotency_key=f"{invoice.idempotency_key}-intent",
    )


def _off_session_charge(
    *, amount: Decimal, customer_id: str, payment_method_id: str, metadata: dict, idempotency_key: str
) -> Charge:
    try:
        intent = client().v1.payment_intents.create(
            params={
                "amount": to_minor_units(amount),
                "currency": currency(),
                "customer": customer_id,
                "payment_method": payment_method_id,
                "confirm": True,
                "off_session": True,
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
    except (stripe.CardError, stripe.InvalidRequestError) as exc:
        # A declined card, or a customer or card that no longer exists: asking
        # again would fail again.
        raise PaymentDeclined(exc.user_message or str(exc)) from exc
    return Charge(payment_intent_id=intent.id, status=intent.status)


@dataclass
class Setup:
    setup_intent_id: str
    client_secret: str
    customer_id: str


def card_setup_start(*, organization, customer_id: str, key: str) -> Setup:
    """A SetupIntent that saves a card for off-session charges (auto-recharge, invoices), and, the first
    time, the organisation's Stripe customer. The browser confirms it with Stripe.js and its client secret."""
    stripe_client = client()
    try:
        customer_id = _customer_for(stripe_client, organization=organization, customer_id=customer_id, key=key)
        intent = stripe_client.v1.setup_intents.create(
            # payment_method_types: the API (and localstripe) take it; stripe 16's typed params no longer list it.
            params={  # type: ignore[arg-type]
                "customer": customer_id,
                "usage": "off_session",
                "payment_method_types": ["card"],
                "metadata": {"hub_organization": str(organization.pk)},
            },
            options={"idempotency_key": f"hub-setup-{key}-intent"},
        )
    except stripe.StripeError as exc:
        # Unreachable, or refusing: the caller may try again later, as with a checkout.
        raise PaymentsUnavailable(
            _("Stripe could not start saving a card: %(reason)s") % {"reason": exc.user_message or exc}
        ) from exc
    if not intent.client_secret:  # Stripe sends one with every new SetupIntent
        raise PaymentsUnavailable("Stripe answered a SetupIntent without its client secret")
    return Setup(setup_intent_id=intent.id, client_secret=intent.client_secret, customer_id=customer_id)


def _customer_for(stripe_client: stripe.StripeClient, *, organization, customer_id: str, key: str) -> str:
    """The organisation's Stripe customer: the one it has, else a new one (once per `key`)."""
    if customer_id:
        return customer_id
    return stripe_client.v1.customers.create(
        params={"name": organization.name[:250], "metadata": {"hub_organization": str(organization.pk)}},
        options={"idempotency_key": f"hub-setup-{key}-customer"},
    ).id


@dataclass
class SetupCheckout:
    session_id: str
    url: str
    customer_id: str


def card_setup_checkout(
    *, organization, customer_id: str, key: str, success_url: str, cancel_url: str
) -> SetupCheckout:
    """A Checkout session in setup mode: Stripe's own page saves a card for off-session charges, so the
    dashboard needs no Stripe.js. The card is the one its SetupIntent ends with (setup_intent_of)."""
    stripe_client = client()
    metadata = {"hub_organization": str(organization.pk), "hub_card_setup": key}
    try:
        customer_id = _customer_for(stripe_client, organization=organization, customer_id=customer_id, key=key)
        session = stripe_client.v1.checkout.sessions.create(
            # payment_method_types: as for card_setup_start's SetupIntent, the API takes it; the typed params not.
            params={  # type: ignore[arg-type]
                "mode": "setup",
                "customer": customer_id,
                "currency": currency(),
                "payment_method_types": ["card"],
                "metadata": metadata,
                "setup_intent_data": {"metadata": metadata},
                "success_url": success_url,
                "cancel_url": cancel_url,
            },
            options={"idempotency_key": f"hub-setup-{key}-checkout"},
        )
    except stripe.StripeError as exc:
        raise PaymentsUnavailable(
            _("Stripe could not open a checkout: %(reason)s") % {"reason": exc.user_message or exc}
        ) from exc
    if not session.url:  # Stripe sends one with every hosted session
        raise PaymentsUnavailable("Stripe answered a Checkout session without its address")
    return SetupCheckout(session_id=session.id, url=session.url, customer_id=customer_id)


@dataclass
class SetupResult:
    status: str
    customer_id: str | None
    payment_method_id: str | None


def setup_intent_of(setup_intent_id: str) -> SetupResult:
    """A SetupIntent as Stripe has it now (a setup-mode session's event names it without its card)."""
    intent = client().v1.setup_intents.retrieve(setup_intent_id)

    def id_of(value) -> str | None:
        return value if value is None or isinstance(value, str) else value.id  # an id, unless expanded

    return SetupResult(
        status=intent.status, customer_id=id_of(intent.customer), payment_method_id=id_of(intent.payment_method)
    )


@dataclass
class Refund:
    id: str
    amount: Decimal
    status: str | None


def refunds_of_charge(charge_id: str) -> list[Refund]:
    """Every refund of a charge, read from Stripe (an event's embedded list may be cut short)."""
    refunds = client().v1.refunds.list(params={"charge": charge_id, "limit": 100})
    return [Refund(id=r.id, amount=from_minor_units(r.amount), status=r.status) for r in refunds.auto_paging_iter()]


def payment_intent_of_charge(charge_id: str) -> str | None:
    intent = client().v1.charges.retrieve(charge_id).payment_intent
    return intent.id if isinstance(intent, stripe.PaymentIntent) else intent  # an id, unless expanded


def event_verify(payload: bytes, signature: str) -> dict:
    """The event as a dict, if Stripe signed it with our secret and it is shaped like an event (an id, a type
    and a data.object that fit the hub's columns); InvalidEvent otherwise."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        # An empty secret would let anyone sign events.
        raise PaymentsUnavailable("the Stripe webhook is not configured on this hub (STRIPE_WEBHOOK_SECRET)")
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, stripe.Webhook.DEFAULT_TOLERANCE)
    except (stripe.SignatureVerificationError, ValueError) as exc:  # ValueError: a payload that is not UTF-8
        raise InvalidEvent(f"The Stripe signature does not verify: {exc}", code="invalid_signature") from None
    try:
        event = json.loads(payload)
    except ValueError:
        raise InvalidEvent("The event is not JSON.", code="invalid_json") from None
    # Signed is not the same as well-formed: a handler must never meet a KeyError or an overlong id.
    limits = {
        "id": StripeEvent._meta.get_field("stripe_id").max_length or 0,  # CharFields: always set
        "type": StripeEvent._meta.get_field("type").max_length or 0,
    }
    if not isinstance(event, dict):
        raise InvalidEvent("The event must be a JSON object.", code="invalid_event")
    for name, longest in limits.items():
        value = event.get(name)
        if not isinstance(value, str) or not 0 < len(value) <= longest or not (value.isascii() and value.isprintable()):
            raise InvalidEvent(
                f"The event needs an `{name}`: printable ASCII, at most {longest} characters.",
                code="invalid_event",
                param=name,
            )
    if not isinstance(event.get("data"), dict) or not isinstance(event["data"].get("object"), dict):
        raise InvalidEvent("The event needs a `data.object`.", code="invalid_event", param="data.object")
    return event
