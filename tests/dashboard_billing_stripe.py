"""Stripe for the dashboard's billing tests (tests/test_dashboard_billing*.py): localstripe, with Checkout in
front of it. localstripe has no Checkout, so `CheckoutOnLocalStripe` answers POST /v1/checkout/sessions itself
(payment mode as RecordedStripe does, setup mode too) and passes every other call to localstripe: customers,
payment intents and setup intents are localstripe's own."""

import copy
import uuid
from urllib.parse import parse_qsl

import httpx
import pytest

from tests.fakes.server import running
from tests.fakes.stripe_server import RecordedStripe, event, fixture
from tests.stripe_fixtures import card_of


class CheckoutOnLocalStripe(RecordedStripe):
    thread_name = "checkout-on-localstripe"

    def __init__(self, localstripe_url: str):
        super().__init__()
        self.localstripe_url = localstripe_url

    async def handle(self, scope, receive, send, body: bytes, headers: dict[str, str]) -> None:
        if scope["method"] == "POST" and scope["path"] == "/v1/checkout/sessions":
            return await super().handle(scope, receive, send, body, headers)
        query = scope.get("query_string", b"").decode()
        async with httpx.AsyncClient() as client:
            answer = await client.request(
                scope["method"],
                f"{self.localstripe_url}{scope['path']}{'?' + query if query else ''}",
                content=body,
                headers={k: v for k, v in headers.items() if k in ("authorization", "content-type")},
            )
        await send(
            {
                "type": "http.response.start",
                "status": answer.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer.content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.content})

    def checkout_session(self, form: dict) -> dict:
        if form.get("mode") != "setup":
            return super().checkout_session(form)
        session = fixture("checkout_session")
        session_id = f"cs_test_{uuid.uuid4().hex}"
        session.update(
            id=session_id,
            url=f"https://checkout.stripe.com/c/setup/{session_id}",
            mode="setup",
            amount_subtotal=None,
            amount_total=None,
            currency=form.get("currency"),
            customer=form.get("customer"),
            client_reference_id=None,
            success_url=form["success_url"],
            cancel_url=form["cancel_url"],
            metadata={k[len("metadata[") : -1]: v for k, v in form.items() if k.startswith("metadata[")},
        )
        return session

    def sessions(self, mode: str = "payment") -> list[dict]:
        """The forms of the Checkout sessions the hub asked for, in `mode`."""
        return [
            r["form"] for r in self.requests if r["path"] == "/v1/checkout/sessions" and r["form"].get("mode") == mode
        ]


@pytest.fixture
def checkout_stripe(stripe_settings, localstripe):
    with running(CheckoutOnLocalStripe(localstripe.url)) as server:
        stripe_settings.STRIPE_API_BASE = server.url
        yield server


def setup_completed(stripe_client, session_form: dict, session_id: str, card: str) -> tuple[dict, str]:
    """What Stripe's page does when the buyer saves `card`: a SetupIntent for the session's customer, confirmed
    (on localstripe); returns the checkout.session object Stripe's checkout.session.completed then carries, and
    the card's payment method."""
    method = stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    intent = stripe_client.v1.setup_intents.create(
        params={"customer": session_form["customer"], "usage": "off_session", "payment_method_types": ["card"]}  # type: ignore[typeddict-unknown-key]
    )
    stripe_client.v1.setup_intents.confirm(intent.id, params={"payment_method": method.id})
    session = fixture("checkout_session")
    session.update(
        id=session_id,
        mode="setup",
        status="complete",
        payment_status="no_payment_required",
        customer=session_form["customer"],
        setup_intent=intent.id,
        amount_total=None,
        metadata={k[len("metadata[") : -1]: v for k, v in session_form.items() if k.startswith("metadata[")},
    )
    return session, method.id


def paid_session(payment, intent_id: str) -> dict:
    """checkout.session.completed's object for a paid top-up."""
    session = fixture("checkout_session")
    session.update(
        id=payment.stripe_checkout_session_id,
        status="complete",
        payment_status="paid",
        payment_intent=intent_id,
        amount_total=int(payment.amount * 100),
        currency="usd",
        client_reference_id=str(payment.pk),
        metadata={"hub_payment": str(payment.pk), "hub_organization": str(payment.organization_id)},
    )
    return session


def query_of(url: str) -> dict:
    return dict(parse_qsl(url.partition("?")[2]))


@pytest.fixture
def stripe_form_action(settings):
    """The Content-Security-Policy a hub with Stripe configured sends (hub/settings.py's csp_form_action): the
    top-up's POST may redirect to Checkout. The test settings are read before the tests set a Stripe key."""
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["form-action"] = [*policy["DIRECTIVES"]["form-action"], "https://checkout.stripe.com"]
    settings.CONTENT_SECURITY_POLICY = policy


def play_checkout_page(page, checkout_stripe) -> list[str]:
    """Stripe's Checkout page is another site: played by the redirect back to the success URL it ends with.
    Returns the list of Checkout addresses the browser visits, filled as it goes."""
    visited: list[str] = []

    def checkout_page(route):
        visited.append(route.request.url)
        session_id = route.request.url.rsplit("/", 1)[1]
        back = checkout_stripe.sessions("payment")[-1]["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
        route.fulfill(status=303, headers={"Location": back})

    page.route("https://checkout.stripe.com/**", checkout_page)
    return visited


def checkout_paid(stripe_client, payment, cents: int):
    """(the payment intent, checkout.session.completed): the card charged on localstripe for the Checkout
    payment, and the event Stripe then signs and delivers."""
    customer, method = card_of(stripe_client)
    intent = stripe_client.v1.payment_intents.create(
        params={
            "amount": cents,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
            "metadata": {"hub_payment": str(payment.pk)},
        }
    )
    return intent, event("checkout.session.completed", paid_session(payment, intent.id))
