"""Reads of an organisation's usage and credit, for the management API (billing/api.py)."""

from datetime import datetime

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate

from .models import UsageRecord
from .services import account_open


def usage_records_of(*, organization, since: datetime, until: datetime):
    return UsageRecord.objects.filter(organization=organization, created_at__gte=since, created_at__lt=until)


def usage_totals_of(*, organization, since: datetime, until: datetime) -> list[dict]:
    """Requests, tokens and price per model that served and UTC day."""
    return list(
        usage_records_of(organization=organization, since=since, until=until)
        .annotate(day=TruncDate("created_at"))
        .values("day", "served_model")
        .annotate(
            requests=Count("id"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            total_tokens=Sum("total_tokens"),
            price=Sum("price"),
        )
        .order_by("day", "served_model")
    )


def balance_of(*, organization):
    return account_open(organization=organization)
