"""The request log (/dashboard/requests/, billing/requestlog.py, billing/export.py) by HTTP: every role may read
it; its filters, its keyset pages (disjoint and complete, also across equal timestamps), one request's detail
(another organisation's is a 404), no prompt or answer anywhere, tampered cursors and hostile parameters refused
cleanly, and the CSV export, streamed, formula-safe, whose totals row is the sum of its rows and of the ledger's
usage entries; the management API's export is the same code path."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.db.models.query import QuerySet
from django.test import Client
from django.utils import timezone

from accounts.models import Membership, Team
from billing import export, modes, requestlog
from billing.models import CreditAccount, LedgerEntry, UsageRecord
from billing.services import record_usage
from tests import factories
from tests.actors import ROLES, as_key, as_user, make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
SPEND = export.HEADER.index("spend")


@pytest.fixture
def acme(settings):
    """Acme with one member of every role, credit, and two keys; (organisation, {role: user}, key, other key)."""
    settings.HUB_STARTER_CREDITS = "0"
    owner = make_user("owner")
    organization = factories.organization("Acme", owner=owner, credit="1000")
    members = {"owner": owner}
    for role in ROLES[1:]:
        members[role] = make_user(role)
        Membership.objects.create(user=members[role], organization=organization, role=role)
    key, _ = factories.api_key(organization, "app key")
    other, _ = factories.api_key(organization, "batch key")
    return organization, members, key, other


def record(organization, key=None, *, when=None, price="0.01", **fields):
    event = factories.usage_event(
        organization, key=key, price=price, created_at=when or NOW - timedelta(minutes=1), **fields
    )
    record_usage([event])
    return UsageRecord.objects.get(request_id=event.request_id)


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows_of(page: str) -> list[str]:
    """The request ids of the log's rows, top to bottom (their detail links)."""
    return re.findall(r'href="/dashboard/requests/(\d+)/"', page)


def csv_of(response) -> list[list[str]]:
    assert response.streaming is True
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_log_a_detail_and_the_csv(acme, role):
    organization, members, key, _ = acme
    made = record(
        organization,
        key,
        model_name="gpt-asked",
        served_model="gpt-fallback",
        latency_ms=321,
        first_token_ms=45,
        stream=True,
        prompt_tokens=12,
        completion_tokens=30,
        endpoint="chat.completions",
    )
    client = client_of(members[role])

    page = client.get("/dashboard/requests/")
    assert page.status_code == 200
    text = page.content.decode()
    assert rows_of(text) == [str(made.pk)]
    for shown in (
        "app key",
        "gpt-asked",
        "served by gpt-fallback",
        "chat.completions",
        "Completed",
        "42",
        "0.01",
        "321 ms",
        "45 ms",
        "Download CSV",
    ):
        assert shown in text, shown

    detail = client.get(f"/dashboard/requests/{made.pk}/")
    assert detail.status_code == 200
    for shown in (made.request_id, "gpt-asked", "gpt-fallback", "fallback", "12", "30"):
        assert shown in detail.content.decode()

    rows = csv_of(client.get("/dashboard/requests/export.csv"))
    assert rows[0] == list(export.HEADER)
    assert rows[1][1] == made.request_id


def test_the_csv_says_which_requests_the_response_cache_answered(acme):
    organization, members, key, _ = acme
    miss = record(organization, key, when=NOW - timedelta(minutes=2))
    hit = record(organization, key, price="0", cache_hit=True)
    rows = csv_of(client_of(members["owner"]).get("/dashboard/requests/export.csv"))
    header, body, totals = rows[0], rows[1:-1], rows[-1]
    assert header[header.index("stream") + 1] == "cache_hit"
    assert {row[1]: row[header.index("cache_hit")] for row in body} == {
        hit.request_id: "True",
        miss.request_id: "False",
    }
    assert totals[header.index("cache_hit")] == "" and len(totals) == len(header)


