"""Two hub instances on one PostgreSQL and one Redis: does every shared guarantee hold with the load spread over
both (issue 18)? And what do two serve together, against one?

    DATABASE_URL=postgres://…/SCRATCH REDIS_URL=redis://…/N .venv/bin/python bench/scaleout.py
        [--workers 1] [--rpm 20] [--credit-requests 5] [--concurrency 300] [--clients 32] [--seconds 5]
        [--lease-idle 0.5] [--output bench/results/scaleout.json] [--keep]

DATABASE_URL must name a fresh scratch PostgreSQL database (the bench migrates and writes it; drop and create
it before each run) and REDIS_URL a scratch Redis database, which the bench empties first: instances share
state only through these two, so SQLite or no Redis is refused. The bench starts the fake upstream
(bench/fake_upstream.py), prepares the hub as bench/run.py does (migrate, its provider and priced model, a key
of the demo organisation), adds its own providers, models, organisations and keys, and starts two gunicorn
masters, A and B, on two ports (one uvicorn worker each, or --workers), each with its own var/ folder and the
same SECRET_KEY and HUB_ENCRYPTION_KEYS, as two hosts are. Each scenario sends its requests to A and B in
turn:

  a. rate limit: a key limited to --rpm requests a minute sends 3 × --rpm at once, inside one clock minute:
     exactly --rpm answer 200, the others 429 `rate_limit_exceeded` in OpenAI's error shape, with retry-after.
  b. cooldown: a model whose first route's credential the upstream rejects (401) and whose second route
     answers. Requests through A until the first route is out (a rejected credential is out at once, for
     60 s), then 10 through B: the upstream sees no further request with the rejected credential (its
     `unauthorized` counter stays put) and every answer names the second route (x-hub-route).
  c. credit: an organisation with credit for exactly --credit-requests requests' worst case sends
     --concurrency requests at once. The model bills output only and max_tokens is 8, which the upstream
     writes exactly, so a request's price is its worst case and the bound (README, "Reserve, then settle":
     no overspend while providers write no more than the cap they are sent) allows at most --credit-requests
     answers and a balance of at least zero. Once metering settled and the leases were given back
     (HUB_CREDIT_LEASE_IDLE_SECONDS, --lease-idle here, 5 s by default): a usage record per request, no hold
     left, the balance is the credit less what the answers were charged, and the ledger sums to it. Then
     requests one at a time (a lease's idle time apart) spend the rest: the answers reach --credit-requests
     in all, then 402, balance 0.
  d. throughput, informational: bench/loadgen.py with --clients for --seconds against A alone, then half the
     clients against each of A and B at once; every request metered, the demo balance equal to its ledger.

Prints a markdown table, a row per check, and writes bench/results/scaleout.json (git-ignored). Exit code 0
when every check passed, 1 when one failed, 2 when the run itself broke. See bench/README.md.
"""

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    BENCH,
    MODEL,
    PY,
    Children,
    check_db,
    free_port,
    gunicorn_command,
    http,
    hub_env,
    log,
    prepare_hub,
    run_in_temp_dir,
    start_upstream,
)

COOLDOWN_MODEL = "scaleout/cooldown"
EXACT_MODEL = "scaleout/exact"
MAX_TOKENS = 8  # what bench/fake_upstream.py writes: 8 completion tokens, whatever the cap
OUTPUT_PRICE = Decimal(1000)  # per million tokens: 0.008 a request
HELLO = [{"role": "user", "content": "hi"}]

CONFIG_YAML = """\
providers:
  - name: rejected
    kind: openai_compatible
    preset: custom
    base_url: {base_url}
    credentials:
      - name: revoked
        secret_env: SCALEOUT_REJECTED_KEY
models:
  - id: {cooldown}
    strategy: priority
    routes:
      - {{provider: rejected, upstream: gpt-4o-mini}}
      - {{provider: bench, upstream: gpt-4o-mini, priority: 1}}
    rate: {{input_cost: 0.15, output_cost: 0.60, margin: 0.2}}
  - id: {exact}
    provider: bench
    upstream: gpt-4o-mini
    rate: {{input_price: 0, output_price: {output_price}}}
"""

