"""The operator overview (the admin's index, hub/operator_overview.py) after traffic across organisations,
providers, credentials and models: every figure equals the ledger and the usage records, each links to the
admin list behind it with as many rows, and only staff see it."""

import math
import re
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from billing import services
from billing.models import LedgerEntry, UsageRecord
from billing.rollups import LATENCY_BOUNDS_MS, roll_up
from hub import operator_overview, route_health
from hub.route_state import Health
from tests import factories

pytestmark = pytest.mark.django_db

D = Decimal


def nearest_rank(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def upper_bound(ms: int) -> int:
    return min(bound for bound in LATENCY_BOUNDS_MS if bound >= ms)


@pytest.fixture
def traffic():
    return make_traffic()


def make_traffic() -> dict:
    """Three organisations on two providers (three credentials) and three models, one sold below cost; a refused
    request that counts but costs nothing; a disabled credential and one cooling down; a hold in flight."""
    now = timezone.now()
    openai = factories.provider("openai", secret="sk-o-1", credential_name="main")
    anthropic = factories.provider("anthropic", secret="sk-a-1", credential_name="main")
    spare = factories.credential(openai, "sk-o-2", name="spare")
    off = factories.credential(anthropic, "sk-a-2", name="off", enabled=False)
    cheap = factories.add_model(
        openai,
        "openai/cheap",
        "cheap",
        input_cost=D(4),
        output_cost=D(4),
        margin=None,
        input_price=D(1),
        output_price=D(1),
    )
    factories.add_model(openai, "openai/gpt", "gpt")
    factories.add_model(anthropic, "anthropic/claude", "claude")
    acme = factories.organization("Acme", credit="100")
    globex = factories.organization("Globex", credit="1.00")
    initech = factories.organization("Initech", credit="50")
    cred = {c.name + "@" + c.provider.name: c for c in [*openai.credentials.all(), *anthropic.credentials.all()]}
    plan = [
        # org, model, provider, credential, price, cost, status, latency, ttft
        (acme, "openai/gpt", openai, cred["main@openai"], "0.50", "0.20", "ok", 100, 20),
        (acme, "openai/gpt", openai, spare, "0.70", "0.30", "ok", 300, 40),
        (acme, "anthropic/claude", anthropic, cred["main@anthropic"], "1.20", "0.40", "ok", 900, 200),
        (globex, "openai/cheap", openai, cred["main@openai"], "0.25", "1.00", "ok", 200, 30),
        (globex, "openai/gpt", openai, cred["main@openai"], "0.00", "0.00", "client_error", 5, None),
        (initech, "anthropic/claude", anthropic, cred["main@anthropic"], "0.00", "0.10", "upstream_error", 1200, None),
        (initech, "anthropic/claude", anthropic, cred["main@anthropic"], "2.00", "0.80", "ok", 700, 150),
    ]
    events = []
    for n, (org, model, provider, credential, price, cost, status, latency, ttft) in enumerate(plan):
        events.append(
            factories.usage_event(
                org,
                model_name=model,
                served_model=model,
                provider_id=provider.pk,
                credential_id=credential.pk,
                price=price,
                cost=cost,
                status=status,
                latency_ms=latency,
                first_token_ms=ttft,
                created_at=now - timedelta(hours=n),
            )
        )
    services.record_usage(events)
    roll_up(now=now)
    services.hold_place(organization_id=acme.pk, request_id="in-flight", amount=D("0.40"), ttl_seconds=300)
    route_health.store().write(
        spare.pk, Health(failures=3, cooldown_until=now.timestamp() + 300, reason="upstream 503", since=now.timestamp())
    )
    services.reconcile_balances()
    return {"plan": plan, "now": now, "acme": acme, "globex": globex, "off": off, "spare": spare, "cheap": cheap}


@pytest.fixture
def operator():
    client = Client()
    client.force_login(User.objects.create_superuser("op", "op@example.com", "pw"))
    return client


def test_it_refuses_a_user_who_is_not_staff():
    client = Client()
    client.force_login(User.objects.create_user("outsider", "o@example.com", "pw"))
    response = client.get("/admin/")
    assert response.status_code in (302, 403)
    assert "operator-overview" not in response.content.decode()


def test_every_figure_equals_the_ledger_and_the_records(traffic, operator):
    now = traffic["now"]
    today = now.astimezone(UTC).date()
    o = operator_overview.overview_of(first=today - timedelta(days=6), last=today)
    records = UsageRecord.objects.all()
    charged = -sum(e.amount for e in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.USAGE))
    assert o.total.revenue == charged == sum(r.price for r in records) == D("4.65")
    assert o.total.cost == sum(r.cost for r in records) == D("2.80")
    assert o.total.margin == D("1.85")
    assert o.total.requests == records.count() == 7  # the refused request counts, at no charge
    assert sum(line.figures.revenue for line in o.by_day) == o.total.revenue
    by_provider = {line.label: line.figures for line in o.by_provider}
    assert by_provider["openai"].revenue == D("1.45") and by_provider["openai"].requests == 4
    assert by_provider["anthropic"].cost == D("1.30")
    by_org = {line.label: line.figures for line in o.top_organizations}
    assert [line.label for line in o.top_organizations] == ["Acme", "Initech", "Globex"]
    for org in ("Acme", "Globex", "Initech"):
        ledger = -sum(e.amount for e in LedgerEntry.objects.filter(account__organization__name=org, kind="usage"))
        assert by_org[org].revenue == ledger
    assert [line.label for line in o.below_cost_sold] == ["openai/cheap"]
    assert [row["model"] for row in o.below_cost_rates] == ["openai/cheap"]
    # Latency per provider and credential, from the route rollups, against the records: a percentile is the
    # upper bound of the bucket that the records' nearest-rank percentile falls in.
    for row in o.providers + o.credentials:
        column = "provider_id" if row in o.providers else "credential_id"
        mine = [r for r in records if getattr(r, column) == row.key]
        assert row.requests == len(mine)
        assert row.errors == sum(r.status != "ok" for r in mine)
        assert row.p50_ms == upper_bound(nearest_rank([r.latency_ms for r in mine], 0.5))
        assert row.p95_ms == upper_bound(nearest_rank([r.latency_ms for r in mine], 0.95))
        ttft = [r.first_token_ms for r in mine if r.first_token_ms is not None]
        assert row.ttft_p95_ms == (upper_bound(nearest_rank(ttft, 0.95)) if ttft else None)
    anthropic = next(b for b in o.providers if b.label == "anthropic")
    assert anthropic.errors == 1 and anthropic.error_rate == D("33.3")
    # Globex: 1.00 less 0.25 charged, at 0.25 a week = 0.0357/day: 21 days, fine; Acme 100 - 2.40 - 0.40 held.
    assert o.running_out == []
    assert {(r.credential.name, r.reason) for r in o.out_of_rotation} == {
        ("off", "Disabled"),
        ("spare", "upstream 503"),
    }
    assert o.holds_count == 1 and o.holds_amount == D("0.40")
    assert o.drift == []


