"""The usage page (/dashboard/usage/): spend, requests or tokens over a range of the user's days, per hour or
day, stacked by model, key, team or provider-facing model, with a table of the same figures
(billing/analytics.py, from the hourly rollups). Everyone in the organisation sees it (view_usage).

The choice is a GET form: it works without JavaScript; with htmx, the report is swapped in place (the form stays)
and the address follows."""

from datetime import date, timedelta

from django import forms
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from accounts.dashboard import organization_required

from .. import analytics
from .common import currency

RANGES = [
    ("today", _("Today")),
    ("7d", _("Last 7 days")),
    ("30d", _("Last 30 days")),
    ("this_month", _("This month")),
    ("last_month", _("Last month")),
    ("custom", _("Custom")),
]
BUCKETS = [("auto", _("Automatic")), ("hour", _("Hour")), ("day", _("Day"))]
GROUPINGS = [
    ("model", _("Model")),
    ("key", _("API key")),
    ("team", _("Team")),
    ("upstream", _("Provider's model")),
]
METRICS = [("spend", _("Spend")), ("requests", _("Requests")), ("tokens", _("Tokens"))]
DEFAULTS = {"range": "7d", "bucket": "auto", "group": "model", "metric": "spend"}
MOST_DAYS = 366
MOST_HOURLY_DAYS = 7


def _month(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


class UsageForm(forms.Form):
    range = forms.ChoiceField(label=_("Range"), choices=RANGES)
    start = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text=_("Custom range")
    )
    end = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text=_("Custom range")
    )
    bucket = forms.ChoiceField(label=_("Per"), choices=BUCKETS)
    group = forms.ChoiceField(label=_("Split by"), choices=GROUPINGS)
    metric = forms.ChoiceField(label=_("Show"), choices=METRICS)

    def __init__(self, *args, today: date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today

    def _days(self, choice: str) -> tuple[date, date]:
        today = self.today
        if choice == "today":
            return today, today
        if choice in ("7d", "30d"):
            return today - timedelta(days=int(choice[:-1]) - 1), today
        if choice == "this_month":
            return _month(today)
        if choice == "last_month":
            return _month(today.replace(day=1) - timedelta(days=1))
        start, end = self.cleaned_data.get("start"), self.cleaned_data.get("end")
        if start is None or end is None:
            raise forms.ValidationError(_("A custom range needs its first and last day."), code="custom")
        if start > end:
            raise forms.ValidationError(_("The first day comes after the last."), code="order")
        if (end - start).days >= MOST_DAYS:
            raise forms.ValidationError(_("A range covers at most %(days)s days."), params={"days": MOST_DAYS})
        return start, end

    def clean(self):
        data = super().clean() or {}
        if "range" not in data:
            return data
        data["first"], data["last"] = self._days(data["range"])
        days = (data["last"] - data["first"]).days + 1
        if data.get("bucket") == "auto":
            data["bucket"] = "hour" if days <= 2 else "day"
        elif data.get("bucket") == "hour" and days > MOST_HOURLY_DAYS:
            self.add_error(
                "bucket", _("Hours are shown for ranges of at most %(days)s days.") % {"days": MOST_HOURLY_DAYS}
            )
        return data


@require_GET
@vary_on_headers("HX-Request")
@organization_required(action="view_usage")
def usage(request):
    form = UsageForm({**DEFAULTS, **request.GET.dict()}, today=timezone.localdate())
    partial = bool(request.htmx) and not request.htmx.history_restore_request
    context = {"form": form, "currency": currency(), "partial": partial}
    if form.is_valid():
        data = form.cleaned_data
        report = analytics.usage_of(
            organization=request.organization,
            first=data["first"],
            last=data["last"],
            bucket=data["bucket"],
            grouping=data["group"],
            metric=data["metric"],
        )
        context |= {
            "report": report,
            "metric": data["metric"],
            "chart": analytics.chart_of(report, data["metric"]),
            "table": analytics.table_of(report, data["metric"]),
        }
    return render(
        request, "billing/dashboard/usage_report.html" if partial else "billing/dashboard/usage.html", context
    )
