"""The cost and price of teams, the groups of an organisation's keys (kept by accounts/teams.py).

A key belongs to at most one team; the report follows each key to its team
*now* (moving a key moves its past usage too). It is read from the daily
usage rollups joined through the key, so it is exact as of the last roll-up.
"""

from datetime import datetime
from decimal import Decimal

from django.db.models import Sum

from .models import UsageRollup, UsageRollupState
from .rollups import DAILY


def team_costs(*, organization, since: datetime, until: datetime) -> list[dict]:
    """Requests, tokens, cost and price per team and model over whole UTC days [since, until).

    Usage of keys in no team (or deleted keys, or none) is reported with team None.
    """
    rows = (
        UsageRollup.objects.filter(
            organization=organization, granularity=DAILY, period_start__gte=since, period_start__lt=until
        )
        .order_by()
        .values("api_key__team_id", "api_key__team__name", "model_name")
        .annotate(
            requests=Sum("requests"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            cost=Sum("cost"),
            price=Sum("price"),
        )
    )
    teams: dict = {}
    for row in rows:
        team_id = row["api_key__team_id"]
        team = teams.setdefault(
            team_id,
            {
                "team_id": team_id,
                "team": row["api_key__team__name"],
                "requests": 0,
                "cost": Decimal(0),
                "price": Decimal(0),
                "models": [],
            },
        )
        model = {name: row[name] for name in ("requests", "prompt_tokens", "completion_tokens", "cost", "price")}
        team["models"].append({"model": row["model_name"], **model})
        for name in ("requests", "cost", "price"):
            team[name] += row[name]
    for team in teams.values():
        team["models"].sort(key=lambda m: m["model"])
    # Named teams by name, then the usage of no team.
    return sorted(teams.values(), key=lambda t: (t["team"] is None, t["team"] or ""))


def rolled_up_at() -> datetime | None:
    return UsageRollupState.objects.filter(pk=1).values_list("rolled_up_at", flat=True).first()
