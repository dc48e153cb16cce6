"""The CSV export's lines written by PostgreSQL (billing/export.py, line_of) are byte for byte those the csv
module writes from the same rows in Python: every kind of cell a tenant's clients can put in a record (quotes,
commas, line breaks, formula starts, non-ASCII), empty and absent values, amounts from zero to the column's
largest, microseconds or none, and time zones with half- and three-quarter-hour offsets and a DST change."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.utils import timezone

from accounts.models import Team
from billing import export, requestlog
from billing.models import UsageRecord
from billing.money import max_amount
from billing.services import record_usage
from tests import factories

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL writes the lines; elsewhere Python does"),
]

# 2026-03-08 07:30 UTC is 02:30 in New York when its clocks go forward at 02:00; 2026-11-01 is when they go back.
MOMENTS = [
    datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC),
    datetime(2026, 3, 8, 7, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
    datetime(2026, 11, 1, 6, 30, 0, 999999, tzinfo=UTC),
    datetime(2025, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
]
TEXTS = [
    "plain",
    "",
    'say "hi"',
    "a,b",
    "line\nbreak",
    "carriage\rreturn",
    "\r\nboth",
    "=1+1",
    "+sum",
    "-2",
    "@cmd",
    "\ttab",
    "'quoted already",
    "日本語のモデル",
    'emoji 🎉, "mixed"\n',
    " leading space",
]
ZONES = ["UTC", "Asia/Tokyo", "America/St_Johns", "Asia/Kathmandu", "America/New_York", "Pacific/Chatham"]


@pytest.fixture
def records(settings):
    settings.HUB_STARTER_CREDITS = "0"
    organization = factories.organization("Acme", credit="1000")
    team = Team.objects.create(organization=organization, name='Team "A", the first')
    keyed, _ = factories.api_key(organization, "=key, with\nall")
    keyed.team = team
    keyed.save()
    plain, _ = factories.api_key(organization, "plain")
    amounts = ["0", "0.0000000001", "0.01", "12.5", "1234567.0000000009"]
    events = []
    for index, text in enumerate(TEXTS):
        events.append(
            factories.usage_event(
                organization,
                key=[keyed, plain, None][index % 3],
                model_name=text or "m",
                served_model=text,
                error=text,
                status=["ok", "error", "refused"][index % 3],
                stream=bool(index % 2),
                cache_hit=index % 3 == 1,
                http_status=[200, 502, 402][index % 3],
                prompt_tokens=index * 1000,
                completion_tokens=2**31 - 1 if index == 3 else index,
                latency_ms=index * 7,
                first_token_ms=None if index % 2 else index,
                price=amounts[index % len(amounts)],
                cost=amounts[(index + 2) % len(amounts)],
                created_at=MOMENTS[index % len(MOMENTS)] - timedelta(days=index),
            )
        )
    record_usage(events)
    # The column's largest amount, which no charge reaches, as an operator's correction could write it.
    UsageRecord.objects.filter(request_id=events[0].request_id).update(price=max_amount())
    return organization


def both(organization, *, cost: bool, monkeypatch, since=None, until=None) -> tuple[str, str]:
    filters = requestlog.Filters(
        since=since or datetime(2025, 1, 1, tzinfo=UTC), until=until or datetime(2027, 2, 1, tzinfo=UTC)
    )
    by_database = "".join(export.lines_of(organization=organization, filters=filters, cost=cost))
    monkeypatch.setattr(export, "_writes_lines", lambda: False)
    by_python = "".join(export.lines_of(organization=organization, filters=filters, cost=cost))
    monkeypatch.undo()
    return by_database, by_python


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("cost", [False, True])
def test_the_database_writes_the_bytes_python_writes(records, zone, cost, monkeypatch):
    with timezone.override(zone):
        by_database, by_python = both(records, cost=cost, monkeypatch=monkeypatch)
    assert by_database == by_python
    rows = list(csv.reader(io.StringIO(by_python)))
    assert len(rows) == 1 + len(TEXTS) + 1 and rows[-1][0] == "total"
    assert sorted(row[5] for row in rows[1:-1]) == sorted(export.safe(text or "m") for text in TEXTS)
    hits = [row[export.HEADER.index("cache_hit")] for row in rows[1:-1]]
    assert sorted(hits) == sorted("True" if index % 3 == 1 else "False" for index in range(len(TEXTS)))


def test_amounts_show_every_digit_and_zero_is_not_an_exponent(records, monkeypatch):
    with timezone.override("UTC"):
        by_database, _ = both(records, cost=False, monkeypatch=monkeypatch)
    assert "0E-10" not in by_database
    assert ",0.0000000000," in by_database
    assert f",{format(max_amount(), 'f')}," in by_database
    assert ",1234567.0000000009," in by_database


def test_formula_starts_are_defused_and_quotes_doubled(records, monkeypatch):
    with timezone.override("Asia/Tokyo"):
        by_database, _ = both(records, cost=False, monkeypatch=monkeypatch)
    assert ",'=1+1," in by_database
    assert ",'@cmd," in by_database
    assert '"\'=key, with\nall"' in by_database
    assert '"Team ""A"", the first"' in by_database
    assert "+09:00," in by_database


def test_offsets_are_those_of_the_moment(records, monkeypatch):
    with timezone.override("America/New_York"):
        by_database, _ = both(records, cost=False, monkeypatch=monkeypatch)
    assert "2026-03-08T01:59:59-05:00," in by_database  # before the clocks went forward
    assert "-04:00," in by_database
    with timezone.override("America/St_Johns"):
        assert "-03:30," in both(records, cost=False, monkeypatch=monkeypatch)[0]
    with timezone.override("Asia/Kathmandu"):
        assert "+05:45," in both(records, cost=False, monkeypatch=monkeypatch)[0]


def test_the_totals_row_is_the_same_and_in_full(records, monkeypatch):
    with timezone.override("UTC"):
        by_database, by_python = both(records, cost=True, monkeypatch=monkeypatch)
    total = by_database.rstrip("\r\n").rsplit("\r\n", 1)[-1]
    assert total.startswith(f"total,{len(TEXTS)},")
    assert total == by_python.rstrip("\r\n").rsplit("\r\n", 1)[-1]
    assert "E" not in total.split(",")[export.HEADER.index("spend")]
    assert Decimal(total.split(",")[export.HEADER.index("spend")]) > 0


def test_a_client_that_leaves_mid_export_leaves_no_cursor_open(records):
    record_usage([factories.usage_event(records, price="0.01") for _ in range(3 * export.BATCH)])
    filters = requestlog.Filters(since=timezone.now() - timedelta(days=1), until=timezone.now() + timedelta(days=1))
    response = export.csv_response(organization=records, filters=filters, cost=False, asgi=True)

    async def read_one_piece_and_leave() -> str:
        pieces = aiter(response.streaming_content)
        first = await anext(pieces)
        await pieces.aclose()  # what Django does when the client disconnects
        return first.decode()

    first = async_to_sync(read_one_piece_and_leave)()
    assert first.startswith("time,") and first.count("\r\n") == export.BATCH
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_cursors")
        assert cursor.fetchone() == (0,)


def test_a_range_of_one_offset_writes_it_as_a_constant_and_the_same_bytes(records, monkeypatch):
    since, until = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    assert export.one_offset("America/New_York", since, until) == "-04:00"
    assert export.one_offset("America/New_York", since, until + timedelta(hours=7)) is None  # Nov 1, 06:00 UTC
    assert export.one_offset("Asia/Kathmandu", since, until) == "+05:45"
    assert export.one_offset("UTC", since, until) == "+00:00"
    with timezone.override("America/New_York"):
        by_database, by_python = both(records, cost=False, monkeypatch=monkeypatch, since=since, until=until)
    assert by_database == by_python
    assert by_database.count("-04:00,") == 6
