"""Invoices (postpaid organisations) with their print view, and payments with their receipts: for the owners and
billing members (view_invoices). Another organisation's invoice or payment is not found (404)."""

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from accounts.dashboard import organization_required

from .. import modes, selectors
from ..api import invoice_context
from ..invoices import issuing
from ..models import BillingMode
from .common import currency


@require_GET
@organization_required(action="view_invoices")
def invoices(request):
    account = selectors.balance_of(organization=request.organization)
    context = {
        "invoices": list(issuing.invoices_of(organization=request.organization)),
        "postpaid": modes.effective_mode(account) == BillingMode.POSTPAID,
        "currency": currency(),
    }
    return render(request, "billing/dashboard/invoices.html", context)


@require_GET
@organization_required(action="view_invoices")
def invoice_print(request, number: str):
    """The same printable invoice the management API and the admin serve (templates/billing/invoice.html)."""
    invoice = get_object_or_404(
        issuing.invoices_of(organization=request.organization).select_related("organization").prefetch_related("lines"),
        number=number,
    )
    return render(request, "billing/invoice.html", invoice_context(invoice))


@require_GET
@organization_required(action="view_invoices")
def payments(request):
    context = {"payments": list(selectors.payments_of(organization=request.organization)[:200]), "currency": currency()}
    return render(request, "billing/dashboard/payments.html", context)


@require_GET
@organization_required(action="view_invoices")
def receipt(request, pk: int):
    payment = get_object_or_404(selectors.payments_of(organization=request.organization), pk=pk)
    context = {
        "payment": payment,
        "organization": request.organization,
        "credited": selectors.payment_credited(payment),
        "currency": currency(),
    }
    return render(request, "billing/dashboard/receipt.html", context)
