"""The usage page (/dashboard/usage/, billing/analytics.py) by HTTP: every figure it shows reconciles with the
ledger, the invoice and the overview.

The clock: the page's today is Wednesday 1 April 2026 (FIXED_NOW, 06:00 UTC; 15:00 in Tokyo), the day after a
month end. Usage is recorded through billing.services.record_usage with tests/factories.usage_event, as the
gateway does (credits usage is charged to the ledger), then the rollup task runs (billing/tasks.py): the page
reads the rollups only. Around midnight, UTC's and Tokyo's (+09:00):

    31 Mar 14:30 UTC  (Tokyo 31 Mar 23:30)  demo/echo  key "web"   1.00
    31 Mar 15:30 UTC  (Tokyo  1 Apr 00:30)  demo       key "batch" 2.00  (asked by its alias; no model link)
    31 Mar 16:00 UTC  (Tokyo  1 Apr 01:00)  demo       key "batch" refused (402), free
    31 Mar 23:30 UTC  (Tokyo  1 Apr 08:30)  demo/echo  key "web"   0.50
     1 Apr 00:30 UTC  (Tokyo  1 Apr 09:30)  demo/echo  no key      0.25
     1 Apr 01:00 UTC  (Tokyo  1 Apr 10:00)  demo/echo  key "web"   free (price 0)
    30 Mar 12:00 UTC  (Tokyo 30 Mar 21:00)  demo/echo  key "web"   4.00
    31 Mar 10:00 UTC  (Tokyo 31 Mar 19:00)  demo/echo  key "web"   ran in internal mode, price 9.00: never spend

Besides Tokyo's: London's day clocks go forward (23 hours), and Kolkata's (+05:30), whose days the hourly rollups
can only count from the UTC hour before (the page says so).
"""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from accounts.models import Membership, Team
from billing import invoices, modes
from billing.models import CreditAccount, LedgerEntry, UsageRecord, UsageRollup
from billing.services import record_usage
from billing.tasks import roll_up_usage
from tests import factories
from tests.actors import ROLES, as_user, make_user

pytestmark = pytest.mark.django_db

FIXED_NOW = datetime(2026, 4, 1, 6, 0, tzinfo=UTC)
TOKYO = "Asia/Tokyo"


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    localtime = timezone.localtime

    def localdate(value=None, timezone=None):
        return localtime(value or FIXED_NOW, timezone).date()

    monkeypatch.setattr(timezone, "localdate", localdate)


@pytest.fixture
def catalogue():
    """demo/echo (alias demo), served by the demo provider as `echo`."""
    provider = factories.provider("demo-provider", kind="demo")
    model = factories.catalog_model("demo/echo", alias="demo")
    factories.route(model, provider, "echo")
    return model, provider


@pytest.fixture
def acme(settings, catalogue):
    """Acme with one member of every role and 100 of credit; (organisation, {role: user}, {key name: key})."""
    settings.HUB_STARTER_CREDITS = "0"
    owner = make_user("owner")
    organization = factories.organization("Acme", owner=owner, credit="100")
    members = {"owner": owner}
    for role in ROLES[1:]:
        members[role] = make_user(role)
        Membership.objects.create(user=members[role], organization=organization, role=role)
    keys = {name: factories.api_key(organization, name)[0] for name in ("web", "batch")}
    team = Team.objects.create(organization=organization, name="Frontend")
    keys["web"].team = team
    keys["web"].save(update_fields=["team"])
    return organization, members, keys


def event(organization, when, price, *, key=None, model="demo/echo", linked=True, mode="credits", **fields):
    model_obj, provider = fields.pop("catalogue")
    served = {"model_id": model_obj.pk, "served_model": model_obj.public_id, "provider_id": provider.pk}
    return factories.usage_event(
        organization,
        key=key,
        model_name=model,
        price=price,
        cost=fields.pop("cost", Decimal(price) / 2),
        created_at=when,
        billing_mode=mode,
        prompt_tokens=fields.pop("prompt_tokens", 100),
        completion_tokens=fields.pop("completion_tokens", 10),
        **(served if linked else {}),
        **fields,
    )


