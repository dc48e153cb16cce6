"""Teams: org admins group keys into teams, and cost and price are reported per team and model,
exactly as the raw usage records add up."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from accounts import teams
from accounts.models import ApiKey, AuditEvent, Team, User
from accounts.services import api_key_create
from billing import modes, rollups, services
from billing.models import CreditAccount, UsageRecord
from billing.teams import team_costs
from tests import factories
from tests.actors import ROLES, as_key, as_user

TEAMS = "/manage/v1/orgs/acme/teams/"
COSTS = "/manage/v1/orgs/acme/teams/costs"


@pytest.fixture
def ml(world):
    return teams.team_create(organization=world.acme, name="ML")


# Who may do what -------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_owners_and_admins_create_teams_others_may_not(world, role):
    response = as_user(getattr(world, role)).post(TEAMS, {"name": "Research"}, format="json")
    if role in ("owner", "admin"):
        assert response.status_code == 201, response.content
        assert response.json()["name"] == "Research" and response.json()["keys"] == []
        assert AuditEvent.objects.filter(action="team.create", actor_user=getattr(world, role)).exists()
    else:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
        assert not Team.objects.exists()


@pytest.mark.parametrize("role", ROLES)
def test_those_who_see_keys_see_teams(world, ml, role):
    response = as_user(getattr(world, role)).get(TEAMS)
    assert response.status_code == (403 if role == "billing" else 200)


def test_an_admin_key_manages_teams_of_its_own_organisation_only(world, ml):
    _, raw = api_key_create(organization=world.acme, name="ops", scope="admin")
    assert as_key(raw).post(TEAMS, {"name": "Ops"}, format="json").status_code == 201
    assert as_key(raw).post("/manage/v1/orgs/globex/teams/", {"name": "Ops"}, format="json").status_code == 404


def test_an_outsider_finds_no_team_and_no_key(world, ml):
    outsider = as_user(world.outsider)
    assert outsider.get(TEAMS).status_code == 404
    assert outsider.patch(f"{TEAMS}{ml.pk}", {"name": "Mine"}, format="json").status_code == 404
    # Globex's owner cannot put Acme's team on a Globex key either.
    response = outsider.patch(f"/manage/v1/orgs/globex/keys/{world.globex_key.pk}", {"team": ml.pk}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "team_not_found"
    assert ApiKey.objects.get(pk=world.globex_key.pk).team is None


# Teams and their keys --------------------------------------------------------


def test_a_team_name_is_unique_within_its_organisation(world, ml):
    owner = as_user(world.owner)
    response = owner.post(TEAMS, {"name": "ML"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "team_exists"
    assert (
        as_user(world.outsider).post("/manage/v1/orgs/globex/teams/", {"name": "ML"}, format="json").status_code == 201
    )


def test_an_admin_puts_a_key_in_a_team_and_takes_it_out(world, ml):
    admin = as_user(world.admin)
    url = f"/manage/v1/orgs/acme/keys/{world.acme_key.pk}"

    response = admin.patch(url, {"team": ml.pk}, format="json")
    assert response.status_code == 200 and response.json()["team"] == ml.pk
    assert admin.get(TEAMS).json()[0]["keys"] == [world.acme_key.pk]
    assert as_user(world.developer).patch(url, {"team": None}, format="json").status_code == 403

    assert admin.patch(url, {"team": None}, format="json").json()["team"] is None
    changes = AuditEvent.objects.filter(action="key.team_change").order_by("pk")
    assert [(e.details["from"], e.details["to"]) for e in changes] == [(None, "ML"), ("ML", None)]


def test_a_rotated_key_stays_in_its_team(world, ml):
    teams.api_key_team_set(api_key=world.acme_key, team=ml)
    response = as_user(world.owner).post(f"/manage/v1/orgs/acme/keys/{world.acme_key.pk}/rotate")
    assert response.status_code == 201
    assert response.json()["team"] == ml.pk


def test_renaming_and_deleting_a_team_leaves_its_keys(world, ml):
    teams.api_key_team_set(api_key=world.acme_key, team=ml)
    owner = as_user(world.owner)
    assert (
        owner.patch(f"{TEAMS}{ml.pk}", {"name": "Machine learning"}, format="json").json()["name"] == "Machine learning"
    )
    assert owner.delete(f"{TEAMS}{ml.pk}").status_code == 204
    assert ApiKey.objects.get(pk=world.acme_key.pk).team is None


def test_a_key_cannot_join_another_organisations_team_in_the_admin(world, ml):
    from django.core.exceptions import ValidationError

    world.globex_key.team = ml
    with pytest.raises(ValidationError):
        world.globex_key.full_clean()


# The cost report -------------------------------------------------------------

DAY = None  # set by _clock


@pytest.fixture(autouse=True)
def _clock():
    """The clock read at each test's start, not when the module was collected: a run that crosses midnight UTC
    would otherwise put "today's" records in yesterday."""
    global DAY
    DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)


_n = iter(range(1, 10**9))


def use(org, key, *, hours, model, price, cost):
    n = next(_n)
    return factories.usage_event(
        org,
        key=key,
        model_name=model,
        prompt_tokens=100 + n % 13,
        completion_tokens=20 + n % 7,
        price=price,
        cost=cost,
        created_at=DAY + timedelta(hours=hours),
        billing_mode="internal",
    )


@pytest.fixture
def spent(world, ml):
    """Usage over three days: keys in two teams, a key in none, no key at all; two models; another org."""
    research = teams.team_create(organization=world.acme, name="Research")
    ml_key, research_key, loose_key = (api_key_create(organization=world.acme, name=n)[0] for n in "abc")
    teams.api_key_team_set(api_key=ml_key, team=ml)
    teams.api_key_team_set(api_key=research_key, team=research)
    UsageRecord.objects.all().delete()  # the world's own usage, at "now"
    events = []
    for hours in (0, 5, 23, 24, 47, 50):
        events += [
            use(world.acme, ml_key, hours=hours, model="gpt-4o", price="0.0012345678", cost="0.0006172839"),
            use(world.acme, ml_key, hours=hours, model="claude", price="0.0300000001", cost="0.0200000001"),
            use(world.acme, research_key, hours=hours, model="gpt-4o", price="0.0000000007", cost="0.0000000003"),
            use(world.acme, loose_key, hours=hours, model="gpt-4o", price="1.1", cost="0.9"),
            use(world.acme, None, hours=hours, model="claude", price="0.5", cost="0.25"),
            use(world.globex, world.globex_key, hours=hours, model="gpt-4o", price="7", cost="3"),
        ]
    services.record_usage(events)
    rollups.roll_up()
    return world


def raw_by_team(org, since, until):
    totals = defaultdict(lambda: defaultdict(Decimal))
    for record in UsageRecord.objects.filter(
        organization=org, created_at__gte=since, created_at__lt=until
    ).select_related("api_key__team"):
        team = record.api_key.team.name if record.api_key and record.api_key.team else None
        row = totals[(team, record.model_name)]
        row["requests"] += 1
        row["prompt_tokens"] += record.prompt_tokens
        row["completion_tokens"] += record.completion_tokens
        row["cost"] += record.cost
        row["price"] += record.price
    return {key: dict(value) for key, value in totals.items()}


def report_by_team(report):
    return {
        (team["team"], model["model"]): {
            name: model[name] for name in ("requests", "prompt_tokens", "completion_tokens", "cost", "price")
        }
        for team in report
        for model in team["models"]
    }


@pytest.mark.parametrize("days", [(0, 1), (1, 3), (0, 3)])
def test_the_report_from_rollups_equals_the_raw_records_exactly(spent, days):
    since, until = DAY + timedelta(days=days[0]), DAY + timedelta(days=days[1])
    report = team_costs(organization=spent.acme, since=since, until=until)

    assert report_by_team(report) == raw_by_team(spent.acme, since, until)
    assert [t["team"] for t in report] == ["ML", "Research", None]
    for team in report:
        assert team["price"] == sum(m["price"] for m in team["models"])
        assert team["cost"] == sum(m["cost"] for m in team["models"])


def test_the_report_follows_a_key_to_its_team_now(spent, ml):
    key = ApiKey.objects.get(name="a")
    teams.api_key_team_set(api_key=key, team=None)
    report = team_costs(organization=spent.acme, since=DAY, until=DAY + timedelta(days=3))
    assert "ML" not in [t["team"] for t in report]
    assert report_by_team(report) == raw_by_team(spent.acme, DAY, DAY + timedelta(days=3))


def test_the_api_reports_price_to_everyone_and_cost_to_internal_organisations_only(spent):
    query = {"start": DAY.date().isoformat(), "end": (DAY + timedelta(days=2)).date().isoformat()}
    response = as_user(spent.viewer).get(COSTS, query)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["start"], body["end"]) == (query["start"], query["end"]) and body["rolled_up_at"]
    raw = raw_by_team(spent.acme, DAY, DAY + timedelta(days=3))
    by_team = {(t["team"], m["model"]): m for t in body["teams"] for m in t["models"]}
    assert {k: Decimal(v["price"]) for k, v in by_team.items()} == {k: v["price"] for k, v in raw.items()}
    assert all(m["cost"] is None for m in by_team.values()), "a credits tenant does not see the provider's cost"

    modes.billing_mode_set(account=CreditAccount.objects.get(organization=spent.acme), mode="internal")
    body = as_user(spent.viewer).get(COSTS, query).json()
    assert {(t["team"], m["model"]): Decimal(m["cost"]) for t in body["teams"] for m in t["models"]} == {
        k: v["cost"] for k, v in raw.items()
    }
    assert as_user(spent.outsider).get(COSTS, query).status_code == 404


def test_operators_see_a_teams_cost_in_the_admin(spent, ml):
    browser = Client()
    browser.force_login(User.objects.create_superuser("operator", "op@example.com", "pw"))
    changelist = browser.get("/admin/accounts/team/").content.decode()
    assert "Price this month" in changelist and "Research" in changelist

    # The usage is within the last three days: this month's table, or last month's.
    ml_page = browser.get(f"/admin/accounts/team/{ml.pk}/change/").content.decode()
    research = Team.objects.get(name="Research")
    research_page = browser.get(f"/admin/accounts/team/{research.pk}/change/").content.decode()
    assert "<td>claude</td>" in ml_page and "<td>gpt-4o</td>" in ml_page
    assert "<td>claude</td>" not in research_page and "<td>gpt-4o</td>" in research_page
