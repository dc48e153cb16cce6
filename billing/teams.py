"""Teams: groups of an organisation's keys, so that cost and price can be reported per team.

A key belongs to at most one team; the report follows each key to its team
*now* (moving a key moves its past usage too). It is read from the daily
usage rollups joined through the key, so it is exact as of the last roll-up.
"""

from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Sum

from accounts.models import ApiKey, Team
from accounts.services import AccountsError, Actor, audit_record

from .models import UsageRollup, UsageRollupState
from .rollups import DAILY


def team_create(*, organization, name: str, actor: Actor | None = None) -> Team:
    try:
        with transaction.atomic():
            team = Team.objects.create(organization=organization, name=name.strip())
            audit_record(action="team.create", actor=actor, organization=organization, target=team,
                         details={"name": team.name})
    except IntegrityError:
        raise AccountsError(f"There is a team named {name!r} already.", code="team_exists", param="name") from None
    return team


def team_rename(*, team: Team, name: str, actor: Actor | None = None) -> Team:
    old, team.name = team.name, name.strip()
    try:
        with transaction.atomic():
            team.save(update_fields=["name"])
            audit_record(action="team.rename", actor=actor, organization=team.organization, target=team,
                         details={"from": old, "to": team.name})
    except IntegrityError:
        raise AccountsError(f"There is a team named {name!r} already.", code="team_exists", param="name") from None
    return team


def team_delete(*, team: Team, actor: Actor | None = None) -> None:
    """Delete a team; its keys stay, with no team."""
    with transaction.atomic():
        audit_record(action="team.delete", actor=actor, organization=team.organization, target=team,
                     details={"name": team.name, "keys": list(team.api_keys.values_list("pk", flat=True))})
        team.delete()


def api_key_team_set(*, api_key: ApiKey, team: Team | None, actor: Actor | None = None) -> ApiKey:
    if team is not None and team.organization_id != api_key.organization_id:
        raise AccountsError("No such team in this organisation.", code="team_not_found", param="team")
    if api_key.team_id == (team.pk if team else None):
        return api_key
    with transaction.atomic():
        old = api_key.team.name if api_key.team else None
        api_key.team = team
        api_key.save(update_fields=["team"])
        audit_record(action="key.team_change", actor=actor, organization=api_key.organization, target=api_key,
                     details={"prefix": api_key.prefix, "from": old, "to": team.name if team else None})
    return api_key


def team_costs(*, organization, since: datetime, until: datetime) -> list[dict]:
    """Requests, tokens, cost and price per team and model over whole UTC days [since, until).

    Usage of keys in no team (or deleted keys, or none) is reported with team None.
    """
    rows = (
        UsageRollup.objects.filter(organization=organization, granularity=DAILY, period_start__gte=since,
                                   period_start__lt=until)
        .order_by().values("api_key__team_id", "api_key__team__name", "model_name")
        .annotate(requests=Sum("requests"), prompt_tokens=Sum("prompt_tokens"),
                  completion_tokens=Sum("completion_tokens"), cost=Sum("cost"), price=Sum("price"))
    )
    teams: dict = {}
    for row in rows:
        team_id = row["api_key__team_id"]
        team = teams.setdefault(team_id, {"team_id": team_id, "team": row["api_key__team__name"], "requests": 0,
                                          "cost": Decimal(0), "price": Decimal(0), "models": []})
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


def teams_of(*, organization):
    return Team.objects.filter(organization=organization).prefetch_related("api_keys")
