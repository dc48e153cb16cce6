"""What the billing pages share: the redirect a form that moves money answers with, and who is acting."""

from django.conf import settings
from django.http import HttpResponseRedirect

from accounts import addresses
from accounts.audit import Actor


class SeeOther(HttpResponseRedirect):
    """303: after a POST the browser GETs the next page (Stripe's Checkout, or the page back), never re-posts."""

    status_code = 303


def actor_of(request) -> Actor:
    return Actor(user=request.user, ip_address=addresses.client_address(request) or None)


def currency() -> str:
    return settings.STRIPE_CURRENCY.upper()
