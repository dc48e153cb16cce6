"""The Billing page: the balance, buying credit with Stripe Checkout, and auto-recharge with its saved card.

Credit never moves here. A top-up is a pending payment and a Checkout session (billing/payments.py); the credit
arrives with Stripe's verified webhook only (billing/webhooks.py), which the result page waits for."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.dashboard import organization_required

from .. import modes, payments, selectors
from ..forms import TOP_UP_PRESETS, AutoRechargeForm, TopUpForm, plain
from ..models import BillingMode
from ..stripe_gateway import PaymentRefused, PaymentsUnavailable
from .common import SeeOther, actor_of, currency

BANNERS = {
    ("checkout", "cancelled"): "checkout_cancelled",
    ("card", "pending"): "card_pending",
    ("card", "cancelled"): "card_cancelled",
}


def _auto_recharge_initial(recharge) -> dict:
    if recharge is None:
        return {"enabled": False, "threshold": None, "amount": None}
    return {"enabled": recharge.enabled, "threshold": plain(recharge.threshold), "amount": plain(recharge.amount)}


def _page(request, *, top_up=None, auto_recharge=None, error: str = "", status: int = 200):
    organization = request.organization
    account = selectors.balance_of(organization=organization)
    recharge = selectors.auto_recharge_of(organization=organization)
    banner = next((name for (key, value), name in BANNERS.items() if request.GET.get(key) == value), "")
    context = {
        "account": account,
        "currency": currency(),
        "mode": modes.effective_mode(account),
        "credits_mode": modes.effective_mode(account) == BillingMode.CREDITS,
        "presets": TOP_UP_PRESETS,
        "bounds": (payments.MIN_TOP_UP, payments.MAX_TOP_UP),
        "top_up_form": top_up or TopUpForm(),
        "recharge": recharge,
        "auto_recharge_form": auto_recharge or AutoRechargeForm(initial=_auto_recharge_initial(recharge)),
        "recent_payments": list(selectors.payments_of(organization=organization)[:5])
        if request.can["view_invoices"]
        else [],
        "banner": banner,
        "error": error,
    }
    return render(request, "billing/dashboard/billing.html", context, status=status)


@require_GET
@organization_required(action="view_balance")
def billing(request):
    return _page(request)


@require_POST
@organization_required(action="buy_credits")
def checkout(request):
    form = TopUpForm(request.POST)
    if not form.is_valid():
        return _page(request, top_up=form, status=400)
    done = request.build_absolute_uri(reverse("dashboard-billing-result"))
    try:
        url = payments.checkout_create(
            organization=request.organization,
            amount=form.cleaned_data["amount"],
            requested_by=request.user,
            # Stripe puts the session's id in the address it sends the buyer back to.
            success_url=f"{done}?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=request.build_absolute_uri(reverse("dashboard-billing")) + "?checkout=cancelled",
        )[1]
    except PaymentRefused as error:
        form.add_error("amount", error.message)
        return _page(request, top_up=form, status=400)
    except PaymentsUnavailable:
        return _page(request, top_up=form, error=_("Payments are not available right now."), status=503)
    return SeeOther(url)


@require_GET
@organization_required(action="view_invoices")
def result(request):
    """Where Stripe sends the buyer back: "pending" until the webhook has credited the payment."""
    session_id = request.GET.get("session_id", "")
    if not session_id:
        raise Http404
    payment = get_object_or_404(
        selectors.payments_of(organization=request.organization), stripe_checkout_session_id=session_id
    )
    return render(request, "billing/dashboard/result.html", _status_context(request, payment))


@require_GET
@organization_required(action="view_invoices")
def payment_status(request, pk: int):
    """The result page's status, which htmx asks for every two seconds until it is final."""
    payment = get_object_or_404(selectors.payments_of(organization=request.organization), pk=pk)
    return render(request, "billing/dashboard/payment_status.html", _status_context(request, payment))


POLLS = 150  # every two seconds: five minutes, then the page stops asking and says so


def _status_context(request, payment) -> dict:
    try:
        poll = max(0, int(request.GET.get("poll", "0")))
    except ValueError:
        poll = 0
    credited = selectors.payment_credited(payment)
    if credited:
        state = "credited"
    elif payment.status == payment.Status.FAILED:
        state = "failed"
    else:
        state = "pending"
    return {
        "payment": payment,
        "state": state,
        "poll": poll + 1,
        "polling": state == "pending" and poll < POLLS,
        "currency": currency(),
        "account": selectors.balance_of(organization=request.organization),
    }


@require_POST
@organization_required(action="buy_credits")
def auto_recharge(request):
    form = AutoRechargeForm(request.POST)
    if not form.is_valid():
        return _page(request, auto_recharge=form, status=400)
    try:
        payments.auto_recharge_configure(
            organization=request.organization, actor=actor_of(request), **form.cleaned_data
        )
    except PaymentRefused as error:
        if error.code == "no_payment_method":
            form.add_error("enabled", _("Save a card first."))
        else:
            form.add_error(error.param if error.param in form.fields else None, error.message)
        return _page(request, auto_recharge=form, status=400)
    messages.success(request, _("Auto-recharge saved."))
    return SeeOther(reverse("dashboard-billing") + "#auto-recharge")


@require_POST
@organization_required(action="buy_credits")
def card(request):
    """Save a card for auto-recharge on Stripe's own page (Checkout in setup mode); the webhook keeps it."""
    back = request.build_absolute_uri(reverse("dashboard-billing"))
    try:
        url = payments.auto_recharge_card_checkout(
            organization=request.organization,
            actor=actor_of(request),
            success_url=f"{back}?card=pending#auto-recharge",
            cancel_url=f"{back}?card=cancelled#auto-recharge",
        )
    except PaymentsUnavailable:
        return _page(request, error=_("Payments are not available right now."), status=503)
    return SeeOther(url)
