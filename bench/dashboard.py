"""Benchmark the dashboard's reads at scale: overview, usage charts, request log and CSV export.

    python bench/dashboard.py [--records 1000000] [--other-records 100000] [--repeat 30] [--output f.json]

Creates a fresh PostgreSQL database (127.0.0.1:5432, user postgres; createdb/dropdb, as bench/run.py's
scratch database), migrates it, fills it with INSERT ... SELECT FROM generate_series (one statement per
organisation: `--records` usage records over 90 days for the benchmarked organisation, `--other-records` for
each of 10 others), builds the hourly and daily rollups with the project's own billing.rollups.roll_up (timed),
then serves the hub as users run it (gunicorn with one uvicorn worker, DEBUG off) and times every page of PAGES
below with a signed-in session: `--repeat` times each after `--warmup` untimed requests, p50/p95 against the
300 ms bar. The CSV export is streamed once per `--export-repeat`: rows/s against 50,000 rows/s, and the worker's
peak RSS during it against before (flat: grows by less than `--rss-bound-mb`). A page answering 404 (not merged
yet) is reported as "missing", not a failure of the run. The admin's operator overview of 30 and 90 days (every
organisation's rollups and route rollups; records spread over three providers of two credentials each) is timed
in-process, against the same bar. See bench/README.md.

No ledger entries are written: the overview reads the credit account's balance (one row) and usage records,
the usage charts read rollups, the log and the export read usage records; none reads the ledger.
"""

import argparse
import html
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import PY, Children, free_port, gunicorn_command, log  # noqa: E402

PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}
PAGE_BAR_MS = 300.0
EXPORT_BAR_ROWS_S = 50_000.0
DAYS = 90

# Every URL the bench times, in one place, to adjust once the usage and request-log branches are merged.
# Placeholders: {slug}, {key_id} (a key of the organisation), {model} (a model it used, URL-quoted),
# {since} / {until} (ISO dates of the export's 30 days), {start90} (the first of the 90 days). "follow": the page is
# "next" link (an href with cursor=) that many times from the URL, then that page is timed.
PAGES = [
    {"name": "overview", "url": "/dashboard/"},
    {"name": "usage 30 days", "url": "/dashboard/usage/?range=30d&bucket=day&group=model&metric=spend"},
    {
        "name": "usage 90 days",
        "url": "/dashboard/usage/?range=custom&start={start90}&end={until}&bucket=day&group=model&metric=spend",
    },
    {"name": "log page 1", "url": "/dashboard/requests/?start={start90}&end={until}"},
    {"name": "log page 50", "url": "/dashboard/requests/?start={start90}&end={until}", "follow": 49},
    {
        "name": "log page 1, filtered",
        "url": "/dashboard/requests/?start={start90}&end={until}&key={key_id}&model={model}&status=ok",
    },
    {
        "name": "log page 50, filtered",
        "url": "/dashboard/requests/?start={start90}&end={until}&key={key_id}&model={model}&status=ok",
        "follow": 49,
    },
    {"name": "log page 1, errors", "url": "/dashboard/requests/?start={start90}&end={until}&status=upstream_error"},
]
EXPORT = {"name": "CSV export, 30 days", "url": "/manage/v1/orgs/{slug}/usage/export.csv?start={since}&end={until}"}
NEXT_LINK = re.compile(r"""href=["']([^"']*[?&](?:amp;)?cursor=[^"']*)["']""")

# The benchmarked organisation's models: public id, input and output cost in money units (10⁻¹⁰) per token,
# share of requests. Prices are cost × 6/5 (a 20% margin); every cost per token is a multiple of 5, exactly.
MODELS = [
    ("openai/gpt-4o-mini", 1_500, 6_000, 40),
    ("openai/gpt-4o", 25_000, 100_000, 15),
    ("anthropic/claude-sonnet", 30_000, 150_000, 15),
    ("anthropic/claude-haiku", 2_500, 12_500, 15),
    ("google/gemini-flash", 1_000, 4_000, 10),
    ("openai/text-embedding-3-small", 200, 0, 5),
]
TEAMS = ["platform", "research", "support"]
KEYS = 8  # spread over the teams; the last has none

