"""Accounts' admin with what billing knows of it: a team's cost and price (registered in hub/admin.py), and
what an audit event says of a ledger entry or a rate. Here, above both apps: accounts does not import billing."""

from datetime import timedelta

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db.models import OuterRef, Subquery, Sum
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.admin import TeamAdmin, admin_details
from billing.models import LedgerEntry, ModelRate, UsageRollup
from billing.money import MoneyField
from billing.rollups import DAILY, next_month, start_of_month
from billing.teams import team_costs


class TeamCostAdmin(TeamAdmin):
    """The team admin with cost and price: the columns are this month's (UTC), as rolled up."""

    list_display = ["name", "organization", "cost_this_month", "price_this_month", "created_at"]
    readonly_fields = ["costs", "created_at"]

    def get_fields(self, request, obj=None):
        return super().get_fields(request, obj) + (["costs"] if obj else [])

    def get_queryset(self, request):
        month = (
            UsageRollup.objects.filter(
                api_key__team=OuterRef("pk"), granularity=DAILY, period_start__gte=start_of_month(timezone.now())
            )
            .order_by()
            .values("api_key__team")
        )

        def total(field):
            return Subquery(month.annotate(total=Sum(field)).values("total"), output_field=MoneyField())

        return (
            super()
            .get_queryset(request)
            .select_related("organization")
            .annotate(month_cost=total("cost"), month_price=total("price"))
        )

    @admin.display(description="Cost this month", ordering="month_cost")
    def cost_this_month(self, obj):
        return obj.month_cost if obj.month_cost is not None else 0

    @admin.display(description="Price this month", ordering="month_price")
    def price_this_month(self, obj):
        return obj.month_price if obj.month_price is not None else 0

    @admin.display(description="Cost and price by model (UTC months, as rolled up)")
    def costs(self, obj):
        this = start_of_month(timezone.now())
        months = [(start_of_month(this - timedelta(days=1)), this), (this, next_month(this))]
        rows = []
        for since, until in months:
            for team in team_costs(organization=obj.organization, since=since, until=until):
                if team["team_id"] == obj.pk:
                    rows += [
                        (f"{since:%B %Y}", m["model"], m["requests"], m["cost"], m["price"]) for m in team["models"]
                    ]
        if not rows:
            return "No usage last month or this month."
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<table><tr><th>Month</th><th>Model</th><th>Requests</th><th>Cost</th><th>Price</th></tr>{}</table>", body
        )


@admin_details("billing", "ledgerentry")
def _ledger_entry_details(entry: LogEntry):
    ledger = LedgerEntry.objects.select_related("account__organization").filter(pk=entry.object_id).first()
    if ledger is None:
        return {}, None
    details = {"kind": ledger.kind, "amount": str(ledger.amount), "description": ledger.description}
    return details, ledger.account.organization


def _rate_details(lookup: dict) -> tuple[dict, None]:
    rate = ModelRate.objects.filter(**lookup).first()
    if rate is None:
        return {}, None
    return {
        "rate": {
            f: str(getattr(rate, f)) for f in ("input_cost", "output_cost", "margin", "input_price", "output_price")
        }
    }, None


@admin_details("billing", "modelrate")
def _model_rate_details(entry: LogEntry):
    return _rate_details({"pk": entry.object_id})


@admin_details("providers", "catalogmodel")
def _catalog_model_details(entry: LogEntry):
    return _rate_details({"model_id": entry.object_id})  # its rate is edited inline (hub/admin.py)
