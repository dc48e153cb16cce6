"""Billing settings: the billing email (where billing emails also go) and the low-balance email's threshold."""

from django.contrib import messages
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.dashboard import organization_required

from .. import notifications, selectors
from ..forms import BillingSettingsForm, plain
from .common import SeeOther, actor_of


@require_http_methods(["GET", "POST"])
@organization_required(action="buy_credits")
def billing_settings(request):
    default = notifications.default_threshold()
    if request.method == "POST":
        form = BillingSettingsForm(request.POST, default_threshold=default)
        if form.is_valid():
            notifications.billing_settings_set(
                organization=request.organization, actor=actor_of(request), **form.cleaned_data
            )
            messages.success(request, _("Billing settings saved."))
            return SeeOther(reverse("dashboard-billing-settings"))
        return render(request, "billing/dashboard/settings.html", {"form": form}, status=400)
    account = selectors.balance_of(organization=request.organization)
    alert = selectors.low_balance_alert_of(organization=request.organization)
    initial = {
        "billing_email": account.billing_email,
        "low_balance_enabled": alert.enabled if alert is not None else True,
        "low_balance_threshold": plain(alert.threshold) if alert is not None else None,
    }
    form = BillingSettingsForm(initial=initial, default_threshold=default)
    return render(request, "billing/dashboard/settings.html", {"form": form})
