"""The dashboard's overview (/dashboard/, billing/overview.py) by HTTP: every role sees its organisation's
balance (or, postpaid, this month's charges; internal, the cost), days left at the last week's spend, spend today
and this month, requests and error rate today, in the active time zone, and a low-balance banner whose top-up
button only the roles that may buy credit get.

The clock: the page's "today" is Wednesday 4 March 2026 (FIXED_NOW, 12:00 UTC), so that the last seven whole
days (25 February to 3 March) reach into last month. Usage is recorded through billing.services.record_usage,
as the gateway does, so credits usage is charged to the ledger and the balance is the ledger's."""

import re
from datetime import UTC, datetime
from decimal import Decimal
from types import ModuleType

import pytest
from django.test import Client
from django.urls import include, path
from django.utils import timezone

from accounts.models import Membership
from billing import dashboard_urls, modes, overview
from billing.models import CreditAccount, LowBalanceAlert, UsageRecord
from billing.services import hold_place, record_usage
from hub.urls import urlpatterns as hub_urlpatterns
from tests import factories
from tests.actors import ROLES, make_user

pytestmark = pytest.mark.django_db

FIXED_NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
GRANT = Decimal("100")


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


# The banner's top-up button links the billing page (billing's own, once installed), "Using the API" the keys
# page: URL configurations with stand-ins for them, and without the billing page.
def _stand_in(request):
    raise AssertionError("not visited")


def _urlconf(name: str, *, billing_page: bool, keys_page: bool = False) -> ModuleType:
    patterns = []
    for pattern in hub_urlpatterns:
        if getattr(pattern, "urlconf_name", None) is dashboard_urls:
            pages = [p for p in dashboard_urls.urlpatterns if getattr(p, "name", None) != "dashboard-billing"]
            if billing_page:
                pages.append(path("billing/", _stand_in, name="dashboard-billing"))
            pattern = path("dashboard/", include(pages))
        patterns.append(pattern)
    if keys_page:
        patterns.insert(0, path("dashboard/keys/", _stand_in, name="dashboard-keys"))
    module = ModuleType(name)
    module.urlpatterns = patterns  # type: ignore[attr-defined]
    return module


