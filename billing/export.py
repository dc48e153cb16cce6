"""The request log as CSV, for the dashboard (billing/views/requests.py) and the management API (billing/api.py):
the same filters (billing/requestlog.py), the same rows, the same totals.

Rows stream from a server-side cursor (`.iterator(chunk_size=...)`) into a StreamingHttpResponse, so a million
rows take the memory of one chunk. On PostgreSQL the database writes each row's CSV line itself (`line_of`: the
csv module's quoting, in SQL), and Python only joins strings: about five times the rows a second of formatting
every cell in Python (bench/dashboard.py), which other databases still do, with the same bytes out
(tests/test_export_lines.py). The last row is the totals (requests, tokens, spend), one aggregate over the same
filter, so it is the sum of the rows above it. The range ends no later than when the export started, so rows
and totals count the same records while requests keep arriving.

A cell that a spreadsheet would read as a formula (=, +, -, @, a tab or carriage return first) is prefixed
with an apostrophe; the cells are model names, key names and errors, which a tenant's clients choose.
"""

import csv
import re
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.db.models import F, Func, TextField, Value
from django.http import StreamingHttpResponse
from django.utils import timezone

from .requestlog import Filters, records_of, totals_of

CHUNK = 2000  # rows fetched from the server-side cursor at a time
BATCH = 500  # rows per piece of the response under ASGI: one thread hop each
_FORMULA = ("=", "+", "-", "@", "\t", "\r")

# Each column's header and the record's field under it ("amount": the cost or the price, requestlog.shows_cost).
_CELLS = (
    ("time", "created_at"),
    ("request_id", "request_id"),
    ("key", "api_key__name"),
    ("key_prefix", "api_key__prefix"),
    ("team", "api_key__team__name"),
    ("model_asked", "model_name"),
    ("model_served", "served_model"),
    ("endpoint", "endpoint"),
    ("stream", "stream"),
    ("cache_hit", "cache_hit"),
    ("status", "status"),
    ("http_status", "http_status"),
    ("prompt_tokens", "prompt_tokens"),
    ("completion_tokens", "completion_tokens"),
    ("total_tokens", "total_tokens"),
    ("spend", "amount"),
    ("latency_ms", "latency_ms"),
    ("first_token_ms", "first_token_ms"),
    ("error", "error"),
)
HEADER = tuple(header for header, _ in _CELLS)
COLUMNS = tuple(column for _, column in _CELLS)
# Text that members, clients or providers choose: formula-safe and quoted as needed. The rest of the text is the
# hub's own (ids, key prefixes, endpoint and status names), which holds none of the characters that need it.
_TEXT = frozenset({"api_key__name", "api_key__team__name", "model_name", "served_model", "error"})
_BOOLEAN = frozenset({"stream", "cache_hit"})  # written as Python writes a bool: True / False


class _Echo:
    """The pseudo-buffer csv.writer writes into: each row comes straight back as a string."""

    def write(self, value: str) -> str:
        return value


def safe(value):
    """A cell: text a spreadsheet would run as a formula is quoted; an amount in full (never `0E-10`); other
    numbers and booleans go as they are."""
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA) else value
    if isinstance(value, Decimal):
        return format(value, "f")
    return "" if value is None else value


# PostgreSQL writes the lines -----------------------------------------------------------------------------


class _Sql(Func):
    """SQL from a template whose {0}, {1}... are compiled expressions, each as often as it appears (with its
    parameters as often, in order)."""

    output_field = TextField()

    def __init__(self, template: str, *expressions):
        super().__init__(*expressions)
        self.sql_template = template

    def as_sql(self, compiler, connection, function=None, template=None, arg_joiner=None, **extra_context):
        compiled = [compiler.compile(expression) for expression in self.get_source_expressions()]
        params: list = []

        def part(match: re.Match) -> str:
            sql, expression_params = compiled[int(match[1])]
            params.extend(expression_params)
            return f"({sql})"

        # A literal % in a template would read as a placeholder: the templates use mod(), never %.
        return re.sub(r"\{(\d+)\}", part, self.sql_template), params