# Run inside the hub's Django (manage.py shell -c): the bench's organisations and keys, on stdout (never shown).
SETUP = r"""
import json, os
from decimal import Decimal
from accounts.models import Organization
from accounts.services import api_key_create, organization_create
from billing.models import UsageRecord
from billing.services import credit_grant

if UsageRecord.objects.exists():
    raise SystemExit("DATABASE_URL is not a fresh database (it has usage records): drop and create it")

def funded(name, credit):
    made = organization_create(name=name)
    credit_grant(organization=made, amount=Decimal(credit), description="scale-out bench")
    return made

rpm = funded("Scale-out RPM", "100")
credit = funded("Scale-out credit", os.environ["SCALEOUT_CREDIT"])
demo = Organization.objects.get(slug="demo")
limits = {"rpm_limit": int(os.environ["SCALEOUT_RPM"])}
print("SCALEOUT-SETUP " + json.dumps({
    "orgs": {"rpm": rpm.pk, "credit": credit.pk},
    "keys": {
        "rpm": api_key_create(organization=rpm, name="rpm", limits=limits)[1],
        "credit": api_key_create(organization=credit, name="credit")[1],
        "cooldown": api_key_create(organization=demo, name="cooldown")[1],
    },
}))
"""

# Once every organisation named has its usage records written and its holds given back (or the wait is over):
# what its account and ledger say.
CHECK = r"""
import json, os, time
from django.db.models import Count
from billing.models import CreditAccount, CreditHold, LedgerEntry, UsageRecord

expected = {int(k): n for k, n in json.loads(os.environ["SCALEOUT_EXPECTED"]).items()}
deadline = time.monotonic() + float(os.environ["SCALEOUT_WAIT"])

def done(org, n):
    held = CreditHold.objects.filter(account__organization_id=org).exists()
    return UsageRecord.objects.filter(organization_id=org).count() >= n and not held

while not all(done(org, n) for org, n in expected.items()) and time.monotonic() < deadline:
    time.sleep(0.2)
out = {}
for org in expected:
    records = UsageRecord.objects.filter(organization_id=org)
    account = CreditAccount.objects.get(organization_id=org)
    by_status = records.values_list("http_status").annotate(n=Count("pk")).values_list("http_status", "n")
    out[org] = {
        "records": records.count(),
        "by_http_status": {str(status): n for status, n in by_status},
        "charged": str(sum(records.values_list("price", flat=True))),
        "prices_of_answers": sorted({str(p) for p in records.filter(http_status=200).values_list("price", flat=True)}),
        "holds": CreditHold.objects.filter(account=account).count(),
        "held": str(account.held),
        "balance": str(account.balance),
        # Summed here in Decimal, exactly.
        "ledger_sum": str(sum(LedgerEntry.objects.filter(account=account).values_list("amount", flat=True))),
    }
print("SCALEOUT-CHECK " + json.dumps(out))
"""


