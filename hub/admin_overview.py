"""The admin's index as the operator overview (hub/operator_overview.py), and an organisation's admin page with
its usage chart, balance history, keys and recent errors. Thin: a GET form picks the range, the module computes."""

from datetime import UTC, date, timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.admin import OrganizationAdmin
from accounts.models import ApiKey, Organization
from billing import analytics
from billing.models import CreditAccount, LedgerEntry, UsageRecord
from billing.views.common import currency

from . import operator_overview

RANGES = [
    ("today", _("Today")),
    ("7d", _("Last 7 days")),
    ("30d", _("Last 30 days")),
    ("this_month", _("This month")),
    ("custom", _("Custom")),
]
MOST_DAYS = 92
RECENT = 20


class RangeForm(forms.Form):
    range = forms.ChoiceField(label=_("Range"), choices=RANGES)
    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, today: date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today

    def clean(self):
        data = super().clean() or {}
        choice, today = data.get("range"), self.today
        if choice is None:
            return data
        if choice == "today":
            data["first"] = today
        elif choice in ("7d", "30d"):
            data["first"] = today - timedelta(days=int(choice[:-1]) - 1)
        elif choice == "this_month":
            data["first"] = today.replace(day=1)
        if choice != "custom":
            data["last"] = today
            return data
        start, end = data.get("start"), data.get("end")
        if start is None or end is None:
            raise forms.ValidationError(_("A custom range needs its first and last day."))
        if start > end:
            raise forms.ValidationError(_("The first day comes after the last."))
        if (end - start).days >= MOST_DAYS:
            raise forms.ValidationError(_("A range covers at most %(days)s days.") % {"days": MOST_DAYS})
        data["first"], data["last"] = start, end
        return data


def overview_context(request) -> dict:
    """What the admin's index shows (accounts/admin_site.py): the overview of the chosen UTC days."""
    form = RangeForm({"range": "7d", **request.GET.dict()}, today=timezone.now().astimezone(UTC).date())
    context: dict = {"range_form": form, "currency": currency()}
    if form.is_valid():
        context["overview"] = operator_overview.overview_of(
            first=form.cleaned_data["first"], last=form.cleaned_data["last"]
        )
    return context


admin.site.overview = overview_context  # type: ignore[attr-defined]  # admin.site is the HubAdminSite (accounts/admin_config.py)


def balance_history(organization) -> list[tuple[LedgerEntry, Decimal]]:
    """The last entries of its ledger, newest first, each with the balance it left (read back from the balance)."""
    account = CreditAccount.objects.filter(organization=organization).first()
    if account is None:
        return []
    after, rows = account.balance, []
    for entry in LedgerEntry.objects.filter(account=account).order_by("-created_at", "-id")[:RECENT]:
        rows.append((entry, after))
        after -= entry.amount
    return rows


class OrganizationOverviewAdmin(OrganizationAdmin):
    """The organisation's admin page with its last 30 days of usage, balance history, keys and recent errors."""

    change_form_template = "admin/accounts/organization/hub_change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        organization = Organization.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if organization is not None:
            today = timezone.localdate()
            report = analytics.usage_of(
                organization=organization, first=today - timedelta(days=29), last=today, bucket="day", grouping="model"
            )
            extra_context = {
                **(extra_context or {}),
                "report": report,
                "chart": analytics.chart_of(report, "spend"),
                "metric": "spend",
                "currency": currency(),
                "ledger": balance_history(organization),
                "api_keys": ApiKey.objects.filter(organization=organization).order_by("-created_at"),
                "recent_errors": UsageRecord.objects.filter(organization=organization)
                .exclude(status=UsageRecord.Status.OK)
                .order_by("-created_at")[:RECENT],
            }
        return super().change_view(request, object_id, form_url, extra_context)
