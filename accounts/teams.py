"""Teams: groups of an organisation's keys, so that cost and price can be reported per team (billing/teams.py).

A key belongs to at most one team. Keeping the groups is the accounts app's
business; the report of their cost is billing's.
"""

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from .models import ApiKey, Team
from .services import AccountsError, Actor, audit_record


def teams_of(*, organization):
    return Team.objects.filter(organization=organization).prefetch_related("api_keys")


def team_create(*, organization, name: str, actor: Actor | None = None) -> Team:
    try:
        with transaction.atomic():
            team = Team.objects.create(organization=organization, name=name.strip())
            audit_record(
                action="team.create", actor=actor, organization=organization, target=team, details={"name": team.name}
            )
    except IntegrityError:
        raise AccountsError(
            _("There is a team named %(name)r already.") % {"name": name}, code="team_exists", param="name"
        ) from None
    return team


def team_rename(*, team: Team, name: str, actor: Actor | None = None) -> Team:
    old, team.name = team.name, name.strip()
    try:
        with transaction.atomic():
            team.save(update_fields=["name"])
            audit_record(
                action="team.rename",
                actor=actor,
                organization=team.organization,
                target=team,
                details={"from": old, "to": team.name},
            )
    except IntegrityError:
        raise AccountsError(
            _("There is a team named %(name)r already.") % {"name": name}, code="team_exists", param="name"
        ) from None
    return team


def team_delete(*, team: Team, actor: Actor | None = None) -> None:
    """Delete a team; its keys stay, with no team."""
    with transaction.atomic():
        audit_record(
            action="team.delete",
            actor=actor,
            organization=team.organization,
            target=team,
            details={"name": team.name, "keys": list(team.api_keys.values_list("pk", flat=True))},
        )
        team.delete()


def api_key_team_set(*, api_key: ApiKey, team: Team | None, actor: Actor | None = None) -> ApiKey:
    if team is not None and team.organization_id != api_key.organization_id:
        raise AccountsError(_("No such team in this organisation."), code="team_not_found", param="team")
    if api_key.team_id == (team.pk if team else None):
        return api_key
    with transaction.atomic():
        old = api_key.team.name if api_key.team else None
        api_key.team = team
        api_key.save(update_fields=["team"])
        audit_record(
            action="key.team_change",
            actor=actor,
            organization=api_key.organization,
            target=api_key,
            details={"prefix": api_key.prefix, "from": old, "to": team.name if team else None},
        )
    return api_key