def test_a_signed_out_visitor_is_sent_to_sign_in(acme):
    organization, _, key, _ = acme
    made = record(organization, key)
    for path in ("/dashboard/requests/", f"/dashboard/requests/{made.pk}/", "/dashboard/requests/export.csv"):
        response = Client().get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_another_organisations_request_is_a_404_and_never_listed(acme):
    _, members, _, _ = acme
    globex = factories.organization("Globex", credit="10")
    theirs = record(globex, model_name="globex-secret-model")
    client = client_of(members["viewer"])
    assert client.get(f"/dashboard/requests/{theirs.pk}/").status_code == 404
    assert client.get("/dashboard/requests/999999999/").status_code == 404
    assert "globex-secret-model" not in client.get("/dashboard/requests/").content.decode()
    assert (
        "globex-secret-model" not in b"".join(client.get("/dashboard/requests/export.csv").streaming_content).decode()
    )


def test_the_filters_narrow_the_log(acme):
    organization, members, key, other = acme
    a = record(organization, key, model_name="alpha", endpoint="chat.completions")
    b = record(organization, other, model_name="beta", endpoint="embeddings", when=NOW - timedelta(minutes=2))
    c = record(
        organization,
        key,
        model_name="alpha",
        status="upstream_error",
        price="0",
        error="upstream 502",
        when=NOW - timedelta(minutes=3),
    )
    old = record(organization, key, model_name="alpha", when=NOW - timedelta(days=40))
    client = client_of(members["developer"])

    def listed(**params):
        response = client.get("/dashboard/requests/", params)
        assert response.status_code == 200, response.content
        return rows_of(response.content.decode())

    assert listed() == [str(a.pk), str(b.pk), str(c.pk)]  # the last 30 days by default
    assert listed(key=other.pk) == [str(b.pk)]
    assert listed(model="alpha") == [str(a.pk), str(c.pk)]
    assert listed(status="upstream_error") == [str(c.pk)]
    assert listed(endpoint="embeddings") == [str(b.pk)]
    assert listed(key=key.pk, status="ok") == [str(a.pk)]
    day = timezone.localdate(old.created_at)
    assert listed(start=day.isoformat(), end=day.isoformat()) == [str(old.pk)]
    assert "upstream 502" in client.get("/dashboard/requests/", {"status": "upstream_error"}).content.decode()


def test_keyset_pages_are_disjoint_and_complete_across_equal_timestamps(acme):
    organization, members, key, _ = acme
    same = NOW - timedelta(minutes=5)
    # 120 records, many sharing one timestamp, so the tie-break on id is what separates pages.
    events = [
        factories.usage_event(
            organization, key=key, price="0.01", created_at=same if n % 3 else same - timedelta(seconds=n)
        )
        for n in range(120)
    ]
    record_usage(events)
    expected = list(
        UsageRecord.objects.filter(organization=organization)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
    )
    client = client_of(members["viewer"])
    seen: list[str] = []
    url = "/dashboard/requests/"
    pages = 0
    while url:
        text = client.get(url).content.decode()
        rows = rows_of(text)
        assert len(rows) <= requestlog.PAGE_SIZE
        seen += rows
        pages += 1
        older = re.search(r'href="([^"]+)" id="requests-older"', text)
        url = "/dashboard/requests/" + older[1].replace("&amp;", "&") if older else ""
    assert pages == 3
    assert seen == [str(pk) for pk in expected]
    assert len(set(seen)) == 120


def test_a_page_is_one_query_for_the_records_whatever_the_page(acme, django_assert_max_num_queries):
    organization, _, key, _ = acme
    team_key, _ = factories.api_key(organization, "team key")
    team_key.team = Team.objects.create(organization=organization, name="ml")
    team_key.save()
    record_usage([factories.usage_event(organization, key=k, price="0.01") for k in (key, team_key) * 30])
    filters = requestlog.Filters(since=NOW - timedelta(days=1), until=NOW + timedelta(days=1))
    with django_assert_max_num_queries(1):
        page = requestlog.page_of(organization=organization, filters=filters)
        names = [r.api_key.name for r in page.records] + [str(r.api_key.team) for r in page.records]
    assert len(names) == 100 and names.count("ml") == 25
    with django_assert_max_num_queries(1):
        requestlog.page_of(organization=organization, filters=filters, cursor=page.next_cursor or "")


