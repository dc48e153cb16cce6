"""Two hub instances hold every shared guarantee (issue 18): two gunicorn masters on two ports, one PostgreSQL
database and one Redis, the requests spread over both. A key's requests per minute are counted once across
both; a cooldown one instance takes, the other honours; 300 concurrent requests against credit for five
requests never overspend; and each organisation's ledger sums to its balance. bench/scaleout.py runs the same
checks as a bench scenario, with throughput beside them.

Each can fail, and was seen failing once by hand: with instance B started with REDIS_URL="" (its own counters
and route health, as an instance that does not share Redis) the RPM test let 20 of 30 through, not 10, and the
cooldown test saw B send the failing route three requests of its own; with the credit test's model served by
fake-overrun (100 tokens past the cap it is sent, breaking the bound's premise) the balance went below zero.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import connection

from billing.models import CreditAccount, CreditHold, LedgerEntry, UsageRecord
from providers.models import CatalogModel
from tests import factories
from tests.conftest import UPSTREAM_KEY
from tests.factories import add_model, route
from tests.fakes.server import free_port
from tests.processes import shared_env
from tests.test_routing import HELLO, provider, spare, spare_server  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
PER_MILLION = Decimal(1000)  # 0.001 a token


def _shared_backends() -> bool:
    return bool(django_settings.REDIS_URL) and connection.vendor == "postgresql"


pytestmark = pytest.mark.skipif(
    not _shared_backends(),
    reason="two hub instances share limits and route health only through Redis, and credit only through one "
    "database both reach (PostgreSQL): set DATABASE_URL and REDIS_URL (CI does)",
)


class Instance:
    """One hub as users scale it: a gunicorn master with one uvicorn worker, on a port of its own."""

    def __init__(self, name: str, env: dict, log: Path):
        self.name, self.log = name, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "hub.asgi:application",
                "-k",
                "uvicorn_worker.UvicornWorker",
                "--workers",
                "1",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--graceful-timeout",
                "5",
                "--no-control-socket",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_up(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"hub {self.name} exited:\n{self.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"hub {self.name} did not answer in time:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # drains its meter and gives back its leases
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


@pytest.fixture
def instances(transactional_db, tmp_path):
    """Hubs A and B on this test's database and Redis. Leases are given back after 0.5 s idle (not 5), so the
    credit test can see every hold gone; a cooled-down route stays out for 30 s, longer than any test."""
    env = shared_env(HUB_CREDIT_LEASE_IDLE_SECONDS="0.5", HUB_COOLDOWN_SECONDS="30", HUB_COOLDOWN_AFTER_FAILURES="3")
    # Both boot at once; their logs are under pytest's tmp_path, which the secret guard searches.
    pair = [Instance(name, env, tmp_path / f"gunicorn-{name}.log") for name in "AB"]
    try:
        deadline = time.monotonic() + 60
        for one in pair:
            one.wait_until_up(deadline)
        yield pair
    finally:
        for one in pair:
            one.stop()


def spread(instances, requests: list[dict], key: str) -> list[httpx.Response]:
    """Send every request at once, the i-th to instance i mod 2 (as a round-robin balancer does)."""

    async def scenario():
        limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=len(requests))
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{instances[i % 2].url}/v1/chat/completions",
                        json=body,
                        headers={"authorization": f"Bearer {key}"},
                    )
                    for i, body in enumerate(requests)
                )
            )

    return asyncio.run(scenario())


def chat(instance, key: str, model: str) -> httpx.Response:
    return httpx.post(
        f"{instance.url}/v1/chat/completions",
        json={"model": model, "messages": HELLO},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def settled(organization, records: int, timeout: float = 15) -> CreditAccount:
    """Wait until both instances wrote the organisation's `records` usage records and gave back every lease."""
    deadline = time.monotonic() + timeout
    while True:
        written = UsageRecord.objects.filter(organization=organization).count()
        holds = CreditHold.objects.filter(account__organization=organization).count()
        if (written >= records and not holds) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert written == records, f"{written} usage records for {records} requests answered"
    assert holds == 0, "a lease was never given back"
    account = CreditAccount.objects.get(organization=organization)
    ledger = sum(LedgerEntry.objects.filter(account=account).values_list("amount", flat=True))
    assert account.balance == ledger, "the balance is not the sum of the ledger"
    assert account.held == 0
    return account