def test_an_organisation_running_dry_and_a_drifting_balance_are_shown(traffic, operator):
    globex = traffic["globex"]
    type(globex.credit).objects.filter(pk=globex.credit.pk).update(balance=D("0.50"))  # less than its ledger
    services.reconcile_balances()
    today = traffic["now"].astimezone(UTC).date()
    o = operator_overview.overview_of(first=today, last=today)
    # 0.50 at 0.25 a week: 14 days; it is the drift the check reports. Spend of 0.25/7 a day leaves 14 days.
    assert [(d["organization"], d["balance"], d["ledger"]) for d in o.drift] == [(globex.pk, D("0.50"), D("0.75"))]
    acme = traffic["acme"]
    type(acme.credit).objects.filter(pk=acme.credit.pk).update(balance=D("5.00"))
    runway = operator_overview.running_out(now=traffic["now"])
    # Acme: 5.00 - 0.40 held, at 2.40 a week: 13.4 days. Not yet. At 1.00 left it is.
    assert runway == []
    type(acme.credit).objects.filter(pk=acme.credit.pk).update(balance=D("1.00"))
    (runway,) = operator_overview.running_out(now=traffic["now"])
    assert runway.organization == acme and runway.available == D("0.60")
    assert runway.days == (D("0.60") / (D("2.40") / 7)).quantize(D("0.1"))


def test_the_index_shows_the_figures_and_links_to_lists_with_as_many_rows(traffic, operator):
    page = operator.get("/admin/?range=7d")
    assert page.status_code == 200
    html = page.content.decode()
    assert "operator-overview" in html and "usage-bars" in html
    assert "Site administration" in html or "app-accounts" in html  # the app list is still there
    assert 'data-figure="revenue"' in html and "4.65" in html
    links = re.findall(r'<tr data-key="([^"]+)"><td><a href="(/admin/billing/usagerecord/\?[^"]+)">', html)
    assert links
    records = UsageRecord.objects.all()
    expected = {
        "openai": records.filter(provider__name="openai").count(),
        "anthropic": records.filter(provider__name="anthropic").count(),
        "Acme": records.filter(organization__name="Acme").count(),
        "openai/cheap": 1,
    }
    seen = set()
    for key, href in links:
        if key not in expected:
            continue
        listing = operator.get(href.replace("&amp;", "&"))
        assert listing.status_code == 200, href
        count = listing.context["cl"].result_count
        assert count == expected[key], (key, href, count)
        seen.add(key)
    assert seen == set(expected)
    total = re.search(r'data-figure="requests"><a href="([^"]+)">7</a>', html)
    assert operator.get(total.group(1).replace("&amp;", "&")).context["cl"].result_count == records.count()
    holds = re.search(r'data-figure="holds"><a href="([^"]+)">1</a>', html)
    assert operator.get(holds.group(1)).context["cl"].result_count == 1
    assert operator.get("/admin/?range=custom&start=2026-01-02&end=2026-01-01").status_code == 200


def test_the_organisation_page_shows_usage_balance_keys_and_errors(traffic, operator):
    globex = traffic["globex"]
    factories.api_key(globex, "ci")
    page = operator.get(f"/admin/accounts/organization/{globex.pk}/change/")
    assert page.context["adminform"].form.errors == {}  # the page's own context is left as the admin made it
    html = page.content.decode()
    assert "Please correct" not in html
    assert "usage-bars" in html and "org-ledger" in html and "ci" in html
    assert "Refused (client error)" in html
    assert "0.75" in html  # its balance after the one charge