def _text(column: str) -> _Sql:
    # safe(), then csv.QUOTE_MINIMAL: quoted when it holds a quote, a comma, CR or LF, its quotes doubled. A
    # column read again costs nothing; a function would run again each time the SQL names it, so none repeats.
    formula_safe = _Sql(
        "CASE WHEN left({0}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) THEN '''' || {0} ELSE {0} END", F(column)
    )
    return _Sql(
        "CASE WHEN {0} IS NULL THEN ''"
        " WHEN strpos({0}, '\"') + strpos({0}, ',') + strpos({0}, chr(13)) + strpos({0}, chr(10)) > 0"
        " THEN '\"' || replace({1}, '\"', '\"\"') || '\"' ELSE {1} END",
        F(column),
        formula_safe,
    )


def _time(zone: str, offset: str | None) -> _Sql:
    # datetime.isoformat() in the zone: microseconds only when there are some, the offset as +HH:MM; `offset`:
    # the zone's one offset over the whole range (most exports), else each record's is worked out.
    local = _Sql("{0} AT TIME ZONE {1}", F("created_at"), Value(zone))
    when = _Sql(
        r"""CASE WHEN date_trunc('second', {0}) = {0} THEN to_char({1}, 'YYYY-MM-DD"T"HH24:MI:SS')"""
        r""" ELSE to_char({1}, 'YYYY-MM-DD"T"HH24:MI:SS.US') END""",
        F("created_at"),
        local,
    )
    if offset is not None:
        return _Sql("{0} || {1}", when, Value(offset))
    each = _Sql("{0} - ({1} AT TIME ZONE 'UTC')", local, F("created_at"))
    return _Sql(
        "{0} || CASE WHEN {1} < interval '0' THEN '-' || to_char(-{1}, 'HH24:MI') ELSE to_char({1}, '+HH24:MI') END",
        when,
        each,
    )


