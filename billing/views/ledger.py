"""The ledger page: every movement of credit in a UTC month, with the balance after each line.

Everyone in the organisation sees it (view_balance): it is the balance, in detail. Its top-ups link to their
receipts for those who may see payments (view_invoices)."""

from datetime import date, timedelta

from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.dashboard import organization_required

from .. import selectors
from .common import currency


def _month(value: str) -> date:
    """?month=YYYY-MM, else this month (UTC)."""
    try:
        year, month = (int(part) for part in value.split("-"))
        return date(year, month, 1)
    except ValueError:
        return timezone.now().date().replace(day=1)


@require_GET
@organization_required(action="view_balance")
def ledger(request):
    month = _month(request.GET.get("month", ""))
    since, until = selectors.month_of(month)
    period = selectors.ledger_of(organization=request.organization, since=since, until=until)
    this_month = timezone.now().date().replace(day=1)
    context = {
        "period": period,
        "month": month,
        "previous": (month - timedelta(days=1)).replace(day=1),
        "next": until.date() if until.date() <= this_month else None,
        "currency": currency(),
    }
    return render(request, "billing/dashboard/ledger.html", context)