# status, http status, share in per mille, error text; refusals and errors carry no tokens and no charge
STATUSES = [
    ("ok", 200, 940, ""),
    ("client_error", 400, 20, "invalid request: messages must not be empty"),
    ("rate_limited", 429, 10, "every route rate limited by its provider"),
    ("unavailable", 503, 5, "no route available"),
    ("upstream_error", 502, 15, "upstream answered 500"),
    ("cancelled", 499, 7, "client disconnected"),
    ("server_error", 500, 3, "hub error"),
]

COLUMNS = """
    request_id, organization_id, api_key_id, model_id, model_name, served_model, provider_id, credential_id,
    endpoint, stream, prompt_tokens, completion_tokens, total_tokens, cache_read_tokens, cache_write_tokens,
    image_input_tokens, usage_estimated, unit, images, image_tier, audio_seconds, cost, price, latency_ms,
    first_token_ms, status, http_status, error, billing_mode, cache_hit, created_at"""
# Each organisation's records go to an unindexed staging table first; then all of them, in the order of their
# time, into billing_usagerecord, as the meter writes them: a table's rows lie in the order they arrived, every
# organisation's interleaved, which is what an index scan over a time range reads.
# Constant SQL (no input in it): the figures go as parameters.
STAGE_SQL = f"CREATE UNLOGGED TABLE bench_fill AS SELECT {COLUMNS} FROM billing_usagerecord WITH NO DATA"  # noqa: S608
MOVE_SQL = f"INSERT INTO billing_usagerecord ({COLUMNS}) SELECT {COLUMNS} FROM bench_fill ORDER BY created_at"  # noqa: S608
FILL_SQL = """
WITH g AS (
    SELECT n, random() AS r_time, random() AS r_key, random() AS r_model, random() AS r_status,
           random() AS r_stream, random() AS r_tokens, random() AS r_out, random() AS r_lat
    FROM generate_series(1, %(records)s) AS n
), picked AS (
    SELECT g.*,
           (%(keys)s::bigint[])[1 + floor(r_key * array_length(%(keys)s::bigint[], 1))::int] AS key_id,
           1 + width_bucket(r_model, %(model_cum)s::float8[]) AS mi,
           1 + width_bucket(r_status, %(status_cum)s::float8[]) AS si
    FROM g
), shaped AS (
    SELECT p.*,
           (%(statuses)s::text[])[si] AS status,
           (%(embedding)s::bool[])[mi] AS is_embedding,
           CASE WHEN (%(statuses)s::text[])[si] IN ('ok', 'cancelled')
                THEN 20 + floor(power(r_tokens, 3) * 8000)::int ELSE 0 END AS pt
    FROM picked p
), tokens AS (
    SELECT s.*,
           CASE WHEN s.pt = 0 OR s.is_embedding THEN 0
                WHEN s.status = 'cancelled' THEN floor(r_out * 100)::int
                ELSE 10 + floor(r_out * 1200)::int END AS ct
    FROM shaped s
)
INSERT INTO bench_fill ({columns})
SELECT
    %(prefix)s || n, %(org)s, key_id, (%(model_ids)s::bigint[])[mi], (%(model_names)s::text[])[mi],
    (%(model_names)s::text[])[mi],
    CASE WHEN status = 'client_error' THEN NULL ELSE (%(provider_ids)s::bigint[])[mi] END,
    CASE WHEN status = 'client_error' THEN NULL
         ELSE (%(credential_ids)s::bigint[])[2 * mi - 1 + floor(r_stream * 10)::int %% 2] END,
    CASE WHEN is_embedding THEN 'embeddings' WHEN r_stream < 0.1 THEN 'responses' ELSE 'chat.completions' END,
    NOT is_embedding AND r_stream < 0.6, pt, ct, pt + ct,
    CASE WHEN r_lat < 0.3 THEN pt / 2 ELSE 0 END, 0, 0, false, 'tokens', 0, '', 0,
    pt * (%(in_units)s::bigint[])[mi] + ct * (%(out_units)s::bigint[])[mi],
    (pt * (%(in_units)s::bigint[])[mi] + ct * (%(out_units)s::bigint[])[mi]) * 6 / 5,
    CASE WHEN pt = 0 THEN 5 + floor(r_lat * 40)::int ELSE 200 + floor(r_lat * 4000)::int END,
    CASE WHEN NOT is_embedding AND r_stream < 0.6 AND pt > 0 THEN 80 + floor(r_lat * 600)::int END,
    status, (%(http)s::int[])[si], (%(errors)s::text[])[si], %(mode)s, false,
    %(until)s::timestamptz - r_time * interval '%(days)s days'
FROM tokens
""".replace("{columns}", COLUMNS)