class Checks:
    """Each check's verdict, in the order made."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, scenario: str, name: str, ok: bool, detail: str = "") -> bool:
        self.rows.append({"scenario": scenario, "check": name, "pass": bool(ok), "detail": detail})
        log(f"{'PASS' if ok else 'FAIL'}  {scenario}: {name}" + (f"  [{detail}]" if detail else ""))
        return bool(ok)

    @property
    def passed(self) -> bool:
        return all(row["pass"] for row in self.rows)

    def table(self) -> str:
        lines = ["| scenario | check | result | detail |", "|---|---|---|---|"]
        lines += [
            f"| {r['scenario']} | {r['check']} | {'pass' if r['pass'] else '**FAIL**'} | {r['detail']} |"
            for r in sorted(self.rows, key=lambda r: r["scenario"])  # a scenario's rows together, in order
        ]
        return "\n".join(lines)


def amount(value) -> str:
    """An amount as people read it: 0.04, not 0.0400000000 or 0E-10."""
    return f"{Decimal(value).normalize():f}"


def manage_json(children: Children, env: dict, script: str, marker: str, **extra: str) -> dict:
    out = children.run([PY, "manage.py", "shell", "-c", script], dict(env, **extra), timeout=180)
    return json.loads(next(line for line in out.splitlines() if line.startswith(marker + " "))[len(marker) + 1 :])


def settle(children: Children, env: dict, expected: dict[int, int], wait: float = 30) -> dict:
    found = manage_json(
        children, env, CHECK, "SCALEOUT-CHECK", SCALEOUT_EXPECTED=json.dumps(expected), SCALEOUT_WAIT=str(wait)
    )
    return {int(org): row for org, row in found.items()}


def start_instance(children: Children, env: dict, name: str, workers: int, tmp: Path) -> str:
    """One hub as a host runs it: gunicorn on a port of its own, with its own var/ folder."""
    var = tmp / f"instance-{name}"
    var.mkdir()
    port = free_port()
    logfile = open(var / "gunicorn.log", "wb")
    proc = children.start(
        gunicorn_command(port, "--workers", str(workers)),
        env=dict(env, HUB_VAR_DIR=str(var)),
        stdout=logfile,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hub {name} exited:\n{Path(logfile.name).read_text()[-3000:]}")
        try:
            if http(f"{base}/healthz", timeout=2)[0] == 200:
                return base
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"hub {name} did not answer within 60 s")


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120))


async def post(s: aiohttp.ClientSession, base: str, key: str, body: dict) -> dict:
    """One chat completion: its status, the headers the checks read, and its JSON body."""
    headers = {"authorization": f"Bearer {key}"}
    async with s.post(f"{base}/v1/chat/completions", json=body, headers=headers) as response:
        raw = await response.read()
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = {"unparsed": raw[:300].decode(errors="replace")}
        return {
            "status": response.status,
            "route": response.headers.get("x-hub-route", ""),
            "retry_after": response.headers.get("retry-after"),
            "body": answer,
        }


async def spread(bases: list[str], key: str, body: dict, n: int) -> list[dict]:
    """`n` requests at once, the i-th to instance i mod 2 (a round-robin balancer)."""
    async with session() as s:
        return await asyncio.gather(*(post(s, bases[i % 2], key, body) for i in range(n)))


def openai_error(answer: dict, status: int, code: str) -> bool:
    error = answer["body"].get("error") if isinstance(answer["body"], dict) else None
    return (
        answer["status"] == status
        and isinstance(error, dict)
        and set(error) == {"message", "type", "param", "code"}
        and error["code"] == code
    )


def statuses(answers: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a in answers:
        counts[str(a["status"])] = counts.get(str(a["status"]), 0) + 1
    return counts


def rate_limit(checks: Checks, bases: list[str], key: str, rpm: int) -> dict:
    into_minute = time.time() % 60
    if into_minute > 45:  # the key's counter is per clock minute: the burst must fit in one
        log(f"rate limit: waiting {60.5 - into_minute:.0f} s for a fresh minute")
        time.sleep(60.5 - into_minute)
    started = time.time()
    answers = asyncio.run(spread(bases, key, {"model": MODEL, "messages": HELLO}, 3 * rpm))
    ended = time.time()
    ok = [i for i, a in enumerate(answers) if a["status"] == 200]
    refused = [a for a in answers if a["status"] != 200]
    shaped = all(openai_error(a, 429, "rate_limit_exceeded") and a["retry_after"] for a in refused)
    checks.add("a. rate limit", "the burst fits in one clock minute", int(started // 60) == int(ended // 60))
    checks.add("a. rate limit", f"exactly {rpm} of {3 * rpm} answered", len(ok) == rpm, f"{len(ok)} answered")
    checks.add(
        "a. rate limit",
        f"the other {2 * rpm}: 429 rate_limit_exceeded, OpenAI's shape, retry-after",
        len(refused) == 2 * rpm and shaped,
        json.dumps(statuses(answers)),
    )
    return {
        "rpm": rpm,
        "sent": 3 * rpm,
        "seconds": round(ended - started, 3),
        "statuses": statuses(answers),
        "answered_by": {"A": sum(1 for i in ok if i % 2 == 0), "B": sum(1 for i in ok if i % 2 == 1)},
    }


def rejected_hits(direct: str) -> int:
    return json.loads(http(f"{direct.removesuffix('/v1')}/_stats")[1])["unauthorized"]


def cooldown(checks: Checks, bases: list[str], key: str, direct: str) -> dict:
    body = {"model": COOLDOWN_MODEL, "messages": HELLO}
    fallback = f"{COOLDOWN_MODEL}; provider=bench"

    async def through(base: str, n: int, stop_when_out: bool) -> list[dict]:
        seen = []
        async with session() as s:
            for _ in range(n):
                before = rejected_hits(direct)
                answer = await post(s, base, key, body)
                answer["hits"] = rejected_hits(direct) - before
                seen.append(answer)
                if stop_when_out and answer["hits"] == 0:
                    break
        return seen

    through_a = asyncio.run(through(bases[0], 5, stop_when_out=True))
    hits_a = sum(a["hits"] for a in through_a)
    out = bool(hits_a) and through_a[-1]["hits"] == 0
    checks.add(
        "b. cooldown",
        "A: the rejected route failed over, then was out",
        out and all(a["status"] == 200 and a["route"] == fallback for a in through_a),
        f"{hits_a} hit(s) on it in {len(through_a)} requests through A",
    )
    through_b = asyncio.run(through(bases[1], 10, stop_when_out=False))
    hits_b = sum(a["hits"] for a in through_b)
    checks.add(
        "b. cooldown",
        "B: no request to the route A took out; every answer from the fallback",
        hits_b == 0 and all(a["status"] == 200 and a["route"] == fallback for a in through_b),
        f"{hits_b} hit(s) in {len(through_b)} requests through B",
    )
    return {
        "through_a": [{k: a[k] for k in ("status", "route", "hits")} for a in through_a],
        "through_b": [{k: a[k] for k in ("status", "route", "hits")} for a in through_b],
    }


def credit(checks: Checks, children: Children, env: dict, bases: list[str], key: str, org: int, args) -> dict:
    worst = MAX_TOKENS * OUTPUT_PRICE / 10**6
    funded = args.credit_requests * worst
    body = {"model": EXACT_MODEL, "messages": HELLO, "max_tokens": MAX_TOKENS}
    answers = asyncio.run(spread(bases, key, body, args.concurrency))
    ok = sum(1 for a in answers if a["status"] == 200)
    refused = [a for a in answers if a["status"] != 200]
    s = "c. credit"
    checks.add(
        s,
        f"at most {args.credit_requests} of {args.concurrency} answered (the bound), at least one",
        1 <= ok <= args.credit_requests,
        f"{ok} answered",
    )
    checks.add(
        s,
        "every other one: 402 insufficient_quota, OpenAI's shape",
        all(openai_error(a, 402, "insufficient_quota") for a in refused),
        json.dumps(statuses(answers)),
    )
    burst = settle(children, env, {org: args.concurrency})[org]
    balance = Decimal(burst["balance"])
    checks.add(
        s,
        "each answer charged exactly its worst case (the bound's premise)",
        [Decimal(p) for p in burst["prices_of_answers"]] == ([worst] if ok else []),
        f"worst case {amount(worst)}, charged {', '.join(map(amount, burst['prices_of_answers'])) or '–'}",
    )
    checks.add(
        s,
        "a usage record per request answered, no hold left once leases are given back",
        burst["records"] == args.concurrency and burst["holds"] == 0 and Decimal(burst["held"]) == 0,
        f"{burst['records']} records for {args.concurrency}, {burst['holds']} holds, held {amount(burst['held'])}",
    )
    checks.add(
        s,
        "balance ≥ 0, and = the credit less the answers' charges",
        balance >= 0 and balance == funded - ok * worst,
        f"credit {amount(funded)}, balance {amount(balance)}",
    )
    checks.add(
        s, "ledger sum = balance", Decimal(burst["ledger_sum"]) == balance, f"ledger {amount(burst['ledger_sum'])}"
    )

    # The rest, a request at a time, each after the last one's lease was given back and every instance's
    # cached balance (HUB_BALANCE_CACHE_SECONDS, 1 s) expired: credit no lease holds is anyone's.
    pause = args.lease_idle + 1.0 + 0.3
    later = []

    async def one_by_one():
        async with session() as s:
            for i in range(args.credit_requests - ok + 1):
                await asyncio.sleep(pause)
                later.append(await post(s, bases[i % 2], key, body))
                if later[-1]["status"] != 200:
                    break

    asyncio.run(one_by_one())
    more = sum(1 for a in later if a["status"] == 200)
    final = settle(children, env, {org: args.concurrency + len(later)})[org]
    checks.add(
        s,
        f"then the rest is spent one at a time: {args.credit_requests} answered in all, then 402, balance 0",
        ok + more == args.credit_requests
        and bool(later)
        and openai_error(later[-1], 402, "insufficient_quota")
        and Decimal(final["balance"]) == 0
        and Decimal(final["ledger_sum"]) == 0
        and final["holds"] == 0,
        f"{more} more, then {later[-1]['status'] if later else '–'}; balance {amount(final['balance'])}",
    )
    return {
        "worst_case": str(worst),
        "credit": str(funded),
        "concurrency": args.concurrency,
        "statuses": statuses(answers),
        "answered_by": {
            "A": sum(1 for i, a in enumerate(answers) if a["status"] == 200 and i % 2 == 0),
            "B": sum(1 for i, a in enumerate(answers) if a["status"] == 200 and i % 2 == 1),
        },
        "after_burst": burst,
        "one_at_a_time": [a["status"] for a in later],
        "final": final,
    }


def loadgen_cmd(url: str, key: str, clients: int, args) -> list[str]:
    return [
        PY,
        str(BENCH / "loadgen.py"),
        "--mode",
        "throughput",
        "--url",
        f"{url}/v1/chat/completions",
        "--key",
        key,
        "--model",
        MODEL,
        "--clients",
        str(clients),
        "--seconds",
        str(args.seconds),
        "--warmup",
        "1",
    ]


def loadgens(children: Children, env: dict, runs: list[tuple[str, int]], key: str, args) -> list[dict]:
    """bench/loadgen.py against each (url, clients) at the same time."""
    procs = [
        children.start(loadgen_cmd(url, key, clients, args), env=env, stdout=subprocess.PIPE, text=True)
        for url, clients in runs
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=args.seconds + 120)
        children.procs.remove(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"bench/loadgen.py failed ({proc.returncode})")
        results.append(json.loads(out))
    return results


def throughput(checks: Checks, children: Children, env: dict, bases: list[str], key: str, args) -> dict:
    (one,) = loadgens(children, env, [(bases[0], args.clients)], key, args)
    half = max(args.clients // 2, 1)
    both = loadgens(children, env, [(bases[0], half), (bases[1], half)], key, args)
    rps_both = sum(r["rps"] for r in both)
    errors = one["errors"] + sum(r["errors"] for r in both)
    checks.add(
        "d. throughput",
        "no errors (informational figures: see the table below)",
        errors == 0,
        f"one {one['rps']:.0f} req/s, both {rps_both:.0f} req/s ({rps_both / one['rps']:.2f}×)"
        if one["rps"]
        else "no answers",
    )
    return {
        "clients": args.clients,
        "seconds": args.seconds,
        "one": one,
        "both": both,
        "rps_one": one["rps"],
        "rps_both": rps_both,
        "sent": one["sent"] + sum(r["sent"] for r in both),
    }


def measure(args, children: Children, tmp: Path, checks: Checks) -> dict:
    database, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not database.startswith(("postgres://", "postgresql://")) or not redis_url:
        raise RuntimeError(
            "set DATABASE_URL to a scratch PostgreSQL database and REDIS_URL to a scratch Redis database: "
            "two instances share limits, route health and credit only through them"
        )
    redis.Redis.from_url(redis_url).flushdb()  # a previous run's counters and cooldowns, under the same ids
    upstream_key = "sk-bench-upstream-" + secrets.token_hex(16)
    env = hub_env(
        tmp,
        upstream_key,
        SCALEOUT_REJECTED_KEY="sk-revoked-" + secrets.token_hex(16),
        # What several hosts must share (hub/settings.py): each instance has a var/ folder of its own.
        SECRET_KEY=secrets.token_urlsafe(50),
        HUB_ENCRYPTION_KEYS=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        HUB_CREDIT_LEASE_IDLE_SECONDS=str(args.lease_idle),
        SCALEOUT_RPM=str(args.rpm),
        SCALEOUT_CREDIT=str(args.credit_requests * MAX_TOKENS * OUTPUT_PRICE / 10**6),
    )

    upstream_port = start_upstream(children, upstream_key, 20.0)
    direct = f"http://127.0.0.1:{upstream_port}/v1"
    demo_key = prepare_hub(children, env, upstream_port, ["plain"])["plain"]
    config = tmp / "scaleout.yaml"
    config.write_text(
        CONFIG_YAML.format(base_url=direct, cooldown=COOLDOWN_MODEL, exact=EXACT_MODEL, output_price=OUTPUT_PRICE)
    )
    children.run([PY, "manage.py", "hub_config", "apply", str(config)], env, timeout=120)
    setup = manage_json(children, env, SETUP, "SCALEOUT-SETUP")
    keys, orgs = setup["keys"], setup["orgs"]

    log(f"hubs: starting A and B ({args.workers} worker(s) each) …")
    bases = [start_instance(children, env, name, args.workers, tmp) for name in "AB"]
    for base in bases:  # preflight: each serves the bench model, through the upstream
        status, answer = http(
            f"{base}/v1/chat/completions", {"model": MODEL, "messages": HELLO}, key=demo_key, timeout=30
        )
        if status != 200 or json.loads(answer).get("usage", {}).get("total_tokens") != 29:
            raise RuntimeError(f"hub {base} answered {status}: {answer[:300]!r}")
    log(f"upstream {direct}; hub A {bases[0]}; hub B {bases[1]}")

    results = {"rate_limit": rate_limit(checks, bases, keys["rpm"], args.rpm)}
    results["cooldown"] = cooldown(checks, bases, keys["cooldown"], direct)
    results["credit"] = credit(checks, children, env, bases, keys["credit"], orgs["credit"], args)
    if args.seconds > 0:
        results["throughput"] = throughput(checks, children, env, bases, demo_key, args)
        sent = len(bases) + results["throughput"]["sent"]
        metered = check_db(children, env, {demo_key: sent})
        row = metered["keys"][demo_key]
        checks.add(
            "d. throughput",
            "every request metered, demo balance = ledger sum",
            row["records"] == sent and Decimal(metered["balance"]) == Decimal(metered["ledger_sum"]),
            f"{row['records']} records for {sent} requests",
        )
        results["throughput"]["metering"] = dict(row, balance=metered["balance"], ledger_sum=metered["ledger_sum"])
    rpm = settle(children, env, {orgs["rpm"]: 3 * args.rpm})[orgs["rpm"]]
    checks.add(
        "a. rate limit",
        "a usage record per request, ledger sum = balance",
        rpm["records"] == 3 * args.rpm and rpm["holds"] == 0 and Decimal(rpm["ledger_sum"]) == Decimal(rpm["balance"]),
        f"{rpm['records']} records, balance {amount(rpm['balance'])}, ledger {amount(rpm['ledger_sum'])}",
    )
    results["rate_limit"]["metering"] = rpm
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description="Two hub instances, one database and Redis (see bench/README.md).")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per gunicorn master")
    parser.add_argument("--rpm", type=int, default=20, help="a: the key's requests-per-minute limit")
    parser.add_argument("--credit-requests", type=int, default=5, help="c: the credit, in worst-case requests")
    parser.add_argument("--concurrency", type=int, default=300, help="c: requests sent at once")
    parser.add_argument("--lease-idle", type=float, default=0.5, help="c: HUB_CREDIT_LEASE_IDLE_SECONDS, seconds")
    parser.add_argument("--clients", type=int, default=32, help="d: concurrent clients in all")
    parser.add_argument("--seconds", type=float, default=5.0, help="d: measured seconds per run (0: no d)")
    parser.add_argument("--output", default=str(BENCH / "results" / "scaleout.json"))
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (gunicorn logs)")
    args = parser.parse_args()

    checks = Checks()
    started = time.time()
    results, failed = run_in_temp_dir(
        "hub-scaleout-",
        args.keep,
        lambda children, tmp: measure(args, children, tmp, checks),
        broken=(RuntimeError, subprocess.TimeoutExpired),
    )
    if failed is not None:
        return failed

    report = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "passed": checks.passed,
        "checks": checks.rows,
        "results": results,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")

    print(f"\ntwo hub instances ({args.workers} worker(s) each), one PostgreSQL, one Redis, {os.cpu_count()} CPUs\n")
    print(checks.table())
    if "throughput" in results:
        t = results["throughput"]
        ratio = f"{t['rps_both'] / t['rps_one']:.2f}×" if t["rps_one"] else "–"
        print(
            f"\n| throughput, {t['clients']} clients, {t['seconds']:g} s (informational) | req/s |\n|---|---|\n"
            f"| A alone | {t['rps_one']:,.0f} |\n| A and B, {t['clients'] // 2} clients each | {t['rps_both']:,.0f} |\n"
            f"| both / one | {ratio} |"
        )
    print(f"\nwritten to {os.path.relpath(args.output)}")
    return 0 if checks.passed else 1


if __name__ == "__main__":
    sys.exit(main())