def test_no_prompt_or_answer_is_stored_or_shown():
    stored = {f.name for f in UsageRecord._meta.get_fields()}
    assert not stored & {"prompt", "messages", "input", "output", "answer", "completion", "content", "response"}


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "WzEsMl0:tampered", "", "%00", "A" * 5000],
)
def test_a_tampered_cursor_is_a_400(acme, cursor):
    organization, members, key, _ = acme
    record(organization, key)
    good = requestlog.cursor_of(UsageRecord.objects.get())
    response = client_of(members["owner"]).get("/dashboard/requests/", {"cursor": cursor or good[:-1] + "x"})
    assert response.status_code == 400
    assert "This page link is not valid" in response.content.decode()


@pytest.mark.parametrize(
    "params",
    [
        {"status": "exploded"},
        {"key": "99999999999999999999999999"},
        {"key": "-1"},
        {"key": "abc"},
        {"model": "a\x00b"},
        {"endpoint": "x" * 5000},
        {"start": "2026-13-45"},
        {"start": "99999-01-01"},
        {"start": "2020-01-01", "end": "2026-01-01"},
        {"start": "2026-02-01", "end": "2026-01-01"},
    ],
)
def test_hostile_filters_are_a_form_error_not_a_500(acme, params):
    organization, members, key, _ = acme
    record(organization, key)
    client = client_of(members["owner"])
    response = client.get("/dashboard/requests/", params)
    assert response.status_code == 400
    assert "Correct the filters" in response.content.decode()
    assert client.get("/dashboard/requests/export.csv", params).status_code == 400


def test_a_lone_surrogate_in_the_query_string_is_harmless(acme):
    organization, members, key, _ = acme
    record(organization, key)
    response = client_of(members["owner"]).get("/dashboard/requests/?model=%ED%A0%80&endpoint=%FF")
    assert response.status_code == 200
    assert rows_of(response.content.decode()) == []


def test_another_organisations_key_is_not_a_filter(acme):
    _, members, _, _ = acme
    globex = factories.organization("Globex")
    their_key, _ = factories.api_key(globex, "globex key")
    response = client_of(members["owner"]).get("/dashboard/requests/", {"key": their_key.pk})
    assert response.status_code == 400


def test_the_csv_escapes_formulas_and_ends_with_totals_equal_to_the_rows_and_the_ledger(acme):
    organization, members, key, other = acme
    record(
        organization, key, model_name='=HYPERLINK("http://evil")', price="0.25", prompt_tokens=10, completion_tokens=5
    )
    record(
        organization,
        other,
        model_name="+cmd",
        price="1.50",
        prompt_tokens=100,
        completion_tokens=50,
        error="-2+3",
        when=NOW - timedelta(minutes=2),
    )
    record(organization, key, model_name="@sum", price="0", status="upstream_error", when=NOW - timedelta(minutes=3))
    response = client_of(members["billing"]).get("/dashboard/requests/export.csv")
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="requests-acme-')
    rows = csv_of(response)
    header, body, totals = rows[0], rows[1:-1], rows[-1]
    assert header == list(export.HEADER)
    models = [row[header.index("model_asked")] for row in body]
    assert models == ['\'=HYPERLINK("http://evil")', "'+cmd", "'@sum"]
    assert body[1][header.index("error")] == "'-2+3"
    assert totals[0] == "total" and totals[1] == "3"
    spend = header.index("spend")
    assert Decimal(totals[spend]) == sum(Decimal(row[spend]) for row in body) == Decimal("1.75")
    for column in ("prompt_tokens", "completion_tokens", "total_tokens"):
        index = header.index(column)
        assert int(totals[index]) == sum(int(row[index]) for row in body)
    assert totals[header.index("total_tokens")] == "165"
    charged = LedgerEntry.objects.filter(account__organization=organization, kind=LedgerEntry.Kind.USAGE)
    assert -sum(entry.amount for entry in charged) == Decimal(totals[spend])


def test_the_csv_follows_the_filters_and_times_are_in_the_users_zone(acme):
    organization, members, key, other = acme
    owner = members["owner"]
    owner.time_zone = "Asia/Tokyo"
    owner.save()
    record(organization, key, when=datetime(2026, 1, 1, 23, 30, tzinfo=UTC))
    mine = record(organization, other, when=datetime(2026, 1, 2, 0, 30, tzinfo=UTC), price="2")
    # 14:30 UTC on 31 December is 1 January in Tokyo: the range is the user's days.
    early = record(organization, other, when=datetime(2025, 12, 31, 15, 30, tzinfo=UTC), price="1")
    client = client_of(owner)
    params = {"key": other.pk, "start": "2026-01-01", "end": "2026-01-31"}
    rows = csv_of(client.get("/dashboard/requests/export.csv", params))
    assert [row[1] for row in rows[1:-1]] == [mine.request_id, early.request_id]
    assert rows[1][0] == "2026-01-02T09:30:00+09:00"
    assert rows[-1][1] == "2" and Decimal(rows[-1][SPEND]) == Decimal("3")
    page = client.get("/dashboard/requests/", params).content.decode()
    assert "2026-01-02 09:30:00" in page