WITH_BILLING_PAGE = _urlconf("with_billing_page", billing_page=True)
WITHOUT_BILLING_PAGE = _urlconf("without_billing_page", billing_page=False)
WITH_KEYS_PAGE = _urlconf("with_keys_page", billing_page=False, keys_page=True)


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The page's today is FIXED_NOW's date in the active zone (django.utils.timezone.localdate)."""

    localtime = timezone.localtime

    def localdate(value=None, timezone=None):
        return localtime(value or FIXED_NOW, timezone).date()

    monkeypatch.setattr(timezone, "localdate", localdate)


@pytest.fixture
def with_billing_page(settings):
    settings.ROOT_URLCONF = WITH_BILLING_PAGE


@pytest.fixture
def without_billing_page(settings):
    settings.ROOT_URLCONF = WITHOUT_BILLING_PAGE


@pytest.fixture
def acme(settings):
    """Acme with one member of every role and GRANT of credit; (organisation, {role: user})."""
    settings.HUB_STARTER_CREDITS = "0"
    owner = make_user("owner")
    organization = factories.organization("Acme", owner=owner, credit=GRANT)
    members = {"owner": owner}
    for role in ROLES[1:]:
        members[role] = make_user(role)
        Membership.objects.create(user=members[role], organization=organization, role=role)
    return organization, members


def record(organization, when: datetime, price: str, *, mode: str = "credits", status: str = "ok", cost: str = "0"):
    record_usage(
        [factories.usage_event(organization, price=price, cost=cost, status=status, billing_mode=mode, created_at=when)]
    )


def month_of_usage(organization, mode: str = "credits") -> None:
    """Today 1.25 and a failure; yesterday 3.00; 1 March 0.50; 26 February 4.00 (in the week); 20 February 10.00."""
    record(organization, at(4, 10), "1.25", mode=mode, cost="0.50")
    record(organization, at(4, 11), "0", mode=mode, status=UsageRecord.Status.UPSTREAM_ERROR)
    record(organization, at(3, 9), "3.00", mode=mode, cost="1.00")
    record(organization, at(1, 0, 30), "0.50", mode=mode, cost="0.20")
    record(organization, at(26, 12, month=2), "4.00", mode=mode, cost="2.00")
    record(organization, at(20, 12, month=2), "10.00", mode=mode, cost="5.00")


def page_of(user) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/dashboard/")
    assert response.status_code == 200
    return response.content.decode()


def stat(page: str, name: str) -> str:
    """The text of one stat (its dt and dd's), tags taken out and spaces squeezed."""
    found = re.search(rf'<div class="stat" id="stat-{name}">(.*?)</div>', page, re.S)
    assert found, f"no stat {name}"
    return " ".join(re.sub(r"<[^>]+>", " ", found[1]).split())


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_the_balance_days_left_spend_requests_and_error_rate(acme, role):
    organization, members = acme
    month_of_usage(organization)
    hold_place(organization_id=organization.pk, request_id="in-flight", amount=Decimal("1.25"), ttl_seconds=60)
    page = page_of(members[role])
    # 100 less 1.25 + 3.00 + 0.50 + 4.00 + 10.00 charged; 1.25 held.
    assert CreditAccount.objects.get(organization=organization).balance == Decimal("81.25")
    assert stat(page, "headline") == "Balance 81.25 USD 80.00 available; 1.25 held for requests in flight."
    # 80.00 available at 7.50 a week (3.00 + 0.50 + 4.00, 25 February to 3 March): 74.67 days.
    assert stat(page, "days-left") == "Days left 74 At the last 7 days' average spend."
    assert stat(page, "today") == "Spent today 1.25 USD"
    assert stat(page, "month") == "Spent this month 4.75 USD"
    assert stat(page, "requests") == "Requests today 2"
    assert stat(page, "errors") == "Error rate today 50.0% 1 of 2 requests failed."
    assert "<h1>Acme</h1>" in page and "Your credit is running low" not in page


def test_another_organisations_usage_and_credit_are_not_counted(acme):
    organization, members = acme
    other = factories.organization("Globex", credit="5")
    record(other, at(4, 9), "2.00")
    record(organization, at(4, 9), "0.75")
    page = page_of(members["viewer"])
    assert stat(page, "headline") == "Balance 99.25 USD"
    assert stat(page, "today") == "Spent today 0.75 USD" and stat(page, "requests") == "Requests today 1"


def test_without_spend_in_the_last_week_days_left_is_a_dash_and_without_requests_so_is_the_error_rate(acme):
    organization, members = acme
    record(organization, at(20, 12, month=2), "10.00")  # last month, before the week
    page = page_of(members["owner"])
    assert stat(page, "days-left") == "Days left — No spend in the last 7 days."
    assert stat(page, "today") == "Spent today 0.00 USD" and stat(page, "month") == "Spent this month 0.00 USD"
    assert stat(page, "requests") == "Requests today 0" and stat(page, "errors") == "Error rate today —"


def test_spend_keeps_every_digit_and_days_left_rounds_down(acme):
    organization, members = acme
    record(organization, at(3, 9), "0.0000001234")
    page = page_of(members["owner"])
    assert stat(page, "month") == "Spent this month 0.0000001234 USD"
    view = overview.overview_of(organization=organization)
    assert view.available == Decimal("99.9999998766") and view.spend_week == Decimal("0.0000001234")
    assert view.days_left == int(Decimal("99.9999998766") * 7 // Decimal("0.0000001234"))
    assert stat(page, "days-left") == f"Days left {view.days_left} At the last 7 days' average spend."


def test_postpaid_shows_this_months_postpaid_charges_and_no_balance(acme):
    organization, members = acme
    modes.billing_mode_set(account=CreditAccount.objects.get(organization=organization), mode="postpaid")
    month_of_usage(organization, mode="postpaid")
    record(organization, at(2, 8), "2.00", mode="credits")  # before the switch: charged to credit, not invoiced
    page = page_of(members["billing"])
    assert stat(page, "headline") == "Charges this month so far 4.75 USD Invoiced after the month ends."
    assert stat(page, "today") == "Spent today 1.25 USD"
    assert stat(page, "errors") == "Error rate today 50.0% 1 of 2 requests failed."
    assert 'id="stat-days-left"' not in page and 'id="stat-month"' not in page and ">Balance<" not in page


def test_internal_shows_the_cost_and_no_banner_even_without_credit(acme, settings):
    organization, members = acme
    settings.HUB_BILLING_MODE = "internal"  # the hub's mode; the account has none of its own
    month_of_usage(organization, mode="internal")
    CreditAccount.objects.filter(organization=organization).update(balance=0)
    page = page_of(members["developer"])
    assert stat(page, "headline") == "Cost this month 1.70 USD What the requests cost; nothing is charged."
    assert stat(page, "today") == "Cost today 0.50 USD"
    assert stat(page, "requests") == "Requests today 2"
    assert 'id="stat-days-left"' not in page and "Your credit is running low" not in page


def test_credits_mode_counts_no_internal_usage_as_spend(acme):
    organization, members = acme
    record(organization, at(4, 9), "0.40")
    record(organization, at(4, 10), "9.00", mode="internal", cost="3.00")  # before a switch: never charged
    page = page_of(members["owner"])
    assert stat(page, "today") == "Spent today 0.40 USD" and stat(page, "requests") == "Requests today 2"


@pytest.mark.parametrize(
    ("zone", "today", "requests"),
    [
        # 3 March 23:30 UTC is 4 March 08:30 in Tokyo; 4 March 23:30 UTC is 5 March there.
        ("Asia/Tokyo", "0.25", 1),
        # In UTC, 3 March 23:30 was yesterday and 4 March 23:30 is today.
        ("UTC", "0.50", 1),
        # In New York (UTC-5) both are 3 March and 4 March evenings: the first is yesterday, the second today.
        ("America/New_York", "0.50", 1),
    ],
)
def test_today_is_the_active_time_zones(acme, settings, zone, today, requests):
    organization, members = acme
    settings.TIME_ZONE = zone
    record(organization, at(3, 23, 30), "0.25")
    record(organization, at(4, 23, 30), "0.50")
    page = page_of(members["owner"])
    assert stat(page, "today") == f"Spent today {today} USD"
    assert stat(page, "requests") == f"Requests today {requests}"
    assert f"Days and months in {zone}." in page


def test_this_month_and_the_week_begin_at_the_active_zones_midnight(acme, settings):
    organization, members = acme
    record(organization, at(28, 15, 30, month=2), "2.00")  # 1 March 00:30 in Tokyo (UTC+9); 28 February in UTC
    record(organization, at(24, 16, 0, month=2), "1.00")  # 25 February 01:00 in Tokyo: in its week, not UTC's
    utc = page_of(members["owner"])
    assert stat(utc, "month") == "Spent this month 0.00 USD"
    assert overview.overview_of(organization=organization).spend_week == Decimal("2.00")
    settings.TIME_ZONE = "Asia/Tokyo"
    tokyo = page_of(members["owner"])
    assert stat(tokyo, "month") == "Spent this month 2.00 USD"
    assert overview.overview_of(organization=organization).spend_week == Decimal("3.00")


# The low-balance banner.


@pytest.mark.parametrize("role", ROLES)
def test_under_the_threshold_the_banner_shows_and_only_buyers_get_the_top_up_button(acme, role, with_billing_page):
    organization, members = acme
    record(organization, at(3, 9), "99.50")  # 0.50 left, under HUB_LOW_BALANCE_THRESHOLD (1)
    page = page_of(members[role])
    assert "Your credit is running low: 0.50 USD available, under 1.00 USD." in page
    may = role in ("owner", "billing")
    assert bool(re.search(r'<a class="button" href="/dashboard/billing/?">Top up</a>', page)) is may
    assert ("An owner or a billing member of the organisation can add credit." in page) is not may


def test_without_a_billing_page_the_banner_says_who_can_top_up(acme, without_billing_page):
    organization, members = acme
    record(organization, at(3, 9), "99.50")
    page = page_of(members["owner"])
    assert "Your credit is running low" in page
    assert ">Top up<" not in page and "An owner or a billing member of the organisation can add credit." in page


def test_holds_count_against_the_threshold(acme, settings):
    organization, members = acme
    settings.HUB_LOW_BALANCE_THRESHOLD = "10"
    record(organization, at(3, 9), "89.00")  # 11.00 left: over 10
    assert "Your credit is running low" not in page_of(members["owner"])
    hold_place(organization_id=organization.pk, request_id="in-flight", amount=Decimal("2"), ttl_seconds=60)
    assert "Your credit is running low: 9.00 USD available, under 10.00 USD." in page_of(members["owner"])


def test_the_alerts_own_threshold_wins_over_the_setting(acme, settings):
    organization, members = acme
    settings.HUB_LOW_BALANCE_THRESHOLD = "1"
    account = CreditAccount.objects.get(organization=organization)
    LowBalanceAlert.objects.create(account=account, threshold=Decimal("150"))
    assert "Your credit is running low: 100.00 USD available, under 150.00 USD." in page_of(members["owner"])
    LowBalanceAlert.objects.filter(account=account).update(threshold=Decimal("100"))
    assert "Your credit is running low" not in page_of(members["owner"])  # at the threshold is not under it


def test_postpaid_shows_no_banner_without_credit(acme):
    organization, members = acme
    modes.billing_mode_set(account=CreditAccount.objects.get(organization=organization), mode="postpaid")
    CreditAccount.objects.filter(organization=organization).update(balance=0)
    assert "Your credit is running low" not in page_of(members["owner"])


# Using the API, and the page's one query for the numbers.


def test_the_page_points_at_the_api(acme):
    _, members = acme
    page = page_of(members["viewer"])
    assert '<code id="base-url">http://testserver/v1</code>' in page and 'data-copy="#base-url"' in page
    assert 'href="/manage/v1/docs/"' in page and "Create another organisation" in page


@pytest.mark.parametrize("role", ROLES)
def test_the_keys_page_is_pointed_at_for_the_roles_that_may_see_keys(acme, settings, role):
    _, members = acme
    settings.ROOT_URLCONF = WITH_KEYS_PAGE
    assert (">Your API keys</a>" in page_of(members[role])) is (role != "billing")


def test_the_numbers_are_one_query_over_usage(acme, django_assert_num_queries):
    organization, _ = acme
    month_of_usage(organization)
    with django_assert_num_queries(1):
        overview.usage_summary_of(organization=organization, mode="credits")


def test_the_overview_needs_a_signed_in_member(acme):
    assert Client().get("/dashboard/").status_code == 302
    stranger = Client()
    stranger.force_login(make_user("stranger"))
    assert stranger.get("/dashboard/").url == "/dashboard/organisations/new"


def test_postgresql_runs_without_jit(db):
    """bench/dashboard.py measured ~200 ms of JIT compilation on the dashboard's aggregates: it is off."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no JIT")
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
