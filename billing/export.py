"""The request log as CSV, for the dashboard (billing/views/requests.py) and the management API (billing/api.py):
the same filters (billing/requestlog.py), the same rows, the same totals.

Rows stream from a server-side cursor (`.iterator(chunk_size=...)`) through the csv module into a
StreamingHttpResponse, so a million rows take the memory of one chunk. The last row is the totals (requests,
tokens, spend), one aggregate over the same filter, so it is the sum of the rows above it. The range ends no
later than when the export started, so rows and totals count the same records while requests keep arriving.

A cell that a spreadsheet would read as a formula (=, +, -, @, a tab or carriage return first) is prefixed
with an apostrophe; the cells are model names, key names and errors, which a tenant's clients choose.
"""

import csv
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse
from django.utils import timezone

from .requestlog import Filters, records_of, totals_of

CHUNK = 2000  # rows fetched from the server-side cursor at a time
BATCH = 500  # rows per piece of the response under ASGI: one thread hop each
_FORMULA = ("=", "+", "-", "@", "\t", "\r")

HEADER = (
    "time",
    "request_id",
    "key",
    "key_prefix",
    "team",
    "model_asked",
    "model_served",
    "endpoint",
    "stream",
    "status",
    "http_status",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "spend",  # the price, or in internal mode the cost (requestlog.shows_cost)
    "latency_ms",
    "first_token_ms",
    "error",
)


class _Echo:
    """The pseudo-buffer csv.writer writes into: each row comes straight back as a string."""

    def write(self, value: str) -> str:
        return value


def safe(value):
    """A cell: text a spreadsheet would run as a formula is quoted; numbers and booleans go as they are."""
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA) else value
    return "" if value is None else value


def rows_of(*, organization, filters: Filters, cost: bool) -> Iterator[list]:
    """The header, every record's row, newest first, then the totals row."""
    # Nothing recorded after the export started is counted, by the rows or by the totals.
    filters = replace(filters, until=min(filters.until, timezone.now()))
    records = records_of(organization=organization, filters=filters)
    yield list(HEADER)
    columns = (
        "created_at",
        "request_id",
        "api_key__name",
        "api_key__prefix",
        "api_key__team__name",
        "model_name",
        "served_model",
        "endpoint",
        "stream",
        "status",
        "http_status",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost" if cost else "price",
        "latency_ms",
        "first_token_ms",
        "error",
    )
    zone = timezone.get_current_timezone()
    for row in records.values_list(*columns).iterator(chunk_size=CHUNK):
        when, *rest = row
        yield [timezone.localtime(when, zone).isoformat(), *(safe(value) for value in rest)]
    totals = totals_of(records, cost=cost)
    yield [
        "total",
        str(totals.requests),
        *[""] * 9,
        str(totals.prompt_tokens),
        str(totals.completion_tokens),
        str(totals.total_tokens),
        str(totals.spend),
        "",
        "",
        "",
    ]


def _batches(lines: Iterator[str], size: int = BATCH) -> Iterator[str]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


async def _from_sync_thread(lines: Iterator[str]) -> AsyncIterator[str]:
    # Under ASGI Django would read a sync iterator to its end into a list first (memory for a million rows).
    # Each batch is read in the request's own sync thread, whose database connection holds the cursor.
    batches = _batches(lines)
    read = sync_to_async(lambda: next(batches, None), thread_sensitive=True)
    while (batch := await read()) is not None:
        yield batch


def csv_response(*, organization, filters: Filters, cost: bool, asgi: bool = False) -> StreamingHttpResponse:
    """The CSV as a download. `asgi`: the request came through ASGI (hub/asgi.py), so the rows stream through
    an async iterator; otherwise (WSGI, the test client) through a plain one."""
    writer = csv.writer(_Echo())
    start, end = (
        timezone.localtime(filters.since).date(),
        timezone.localtime(filters.until - timedelta(microseconds=1)).date(),
    )
    name = f"requests-{organization.slug}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    lines = (writer.writerow(row) for row in rows_of(organization=organization, filters=filters, cost=cost))
    response = StreamingHttpResponse(
        _from_sync_thread(lines) if asgi else lines, content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response