def assert_openai_error(response: httpx.Response, status: int, type_: str, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == (type_, code)


def test_a_keys_requests_per_minute_are_counted_once_across_both(instances, upstream, chat_model):
    rpm = 10
    organization = factories.organization("Acme", credit="10")
    _, key = factories.api_key(organization, "limited", limits={"rpm_limit": rpm})
    if time.time() % 60 > 50:
        time.sleep(60.5 - time.time() % 60)  # the counter is per clock minute: the burst must fit in one
    started = time.time()
    answers = spread(instances, [{"model": "gpt-4o-mini", "messages": HELLO}] * (3 * rpm), key)
    assert int(started // 60) == int(time.time() // 60), "the burst crossed a minute"

    assert [r.status_code for r in answers].count(200) == rpm
    refused = [r for r in answers if r.status_code != 200]
    assert len(refused) == 2 * rpm
    for response in refused:
        assert_openai_error(response, 429, "rate_limit_error", "rate_limit_exceeded")
        assert response.headers["x-ratelimit-limit-requests"] == str(rpm)
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert 1 <= int(response.headers["retry-after"]) <= 60
    assert len(upstream.requests) == rpm, "only the admitted requests reached the provider"
    account = settled(organization, records=3 * rpm)
    charged = UsageRecord.objects.filter(organization=organization, http_status=200)
    assert charged.count() == rpm
    assert account.balance == Decimal(10) - sum(charged.values_list("price", flat=True)) < Decimal(10)


def test_a_cooldown_taken_through_one_instance_is_honoured_by_the_other(instances, upstream, spare, api_key):
    a, b = instances
    primary = provider("primary", upstream.base_url, UPSTREAM_KEY)
    backup = provider("backup", spare.base_url, "sk-backup-key-0001")
    model = add_model(primary, "team/model", "fake-error-500")  # its first route always answers 500
    CatalogModel.objects.filter(pk=model.pk).update(strategy="priority")
    route(model, backup, "gpt-4o-mini", priority=1)
    add_model(primary, "team/ok", "gpt-4o-mini")  # the same credential, answering

    def failing_hits() -> int:
        return sum(1 for r in upstream.requests if (r.json or {}).get("model") == "fake-error-500")

    # B reads the credential clean, and may route on that for HUB_ROUTE_STATE_CACHE_SECONDS.
    assert chat(b, api_key, "team/ok").status_code == 200
    for _ in range(3):  # HUB_COOLDOWN_AFTER_FAILURES in a row, all through A
        answer = chat(a, api_key, "team/model")
        assert answer.status_code == 200 and answer.headers["x-hub-route"] == "team/model; provider=backup"
    assert failing_hits() == 3
    assert chat(a, api_key, "team/model").status_code == 200 and failing_hits() == 3, "A took it out"

    time.sleep(django_settings.HUB_ROUTE_STATE_CACHE_SECONDS + 0.2)  # what B read clean is no longer routed on
    for _ in range(5):
        answer = chat(b, api_key, "team/model")
        assert answer.status_code == 200 and answer.headers["x-hub-route"] == "team/model; provider=backup"
    assert failing_hits() == 3, "B sent the route A cooled down a request"
    # The model with no other route: B refuses it, telling when the credential A took out comes back.
    refused = chat(b, api_key, "team/ok")
    assert_openai_error(refused, 503, "server_error", "no_route_available")
    assert 20 <= int(refused.headers["retry-after"]) <= 30
    assert len(spare.requests) == 9


def test_300_concurrent_requests_against_credit_for_five_never_overspend(instances, upstream, openai_provider):
    # The model bills output only, and fake-long writes exactly the cap it is sent: a request's real price is
    # its worst case, so the bound (README, "Reserve, then settle": none while providers write no more than
    # the cap) allows at most five answers, and a balance of at least zero.
    max_tokens = 10
    worst_case = max_tokens * PER_MILLION / 10**6
    add_model(
        openai_provider,
        "team/exact",
        "fake-long",
        input_cost=Decimal(0),
        output_cost=Decimal(0),
        input_price=Decimal(0),
        output_price=PER_MILLION,
    )
    organization = factories.organization("Mallory", credit=5 * worst_case)
    _, key = factories.api_key(organization, "attack")

    answers = spread(instances, [{"model": "team/exact", "messages": HELLO, "max_tokens": max_tokens}] * 300, key)

    ok = [r for r in answers if r.status_code == 200]
    assert 1 <= len(ok) <= 5, f"{len(ok)} answered"
    for response in answers:
        if response.status_code != 200:
            assert_openai_error(response, 402, "insufficient_quota", "insufficient_quota")
    assert len(upstream.requests) == len(ok), "a refused request reached the provider"
    account = settled(organization, records=300)
    assert account.balance >= 0, f"overspent: {len(ok)} answered, the balance is {account.balance}"
    prices = UsageRecord.objects.filter(organization=organization, http_status=200).values_list("price", flat=True)
    assert sorted(prices) == [worst_case] * len(ok), "each answer charged its worst case"
    assert account.balance == 5 * worst_case - len(ok) * worst_case
    assert UsageRecord.objects.filter(organization=organization, http_status=402, price=0).count() == 300 - len(ok)