def test_internal_organisations_see_cost_not_price(acme):
    organization, members, key, _ = acme
    modes.billing_mode_set(account=CreditAccount.objects.get(organization=organization), mode="internal")
    record(organization, key, price="9.99", cost="0.123", billing_mode="internal")
    client = client_of(members["owner"])
    text = client.get("/dashboard/requests/").content.decode()
    assert "Cost" in text and "0.123" in text and "9.99" not in text
    rows = csv_of(client.get("/dashboard/requests/export.csv"))
    assert Decimal(rows[1][SPEND]) == Decimal("0.123") and Decimal(rows[-1][SPEND]) == Decimal("0.123")


def test_a_tenant_never_sees_the_cost(acme):
    organization, members, key, _ = acme
    record(organization, key, price="0.50", cost="0.0777")
    client = client_of(members["owner"])
    assert "0.0777" not in client.get("/dashboard/requests/").content.decode()
    made = UsageRecord.objects.get()
    assert "0.0777" not in client.get(f"/dashboard/requests/{made.pk}/").content.decode()
    assert "0.0777" not in b"".join(client.get("/dashboard/requests/export.csv").streaming_content).decode()


# The management API's export ------------------------------------------------


def test_the_api_export_is_the_same_csv(acme):
    organization, members, key, other = acme
    record(organization, key, price="0.30")
    record(organization, other, price="0.70", when=NOW - timedelta(minutes=2))
    dashboard = csv_of(client_of(members["viewer"]).get("/dashboard/requests/export.csv", {"key": other.pk}))
    response = as_user(members["viewer"]).get(
        f"/manage/v1/orgs/{organization.slug}/usage/export.csv", {"key": other.pk}
    )
    assert response.status_code == 200
    assert csv_of(response) == dashboard
    assert dashboard[-1][1] == "1"


def test_an_admin_key_exports_and_a_bad_filter_is_a_400(acme):
    organization, _, key, _ = acme
    record(organization, key, price="0.30")
    _, raw = factories.api_key(organization, "ops", scope="admin")
    client = as_key(raw)
    url = f"/manage/v1/orgs/{organization.slug}/usage/export.csv"
    assert len(csv_of(client.get(url))) == 3
    response = client.get(url, {"status": "exploded"})
    assert response.status_code == 400
    assert "status" in response.content.decode()
    _, gateway_key = factories.api_key(organization, "gateway")
    assert as_key(gateway_key).get(url).status_code == 401


def test_the_export_streams_from_a_server_side_cursor(acme, monkeypatch):
    organization, members, key, _ = acme
    record_usage([factories.usage_event(organization, key=key, price="0.01") for _ in range(7)])
    chunks = []
    real = QuerySet.iterator

    def spy(self, chunk_size=None):
        chunks.append(chunk_size)
        return real(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    response = client_of(members["owner"]).get("/dashboard/requests/export.csv")
    assert chunks == []  # nothing is read before the response is consumed
    rows = csv_of(response)
    assert chunks == [export.CHUNK]
    assert len(rows) == 9


def test_under_asgi_the_export_streams_through_an_async_iterator(acme):
    organization, _, key, _ = acme
    record_usage([factories.usage_event(organization, key=key, price="0.01") for _ in range(3)])
    filters = requestlog.Filters(since=NOW - timedelta(days=1), until=NOW + timedelta(days=1))
    response = export.csv_response(organization=organization, filters=filters, cost=False, asgi=True)
    assert response.is_async is True

    async def read() -> str:
        return "".join([part.decode() async for part in response.streaming_content])

    rows = list(csv.reader(io.StringIO(async_to_sync(read)())))
    assert rows[0] == list(export.HEADER)
    assert len(rows) == 5 and rows[-1][:2] == ["total", "3"]