def around_midnight(organization, keys, catalogue, mode="credits"):
    c = {"catalogue": catalogue, "mode": mode}
    record_usage(
        [
            event(organization, at(3, 31, 14, 30), "1.00", key=keys["web"], **c),
            event(organization, at(3, 31, 15, 30), "2.00", key=keys["batch"], model="demo", linked=False, **c),
            event(
                organization,
                at(3, 31, 16),
                "0",
                key=keys["batch"],
                model="demo",
                linked=False,
                status=UsageRecord.Status.CLIENT_ERROR,
                http_status=402,
                prompt_tokens=0,
                completion_tokens=0,
                **c,
            ),
            event(organization, at(3, 31, 23, 30), "0.50", key=keys["web"], **c),
            event(organization, at(4, 1, 0, 30), "0.25", **c),
            event(organization, at(4, 1, 1), "0", key=keys["web"], **c),
            event(organization, at(3, 30, 12), "4.00", key=keys["web"], **c),
            event(organization, at(3, 31, 10), "9.00", key=keys["web"], catalogue=catalogue, mode="internal"),
        ]
    )
    roll_up_usage.delay()


def ledger_usage(organization, since: datetime, until: datetime) -> Decimal:
    """What the ledger charged for usage of [since, until): its usage entries, by when their request ran."""
    total = LedgerEntry.objects.filter(
        account__organization=organization, kind=LedgerEntry.Kind.USAGE, usage_at__gte=since, usage_at__lt=until
    ).aggregate(s=Sum("amount"))["s"]
    return -(total or Decimal(0))


def page(user, **query) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/dashboard/usage/", query)
    assert response.status_code == 200
    return response.content.decode()


def text(fragment: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split())


def stat(html: str, name: str) -> str:
    found = re.search(rf'<div class="stat" id="usage-{name}">(.*?)</div>', html, re.S)
    assert found, f"no stat {name}"
    return text(found[1])


def figure(html: str, name: str) -> Decimal:
    return Decimal(stat(html, name).split()[1].replace(",", ""))


def table(html: str, table_id: str) -> tuple[list[str], list[tuple[str, list[Decimal]]]]:
    """(column headings, [(row heading, [numbers])]) of a table, its footer's row last."""
    found = re.search(rf'<table [^>]*id="{table_id}">(.*?)</table>', html, re.S)
    assert found, f"no table {table_id}"
    head = re.search(r"<thead>(.*?)</thead>", found[1], re.S)
    assert head
    columns = [text(c) for c in re.findall(r"<th [^>]*>(.*?)</th>", head[1], re.S)]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", found[1].split("</thead>")[1], re.S):
        heading = re.search(r'<th scope="row">(.*?)</th>', row, re.S)
        assert heading
        cells = [Decimal(text(c).replace(",", "")) for c in re.findall(r"<td [^>]*>(.*?)</td>", row, re.S)]
        rows.append((text(heading[1]), cells))
    return columns, rows


def assert_adds_up(html: str, metric: str = "spend") -> dict[str, Decimal]:
    """Every period's total is the sum of its groups, every group's the sum of its periods, and the table's
    total is the stat's; returns each group's total by its heading."""
    columns, rows = table(html, "usage-table")
    *body, (footer, totals) = rows
    assert footer == "Total"
    for _, cells in body:
        assert sum(cells[:-1]) == cells[-1]
    for n in range(len(totals)):
        assert sum(cells[n] for _, cells in body) == totals[n]
    assert sum(totals[:-1]) == totals[-1] == figure(html, metric)
    _, groups = table(html, "usage-groups")
    *named, (_, all_groups) = groups
    index = {"requests": 0, "tokens": 1, "spend": 2}[metric]
    assert [cells[index] for _, cells in named] == totals[:-1] and all_groups[index] == totals[-1]
    return dict(zip(columns[1:-1], totals[:-1], strict=True))


def ledger_of_day(organization, day: datetime) -> Decimal:
    return ledger_usage(organization, day, day + timedelta(days=1))


# Roles --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_the_usage_page_and_its_link(acme, catalogue, role):
    organization, members, keys = acme
    around_midnight(organization, keys, catalogue)
    html = page(members[role], range="custom", start="2026-03-31", end="2026-03-31")
    assert "<h1>Usage</h1>" in html
    assert re.search(r'<a href="/dashboard/usage/" aria-current="page">Usage</a>', html)
    assert figure(html, "spend") == Decimal("3.50") == ledger_of_day(organization, at(3, 31, 0))