def one_offset(zone: str, since: datetime, until: datetime) -> str | None:
    """The zone's UTC offset as isoformat() writes it, if it is the same all through [since, until) (an hourly
    look: zones change theirs at most twice a year, and never back within the hour)."""
    tz = ZoneInfo(zone)
    hours = max(1, int((until - since).total_seconds() // 3600))
    offsets = {(since + timedelta(hours=n)).astimezone(tz).isoformat()[-6:] for n in range(hours + 1)}
    offsets.add((until - timedelta(microseconds=1)).astimezone(tz).isoformat()[-6:])
    return offsets.pop() if len(offsets) == 1 else None


def line_of(*, cost: bool, zone: str, offset: str | None = None) -> _Sql:
    """A record's CSV line, byte for byte what csv.writer makes of rows_of's row for it (CRLF included)."""
    places = settings.MONEY_DECIMAL_PLACES
    # Money is an integer of units: times 10^-places, a product whose scale is `places`, so every digit shows.
    unit = f"0.{'0' * (places - 1)}1" if places else "1"
    cells = []
    for column in COLUMNS:
        if column == "created_at":
            cells.append(_time(zone, offset))
        elif column in _TEXT:
            cells.append(_text(column))
        elif column in _BOOLEAN:
            cells.append(_Sql("CASE WHEN {0} THEN 'True' ELSE 'False' END", F(column)))
        elif column == "amount":
            cells.append(_Sql(f"({{0}}::numeric * {unit})::text", F("cost" if cost else "price")))
        else:
            cells.append(_Sql("COALESCE({0}::text, '')", F(column)))
    template = " || ',' || ".join(f"{{{index}}}" for index in range(len(cells)))
    return _Sql(template + " || chr(13) || chr(10)", *cells)


def _zone_name() -> str | None:
    # A zoneinfo zone, whose name PostgreSQL's tz database knows; a fixed offset has no name: Python writes.
    key = getattr(timezone.get_current_timezone(), "key", None)
    return key if isinstance(key, str) else None


def _writes_lines() -> bool:
    return connection.vendor == "postgresql" and _zone_name() is not None


def _totals_row(totals) -> list:
    return [
        "total",
        str(totals.requests),
        *[""] * 10,
        str(totals.prompt_tokens),
        str(totals.completion_tokens),
        str(totals.total_tokens),
        safe(totals.spend),
        "",
        "",
        "",
    ]


def rows_of(*, organization, filters: Filters, cost: bool) -> Iterator[list]:
    """The header, every record's row, newest first, then the totals row (cells formatted in Python)."""
    # Nothing recorded after the export started is counted, by the rows or by the totals.
    filters = replace(filters, until=min(filters.until, timezone.now()))
    records = records_of(organization=organization, filters=filters)
    yield list(HEADER)
    fields = [("cost" if cost else "price") if column == "amount" else column for column in COLUMNS]
    zone = timezone.get_current_timezone()
    for row in records.values_list(*fields).iterator(chunk_size=CHUNK):
        when, *rest = row
        yield [timezone.localtime(when, zone).isoformat(), *(safe(value) for value in rest)]
    yield _totals_row(totals_of(records, cost=cost))


def lines_of(*, organization, filters: Filters, cost: bool) -> Iterator[str]:
    """The CSV's lines: written by PostgreSQL where it can, else by the csv module from rows_of."""
    writer = csv.writer(_Echo())
    zone = _zone_name()
    if zone is None or not _writes_lines():
        yield from (writer.writerow(row) for row in rows_of(organization=organization, filters=filters, cost=cost))
        return
    filters = replace(filters, until=min(filters.until, timezone.now()))
    records = records_of(organization=organization, filters=filters)
    yield writer.writerow(HEADER)
    line = line_of(cost=cost, zone=zone, offset=one_offset(zone, filters.since, filters.until))
    lines = records.annotate(csv_line=line).values_list("csv_line", flat=True)
    yield from lines.iterator(chunk_size=CHUNK)
    yield writer.writerow(_totals_row(totals_of(records, cost=cost)))


def _batches(lines: Iterator[str], size: int = BATCH) -> Generator[str]:
    batch: list[str] = []
    try:
        for line in lines:
            batch.append(line)
            if len(batch) == size:
                yield "".join(batch)
                batch = []
        if batch:
            yield "".join(batch)
    finally:
        # Closed early (the client left): so are the lines, and with them the database's cursor.
        close = getattr(lines, "close", None)
        if close is not None:
            close()


async def _from_sync_thread(lines: Iterator[str]) -> AsyncIterator[str]:
    # Under ASGI Django would read a sync iterator to its end into a list first (memory for a million rows).
    # Each batch is read in the request's own sync thread, whose database connection holds the cursor.
    batches = _batches(lines)
    read = sync_to_async(lambda: next(batches, None), thread_sensitive=True)
    try:
        while (batch := await read()) is not None:
            yield batch
    finally:
        # A client that leaves mid-export: the cursor is closed in the thread whose connection holds it.
        await sync_to_async(batches.close, thread_sensitive=True)()


def csv_response(*, organization, filters: Filters, cost: bool, asgi: bool = False) -> StreamingHttpResponse:
    """The CSV as a download. `asgi`: the request came through ASGI (hub/asgi.py), so the rows stream through
    an async iterator; otherwise (WSGI, the test client) through a plain one."""
    start, end = (
        timezone.localtime(filters.since).date(),
        timezone.localtime(filters.until - timedelta(microseconds=1)).date(),
    )
    name = f"requests-{organization.slug}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    lines = lines_of(organization=organization, filters=filters, cost=cost)
    response = StreamingHttpResponse(
        _from_sync_thread(lines) if asgi else _batches(lines), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response
