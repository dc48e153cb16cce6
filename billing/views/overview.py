"""The dashboard's first page (/dashboard/): the current organisation's credit, spend, requests and errors
(billing/overview.py), a low-balance banner, and where to start with the API."""

from django.conf import settings
from django.shortcuts import render

from accounts.dashboard import organization_required

from ..overview import overview_of


@organization_required
def overview(request):
    context = {
        "overview": overview_of(organization=request.organization),
        "currency": settings.STRIPE_CURRENCY.upper(),
        "base_url": request.build_absolute_uri("/v1"),
    }
    return render(request, "billing/dashboard/overview.html", context)