def test_a_visitor_is_sent_to_sign_in_and_another_organisations_member_sees_only_theirs(acme, catalogue):
    organization, _, keys = acme
    around_midnight(organization, keys, catalogue)
    response = Client().get("/dashboard/usage/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    outsider = make_user("outsider")
    factories.organization("Globex", owner=outsider)
    html = page(outsider, range="last_month")
    assert figure(html, "spend") == 0 and figure(html, "requests") == 0
    assert "No usage in this range." in html


def test_the_page_only_answers_get(acme):
    _, members, _ = acme
    client = Client()
    client.force_login(members["owner"])
    assert client.post("/dashboard/usage/").status_code == 405


# Reconciliation -------------------------------------------------------------------------------------------------


def test_a_utc_day_is_the_ledger_s_and_refused_and_free_requests_count_but_cost_nothing(acme, catalogue):
    organization, members, keys = acme
    around_midnight(organization, keys, catalogue)
    html = page(members["viewer"], range="custom", start="2026-03-31", end="2026-03-31", bucket="hour")
    # 1.00 + 2.00 + 0.50; the refused request and the internal one's 9.00 are no spend; the ledger agrees.
    assert figure(html, "spend") == Decimal("3.50") == ledger_of_day(organization, at(3, 31, 0))
    assert figure(html, "requests") == 5  # refused and internal ones included
    assert assert_adds_up(html) == {"demo/echo": Decimal("3.50")}  # asked for by alias: the one model
    requests = page(members["viewer"], range="custom", start="2026-03-31", end="2026-03-31", metric="requests")
    assert assert_adds_up(requests, "requests") == {"demo/echo": 5}
    hours = table(html, "usage-table")[1]
    assert len(hours) == 25  # 24 hours and the total
    assert dict(hours)["2026-03-31 16:00"][-1] == 0  # the refused request: counted, free


def test_a_tokyo_user_s_days_are_tokyo_s_and_still_the_ledger_s(acme, catalogue):
    organization, members, keys = acme
    members["viewer"].time_zone = TOKYO
    members["viewer"].save(update_fields=["time_zone"])
    around_midnight(organization, keys, catalogue)
    html = page(members["viewer"], range="custom", start="2026-03-30", end="2026-04-01")
    _, rows = table(html, "usage-table")
    by_day = {day[:10]: cells[-1] for day, cells in rows[:-1]}
    tokyo_midnight = {day: at(3, day - 1, 15) for day in (30, 31, 32)}  # of March's day, 15:00 UTC the day before
    assert by_day == {
        "2026-03-30": Decimal("4.00"),
        "2026-03-31": Decimal("1.00"),
        "2026-04-01": Decimal("2.75"),
    }
    assert by_day["2026-03-30"] == ledger_usage(organization, tokyo_midnight[30], tokyo_midnight[31])
    assert by_day["2026-03-31"] == ledger_usage(organization, tokyo_midnight[31], tokyo_midnight[32])
    assert by_day["2026-04-01"] == ledger_usage(
        organization, tokyo_midnight[32], tokyo_midnight[32] + timedelta(days=1)
    )
    assert figure(html, "spend") == sum(by_day.values())
    assert "Days and hours in Asia/Tokyo." in html
    assert_adds_up(html)
    # The same records for a UTC user: another split of the days, the same total.
    utc = page(members["owner"], range="custom", start="2026-03-30", end="2026-04-01")
    assert {d[:10]: c[-1] for d, c in table(utc, "usage-table")[1][:-1]} == {
        "2026-03-30": Decimal("4.00"),
        "2026-03-31": Decimal("3.50"),
        "2026-04-01": Decimal("0.25"),
    }
    assert figure(utc, "spend") == figure(html, "spend") == ledger_usage(organization, at(3, 29, 0), at(4, 2, 0))


@pytest.mark.parametrize("zone", ["UTC", TOKYO])
def test_last_month_ends_at_the_month_end_of_the_user_s_zone(acme, catalogue, zone):
    organization, members, keys = acme
    members["billing"].time_zone = zone
    members["billing"].save(update_fields=["time_zone"])
    around_midnight(organization, keys, catalogue)
    html = page(members["billing"], range="last_month")
    start, end = (at(3, 1, 0), at(4, 1, 0)) if zone == "UTC" else (at(2, 28, 15), at(3, 31, 15))
    assert figure(html, "spend") == ledger_usage(organization, start, end)
    assert figure(html, "spend") == (Decimal("7.50") if zone == "UTC" else Decimal("5.00"))
    _, rows = table(html, "usage-table")
    assert [day[:10] for day, _ in rows[:-1]] == [f"2026-03-{n:02d}" for n in range(1, 32)]  # every day, none dropped
    assert_adds_up(html)
    this_month = page(members["billing"], range="this_month")
    assert figure(this_month, "spend") == ledger_usage(organization, end, end + timedelta(days=30))


@pytest.mark.parametrize("zone", ["UTC", TOKYO])
def test_the_overview_s_spent_this_month_is_the_usage_page_s(acme, catalogue, zone):
    organization, members, keys = acme
    members["owner"].time_zone = zone
    members["owner"].save(update_fields=["time_zone"])
    around_midnight(organization, keys, catalogue)
    client = Client()
    client.force_login(members["owner"])
    overview = client.get("/dashboard/").content.decode()
    found = re.search(r'<div class="stat" id="stat-month">(.*?)</div>', overview, re.S)
    assert found
    usage = page(members["owner"], range="this_month")
    assert text(found[1]) == f"Spent this month {figure(usage, 'spend')} USD"
    assert figure(usage, "spend") == (Decimal("0.25") if zone == "UTC" else Decimal("2.75"))


@pytest.mark.parametrize("grouping", ["model", "key", "team", "upstream"])
@pytest.mark.parametrize("metric", ["spend", "requests", "tokens"])
def test_every_grouping_adds_up_to_the_same_totals(acme, catalogue, grouping, metric):
    organization, members, keys = acme
    around_midnight(organization, keys, catalogue)
    html = page(
        members["developer"], range="custom", start="2026-03-30", end="2026-04-01", group=grouping, metric=metric
    )
    groups = assert_adds_up(html, metric)
    assert figure(html, "spend") == Decimal("7.75") == ledger_usage(organization, at(3, 30, 0), at(4, 2, 0))
    assert figure(html, "requests") == 8
    assert figure(html, "tokens") == 7 * 110
    expected = {
        "model": {"demo/echo": {"spend": Decimal("7.75"), "requests": 8, "tokens": 770}},
        "key": {
            f"web (#{keys['web'].pk})": {"spend": Decimal("5.50"), "requests": 5, "tokens": 550},
            f"batch (#{keys['batch'].pk})": {"spend": Decimal("2.00"), "requests": 2, "tokens": 110},
            "No key": {"spend": Decimal("0.25"), "requests": 1, "tokens": 110},
        },
        "team": {
            "Frontend": {"spend": Decimal("5.50"), "requests": 5, "tokens": 550},
            "No team": {"spend": Decimal("2.25"), "requests": 3, "tokens": 220},
        },
        # The alias's requests never reached a provider (no route was recorded).
        "upstream": {
            "echo (demo-provider)": {"spend": Decimal("5.75"), "requests": 6, "tokens": 660},
            "Not served by a provider": {"spend": Decimal("2.00"), "requests": 2, "tokens": 110},
        },
    }[grouping]
    assert groups == {name: figures[metric] for name, figures in expected.items()}


def test_internal_mode_shows_the_cost(acme, catalogue, settings):
    organization, members, keys = acme
    settings.HUB_BILLING_MODE = "internal"
    CreditAccount.objects.filter(organization=organization).update(billing_mode="")
    around_midnight(organization, keys, catalogue, mode="internal")
    html = page(members["viewer"], range="custom", start="2026-03-31", end="2026-03-31")
    assert stat(html, "spend").startswith("Cost ")
    costs = UsageRecord.objects.filter(created_at__gte=at(3, 31, 0), created_at__lt=at(4, 1, 0)).aggregate(
        c=Sum("cost")
    )
    assert figure(html, "spend") == costs["c"] == Decimal("6.25")  # 0.50 + 1.00 + 0.25 + 4.50
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.USAGE).exists()