def cumulative(shares: list[int]) -> list[float]:
    """The thresholds between the shares' buckets, for width_bucket: bucket i + 1 is [out[i - 1], out[i])."""
    total, running, out = sum(shares), 0, []
    for share in shares[:-1]:
        running += share
        out.append(running / total)
    return out


def psql(sql: str, db: str = "postgres") -> None:
    subprocess.run(
        ["psql", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-d", db, "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
    )


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "hub.settings"
    import django

    django.setup()


def make_organisations(others: int) -> dict:
    """The benchmarked organisation (keys in teams, models, a signed-in owner) and `others` more, each with keys."""
    from django.test import Client

    from accounts.dashboard import SESSION_KEY
    from accounts.models import KeyScope, Membership, Organization, Role, Team, User
    from accounts.services import api_key_create, organization_create
    from billing.models import CreditAccount
    from billing.services import credit_grant
    from providers.models import CatalogModel, Credential, Provider

    models = [CatalogModel.objects.create(public_id=public_id) for public_id, *_ in MODELS]
    # Each model's provider (its id's prefix), with two credentials each: what the operator overview reads.
    providers = {name: Provider.objects.create(name=name) for name in sorted({m[0].split("/")[0] for m in MODELS})}
    credentials = {}
    for name, provider in providers.items():
        for c in ("a", "b"):
            credential = Credential(provider=provider, name=c)
            credential.set_secret(f"bench-secret-{name}-{c}")
            credential.save()
            credentials[name, c] = credential.pk
    orgs = []
    for i in range(others + 1):
        org = organization_create(name="Bench main" if i == 0 else f"Bench other {i}")
        credit_grant(organization=org, amount=Decimal("1000000"), description="bench")
        teams = [Team.objects.create(organization=org, name=name) for name in TEAMS]
        keys = [api_key_create(organization=org, name=f"key {k}")[0] for k in range(KEYS if i == 0 else 3)]
        for k, key in enumerate(keys[:-1]):
            key.team = teams[k % len(teams)]
            key.save(update_fields=["team"])
        orgs.append({"id": org.pk, "slug": org.slug, "keys": [key.pk for key in keys]})
    main = orgs[0]
    user = User.objects.create_user(username="bench-owner", email="bench@example.com", password=None)
    Membership.objects.create(user=user, organization_id=main["id"], role=Role.OWNER)
    client = Client()
    client.force_login(user)
    session = client.session
    session[SESSION_KEY] = main["id"]
    session.save()
    from django.conf import settings

    _, admin_key = api_key_create(
        organization=Organization.objects.get(pk=main["id"]), name="bench admin", scope=KeyScope.ADMIN
    )
    modes = dict(CreditAccount.objects.values_list("organization_id", "billing_mode"))
    return {
        "orgs": orgs,
        "models": [m.pk for m in models],
        "provider_ids": [providers[m[0].split("/")[0]].pk for m in MODELS],
        # Two per model, its provider's: [model 1's a, model 1's b, model 2's a, ...].
        "credential_ids": [credentials[m[0].split("/")[0], c] for m in MODELS for c in ("a", "b")],
        "cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}",
        "admin_key": admin_key,
        "modes": modes,
    }


def fill(world: dict, records: int, other_records: int, until: datetime) -> dict:
    """One INSERT ... SELECT per organisation; returns seconds taken and counts."""
    from django.conf import settings
    from django.db import connection

    from accounts.models import Organization
    from billing.modes import effective_mode
    from billing.selectors import balance_of

    timings: dict = {}
    begun = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(STAGE_SQL)
        for i, org in enumerate(world["orgs"]):
            n = records if i == 0 else other_records
            if n <= 0:
                continue
            mode = effective_mode(balance_of(organization=Organization.objects.get(pk=org["id"])))
            started = time.monotonic()
            cursor.execute(
                FILL_SQL,
                {
                    "records": n,
                    "keys": org["keys"],
                    "model_cum": cumulative([m[3] for m in MODELS]),
                    "status_cum": cumulative([s[2] for s in STATUSES]),
                    "statuses": [s[0] for s in STATUSES],
                    "http": [s[1] for s in STATUSES],
                    "errors": [s[3] for s in STATUSES],
                    "embedding": [m[2] == 0 for m in MODELS],
                    "model_ids": world["models"],
                    "provider_ids": world["provider_ids"],
                    "credential_ids": world["credential_ids"],
                    "model_names": [m[0] for m in MODELS],
                    "in_units": [m[1] for m in MODELS],
                    "out_units": [m[2] for m in MODELS],
                    "prefix": f"bench-{org['slug']}-",
                    "org": org["id"],
                    "mode": mode,
                    "until": until,
                    "days": DAYS,
                },
            )
            timings[org["slug"]] = {"records": n, "seconds": round(time.monotonic() - started, 2)}
            log(f"fill: {n:,} records for {org['slug']} in {timings[org['slug']]['seconds']} s")
        started = time.monotonic()
        cursor.execute(MOVE_SQL)
        cursor.execute("DROP TABLE bench_fill")
        timings["move_seconds"] = round(time.monotonic() - started, 2)
        log(f"fill: all records into billing_usagerecord in time order in {timings['move_seconds']} s")
        started = time.monotonic()
        # What autovacuum does to a table in use: statistics, and the visibility map index-only scans need.
        cursor.execute("VACUUM ANALYZE billing_usagerecord")
        timings["vacuum_analyze_seconds"] = round(time.monotonic() - started, 2)
    timings["seconds"] = round(time.monotonic() - begun, 1)
    if settings.MONEY_DECIMAL_PLACES != 10:
        raise RuntimeError("MODELS' costs are in units of 10⁻¹⁰")
    return timings


def build_rollups(now: datetime) -> dict:
    from billing.models import UsageRollup
    from billing.rollups import roll_up

    started = time.monotonic()
    hours = roll_up(now=now)
    seconds = time.monotonic() - started
    rows = UsageRollup.objects.count()
    log(f"rollups: {hours:,} hours rebuilt, {rows:,} rollup rows, in {seconds:.1f} s (billing.rollups.roll_up)")
    return {"hours_rebuilt": hours, "rollup_rows": rows, "seconds": round(seconds, 1)}


def overview_worst_day(org_id: int, repeat: int) -> dict:
    """The overview's reads on the last day of last month, in-process: its month is a whole month of records."""
    from accounts.models import Organization
    from billing.overview import overview_of

    org = Organization.objects.get(pk=org_id)
    today = datetime.now(UTC).date().replace(day=1) - timedelta(days=1)
    return {"today": today.isoformat(), **timed(lambda: overview_of(organization=org, today=today), repeat)}


def timed(read, repeat: int) -> dict:
    """`read()` once to warm up, then `repeat` times timed: their summary."""
    read()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        read()
        times.append((time.perf_counter() - started) * 1000)
    return summary(times)


def operator_overview_times(days: int, repeat: int) -> dict:
    """The admin's operator overview (hub/operator_overview.py) of the last `days` UTC days, in-process: every
    organisation's rollups, route rollups included."""
    from hub.operator_overview import overview_of

    last = datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    return {
        "name": f"operator overview, {days} days, in-process",
        **timed(lambda: overview_of(first=first, last=last), repeat),
    }


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {
        "n": len(times),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(ordered[-1], 1),
    }


class Hub:
    """A keep-alive HTTP connection to the served hub, signed in by the session cookie."""

    def __init__(self, port: int, cookie: str, admin_key: str):
        self.port, self.cookie, self.admin_key = port, cookie, admin_key
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def get(self, url: str, *, sink=None) -> tuple[int, bytes, int]:
        """(status, body or b"" when streamed into `sink`, bytes read)."""
        headers = {"Cookie": self.cookie, "Host": f"127.0.0.1:{self.port}"}
        if url.startswith("/manage/"):
            headers["Authorization"] = f"Bearer {self.admin_key}"
        for attempt in (1, 2):
            try:
                self.conn.request("GET", url, headers=headers)
                response = self.conn.getresponse()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
                if attempt == 2:
                    raise
        if sink is None:
            body = response.read()
            return response.status, body, len(body)
        size = 0
        while chunk := response.read(1 << 16):
            size += len(chunk)
            sink(chunk)
        return response.status, b"", size


def resolve(page_url: str, hub: Hub, follow: int) -> tuple[str | None, str]:
    """The URL to time: `page_url`, or the page reached by following its "next" link `follow` times."""
    url = page_url
    for step in range(follow):
        status, body, _ = hub.get(url)
        if status != 200:
            return None, f"{status} at step {step}"
        match = NEXT_LINK.search(body.decode("utf-8", "replace"))
        if not match:
            return None, f"no next link at page {step + 1}"
        url = urllib.parse.urljoin(url, html.unescape(match.group(1)))
    return url, ""


def time_pages(hub: Hub, fields: dict, repeat: int, warmup: int) -> list[dict]:
    results = []
    for page in PAGES:
        url = page["url"].format(**fields)
        row = {"name": page["name"], "url": url, "repeat": repeat}
        status, _, _ = hub.get(url)
        if status == 404:
            results.append(dict(row, status="missing", note="404: not in this branch"))
            log(f"page {page['name']}: missing (404)")
            continue
        if status != 200:
            results.append(dict(row, status="error", note=f"answered {status}"))
            log(f"page {page['name']}: answered {status}")
            continue
        timed, note = resolve(url, hub, page.get("follow", 0))
        if timed is None:
            results.append(dict(row, status="error", note=note))
            log(f"page {page['name']}: {note}")
            continue
        for _ in range(warmup):
            hub.get(timed)
        times, sizes = [], set()
        for _ in range(repeat):
            started = time.perf_counter()
            status, _, _ = hub.get(timed)
            times.append((time.perf_counter() - started) * 1000)
            sizes.add(status)
        stats = summary(times)
        ok = stats["p95_ms"] < PAGE_BAR_MS and sizes == {200}
        results.append(dict(row, timed_url=timed, status="pass" if ok else "fail", statuses=sorted(sizes), **stats))
        log(f"page {page['name']}: p50 {stats['p50_ms']} ms, p95 {stats['p95_ms']} ms ({'pass' if ok else 'FAIL'})")
    return results


def worker_of(master_pid: int):
    import psutil

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = psutil.Process(master_pid).children()
        if children:
            return children[0]
        time.sleep(0.2)
    raise RuntimeError("gunicorn started no worker")


def time_export(hub: Hub, fields: dict, worker, repeat: int, rss_bound_mb: float) -> dict:
    url = EXPORT["url"].format(**fields)
    row = {"name": EXPORT["name"], "url": url}
    runs = []
    for _ in range(repeat):
        before = worker.memory_info().rss
        peak = [before]
        done = threading.Event()

        def sample(done=done, peak=peak):
            while not done.wait(0.02):
                try:
                    peak[0] = max(peak[0], worker.memory_info().rss)
                except Exception:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        lines = [0]

        def count(chunk: bytes, lines=lines):
            lines[0] += chunk.count(b"\n")

        started = time.perf_counter()
        status, _, size = hub.get(url, sink=count)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        if status == 404:
            return dict(row, status="missing", note="404: not in this branch")
        if status != 200:
            return dict(row, status="error", note=f"answered {status}")
        rows = max(lines[0] - 1, 0)  # the header line
        runs.append(
            {
                "rows": rows,
                "bytes": size,
                "seconds": round(seconds, 2),
                "rows_per_s": round(rows / seconds) if seconds else None,
                "rss_before_mb": round(before / 2**20, 1),
                "rss_peak_mb": round(peak[0] / 2**20, 1),
                "rss_growth_mb": round((peak[0] - before) / 2**20, 1),
            }
        )
        log(f"export: {rows:,} rows in {seconds:.1f} s, RSS {before / 2**20:.0f} -> {peak[0] / 2**20:.0f} MB")
    best = max(runs, key=lambda r: r["rows_per_s"] or 0)
    growth = max(r["rss_growth_mb"] for r in runs)
    fast = min(r["rows_per_s"] or 0 for r in runs) >= EXPORT_BAR_ROWS_S
    flat = growth < rss_bound_mb
    return dict(
        row,
        runs=runs,
        rows_per_s_min=min(r["rows_per_s"] or 0 for r in runs),
        rows_per_s_best=best["rows_per_s"],
        rss_growth_mb_max=growth,
        rss_bound_mb=rss_bound_mb,
        status="pass" if fast and flat and runs[0]["rows"] > 0 else "fail",
    )


def start_hub(children: Children, env: dict, tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    logfile = open(tmp / "gunicorn.log", "wb")
    cmd = gunicorn_command(port, "--timeout", "600")  # a million-row export is one long request
    proc = children.start(cmd, env=env, stdout=logfile, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited:\n{(tmp / 'gunicorn.log').read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/dashboard/")
            conn.getresponse().read()
            return proc, port
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the hub did not answer within 60 s")


def table(pages: list[dict], export: dict, worst: dict, operator: list[dict]) -> str:
    lines = [
        "| page | p50 | p95 | n | bar p95 < 300 ms |",
        "|---|---|---|---|---|",
    ]
    for p in pages:
        if "p50_ms" in p:
            lines.append(f"| {p['name']} | {p['p50_ms']} ms | {p['p95_ms']} ms | {p['n']} | {p['status']} |")
        else:
            lines.append(f"| {p['name']} | – | – | – | {p['status']} ({p.get('note', '')}) |")
    lines.append(
        f"| overview's reads on {worst['today']} (a whole month), in-process | {worst['p50_ms']} ms"
        f" | {worst['p95_ms']} ms | {worst['n']} | {'pass' if worst['p95_ms'] < PAGE_BAR_MS else 'fail'} |"
    )
    for o in operator:
        lines.append(
            f"| {o['name']} | {o['p50_ms']} ms | {o['p95_ms']} ms | {o['n']} |"
            f" {'pass' if o['p95_ms'] < PAGE_BAR_MS else 'fail'} |"
        )
    if "runs" in export:
        lines.append(
            f"\n{export['name']}: {export['runs'][0]['rows']:,} rows, {export['rows_per_s_min']:,} rows/s (slowest of"
            f" {len(export['runs'])}; bar 50,000), worker RSS grew at most {export['rss_growth_mb_max']} MB"
            f" (bound {export['rss_bound_mb']} MB): {export['status']}"
        )
    else:
        lines.append(f"\n{export['name']}: {export['status']} ({export.get('note', '')})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the dashboard's pages at scale (bench/README.md).")
    parser.add_argument("--records", type=int, default=1_000_000, help="usage records of the benchmarked org")
    parser.add_argument("--other-records", type=int, default=None, help="each other org's (default records/10)")
    parser.add_argument("--others", type=int, default=10, help="other organisations")
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests per page first")
    parser.add_argument("--export-repeat", type=int, default=3)
    parser.add_argument("--rss-bound-mb", type=float, default=50.0, help="the export's 'flat' bound")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "dashboard.json"))
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    args = parser.parse_args()
    other_records = args.records // 10 if args.other_records is None else args.other_records

    db = f"hub_bench_dashboard_{os.getpid()}"
    database_url = f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{db}"
    tmp = Path(tempfile.mkdtemp(prefix="hub-bench-dashboard-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}
    env.update(
        DATABASE_URL=database_url,
        HUB_VAR_DIR=str(tmp),
        DEBUG="false",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="hub.settings",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONWARNINGS="ignore::DeprecationWarning",
    )
    os.environ.update({k: env[k] for k in ("HUB_VAR_DIR", "DEBUG", "LOG_LEVEL")})
    children = Children()
    started = time.time()
    report: dict = {"records": args.records, "other_records": other_records, "others": args.others}
    try:
        subprocess.run(["createdb", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], db], check=True)
        log(f"database {db}: migrating …")
        children.run([PY, "manage.py", "migrate", "--noinput", "-v0"], env, timeout=600)
        # As `make run` does: with DEBUG off, pages link the manifest's hashed static files.
        children.run([PY, "manage.py", "collectstatic", "--noinput", "-v0"], env, timeout=300)
        setup_django(database_url)
        from django.db import connection

        now = datetime.now(UTC)
        world = make_organisations(args.others)
        report["fill"] = fill(world, args.records, other_records, now)
        report["rollups"] = build_rollups(now)
        main_org = world["orgs"][0]
        worst = overview_worst_day(main_org["id"], args.repeat)
        log(f"overview's reads on {worst['today']}: p50 {worst['p50_ms']} ms, p95 {worst['p95_ms']} ms")
        report["overview_worst_day"] = worst
        report["operator_overview"] = [operator_overview_times(days, args.repeat) for days in (30, DAYS)]
        for o in report["operator_overview"]:
            log(f"{o['name']}: p50 {o['p50_ms']} ms, p95 {o['p95_ms']} ms")
        connection.close()

        proc, port = start_hub(children, env, tmp)
        hub = Hub(port, world["cookie"], world["admin_key"])
        today = now.date()
        fields = {
            "slug": main_org["slug"],
            "key_id": main_org["keys"][0],
            "model": urllib.parse.quote(MODELS[0][0], safe=""),
            "since": (today - timedelta(days=30)).isoformat(),
            "until": today.isoformat(),
            "start90": (today - timedelta(days=DAYS - 1)).isoformat(),
        }
        worker = worker_of(proc.pid)
        report["pages"] = time_pages(hub, fields, args.repeat, args.warmup)
        report["export"] = time_export(hub, fields, worker, args.export_repeat, args.rss_bound_mb)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        log(f"bench failed: {exc}")
        return 2
    finally:
        children.stop_all()
        if args.keep:
            log(f"kept database {db} and {tmp}")
        else:
            try:
                from django.db import connections

                connections.close_all()
            except Exception as exc:
                log(f"closing connections: {exc}")
            subprocess.run(["dropdb", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "--if-exists", db])
            shutil.rmtree(tmp, ignore_errors=True)

    report.update(
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        seconds=round(time.time() - started, 1),
        cpus=os.cpu_count(),
        settings=vars(args),
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(
        f"\ndashboard at {args.records:,} records over {DAYS} days (+{args.others} organisations × {other_records:,}),"
        f" {os.cpu_count()} CPUs, {args.repeat} timed requests per page after {args.warmup} warm-up\n"
    )
    print(
        f"fill: {report['fill']['seconds']} s (generate_series, then in time order, VACUUM ANALYZE);"
        f" rollups (billing.rollups.roll_up, {DAYS} days): {report['rollups']['seconds']} s\n"
    )
    print(table(report["pages"], report["export"], report["overview_worst_day"], report["operator_overview"]))
    print(f"\nwritten to {os.path.relpath(args.output)}")
    failed = [p for p in report["pages"] if p["status"] in ("fail", "error")]
    failed += [report["export"]] if report["export"]["status"] in ("fail", "error") else []
    slow = [o for o in [report["overview_worst_day"], *report["operator_overview"]] if o["p95_ms"] >= PAGE_BAR_MS]
    return 1 if failed or slow else 0


if __name__ == "__main__":
    sys.exit(main())