def test_postpaid_a_month_s_spend_is_its_invoice(acme, catalogue):
    organization, members, keys = acme
    modes.billing_mode_set(account=CreditAccount.objects.get(organization=organization), mode="postpaid")
    around_midnight(organization, keys, catalogue, mode="postpaid")
    html = page(members["billing"], range="last_month")
    invoice = invoices.invoice_issue(organization_id=organization.pk, period_start=at(3, 1, 0), now=at(4, 1, 2))
    assert invoice is not None
    assert figure(html, "spend") == invoice.subtotal == Decimal("7.50")
    lines = {line.model_name: line.amount for line in invoice.lines.all()}
    assert assert_adds_up(html) == lines == {"demo/echo": Decimal("7.50")}
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.USAGE).exists()


def test_the_management_api_s_totals_are_one_row_per_model(acme, catalogue):
    organization, members, keys = acme
    around_midnight(organization, keys, catalogue)
    totals = (
        as_user(members["viewer"])
        .get(f"/manage/v1/orgs/{organization.slug}/usage/totals", {"start": "2026-03-31", "end": "2026-03-31"})
        .json()
    )
    assert [(t["day"], t["model"], t["requests"], Decimal(t["price"])) for t in totals] == [
        ("2026-03-31", "demo/echo", 5, Decimal("12.50")),  # 9.00 of it ran in internal mode
    ]


# The form --------------------------------------------------------------------------------------------------------


def test_hours_cover_a_week_at_most_and_a_custom_range_needs_its_days(acme):
    _, members, _ = acme
    html = page(members["owner"], range="30d", bucket="hour")
    assert "Hours are shown for ranges of at most 7 days." in html and 'id="usage-table"' not in html
    html = page(members["owner"], range="custom", start="2026-03-05")
    assert "A custom range needs its first and last day." in html
    html = page(members["owner"], range="custom", start="2026-03-05", end="2026-03-01")
    assert "The first day comes after the last." in html
    html = page(members["owner"], range="nonsense")
    assert "Select a valid choice." in html


def test_the_default_is_the_last_seven_days_per_day_and_today_is_per_hour(acme, catalogue):
    organization, members, keys = acme
    around_midnight(organization, keys, catalogue)
    html = page(members["owner"])
    _, rows = table(html, "usage-table")
    assert [day[:10] for day, _ in rows[:-1]] == [f"2026-03-{n}" for n in range(26, 32)] + ["2026-04-01"]
    today = page(members["owner"], range="today")
    _, rows = table(today, "usage-table")
    assert len(rows) == 25 and figure(today, "spend") == Decimal("0.25")


def test_htmx_gets_the_region_only_and_the_chart_has_a_title_per_bar(acme, catalogue):
    organization, members, keys = acme
    around_midnight(organization, keys, catalogue)
    client = Client()
    client.force_login(members["owner"])
    response = client.get("/dashboard/usage/", {"range": "today"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html and "<form" not in html and 'id="usage-table"' in html
    assert "HX-Request" in response["Vary"]
    assert html.count('<g class="usage-bar">') == 24
    assert "<title>2026-04-01 00:00, demo/echo: 0.25 USD</title>" in html
    assert "style=" not in html


def test_a_model_name_a_client_made_up_is_escaped_in_the_chart_and_the_table(acme, catalogue):
    """A refused request is filed under the name asked for: whatever a client sent, the bars' markup (built in
    Python, billing.analytics.Chart.bars_markup) and the table show it as text."""
    organization, members, keys = acme
    hostile = '<img src=x onerror="alert(1)">&amp;'
    record_usage(
        [
            event(
                organization,
                at(4, 1, 0, 30),
                "0",
                key=keys["web"],
                model=hostile,
                linked=False,
                status=UsageRecord.Status.CLIENT_ERROR,
                catalogue=catalogue,
            )
        ]
    )
    roll_up_usage.delay()
    html = page(members["owner"], range="today", metric="requests")
    assert hostile not in html and "<img" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;amp;" in html
    assert "<title>2026-04-01 00:00, &lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;amp;: 1</title>" in html


def test_htmx_gets_an_invalid_form_s_errors_in_the_report(acme):
    _, members, _ = acme
    client = Client()
    client.force_login(members["owner"])
    response = client.get("/dashboard/usage/", {"range": "30d", "bucket": "hour"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert 'role="alert"' in html and "Per: Hours are shown for ranges of at most 7 days." in html
    assert 'id="usage-table"' not in html


def test_a_zone_half_an_hour_off_utc_counts_whole_utc_hours_and_says_so(acme, catalogue):
    organization, members, keys = acme
    members["viewer"].time_zone = "Asia/Kolkata"  # +05:30: 31 March starts at 30 March 18:30 UTC
    members["viewer"].save(update_fields=["time_zone"])
    around_midnight(organization, keys, catalogue)
    html = page(members["viewer"], range="custom", start="2026-03-31", end="2026-03-31")
    assert "each period starts at the UTC hour its start falls in" in html
    # The day's rollup hours: from 30 March 18:00 UTC to 31 March 18:00 UTC.
    assert figure(html, "spend") == Decimal("3.00") == ledger_usage(organization, at(3, 30, 18), at(3, 31, 18))
    assert "up to 45 minutes early" not in page(members["owner"], range="today")


def test_the_day_clocks_go_forward_has_23_hours_and_its_midnights_are_london_s(acme, catalogue):
    organization, members, keys = acme
    members["viewer"].time_zone = "Europe/London"  # summer time from 29 March 2026, 01:00 UTC
    members["viewer"].save(update_fields=["time_zone"])
    record_usage([event(organization, at(3, 29, 23, 30), "0.60", key=keys["web"], catalogue=catalogue)])  # 00:30 BST
    around_midnight(organization, keys, catalogue)
    hours = page(members["viewer"], range="custom", start="2026-03-29", end="2026-03-29", bucket="hour")
    assert len(table(hours, "usage-table")[1]) == 23 + 1  # and the total
    days = page(members["viewer"], range="custom", start="2026-03-29", end="2026-03-30", bucket="day")
    by_day = {day[:10]: cells[-1] for day, cells in table(days, "usage-table")[1][:-1]}
    assert by_day == {"2026-03-29": 0, "2026-03-30": Decimal("4.60")}
    assert by_day["2026-03-30"] == ledger_usage(organization, at(3, 29, 23), at(3, 30, 23))
    assert_adds_up(days)


def test_rollups_keep_the_provider_apart_and_a_second_run_changes_nothing(acme, catalogue):
    organization, _, keys = acme
    model, provider = catalogue
    backup = factories.provider("backup-provider", kind="demo")
    factories.route(model, backup, "echo-2")
    record_usage(
        [
            event(organization, at(3, 31, 9, 5), "1.00", key=keys["web"], catalogue=catalogue),
            event(organization, at(3, 31, 9, 6), "2.00", key=keys["web"], catalogue=(model, backup)),
            event(organization, at(3, 31, 9, 7), "0", key=keys["web"], model="demo", linked=False, catalogue=catalogue),
        ]
    )
    assert roll_up_usage.delay().get() == 1
    rows = sorted(
        UsageRollup.objects.values_list("granularity", "model_name", "provider_ref", "requests", "price").order_by()
    )
    assert rows == [
        ("day", "demo/echo", 0, 1, Decimal(0)),  # asked for by its alias, refused: filed under the model
        ("day", "demo/echo", provider.pk, 1, Decimal("1.00")),
        ("day", "demo/echo", backup.pk, 1, Decimal("2.00")),
        ("hour", "demo/echo", 0, 1, Decimal(0)),
        ("hour", "demo/echo", provider.pk, 1, Decimal("1.00")),
        ("hour", "demo/echo", backup.pk, 1, Decimal("2.00")),
    ]
    assert roll_up_usage.delay().get() == 0
    html = page(acme[1]["owner"], range="custom", start="2026-03-31", end="2026-03-31", group="upstream", bucket="day")
    assert assert_adds_up(html) == {
        "echo-2 (backup-provider)": Decimal("2.00"),
        "echo (demo-provider)": Decimal("1.00"),
        "Not served by a provider": 0,
    }
