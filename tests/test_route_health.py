"""When routes go out and come back: what a refused client is told (a provider's rate limit is a
429, an outage a 503, each with the real time until a route returns) and how it is stored and
logged; a failed probe after a cooldown; failures counted once however many stores count them;
fallbacks that get their turn."""

import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai
import pytest
from django.conf import settings as django_settings

from billing.models import UsageRecord
from hub import route_health
from providers.models import CatalogModel, Credential, Provider
from tests.conftest import UPSTREAM_KEY
from tests.factories import add_model
from tests.fakes.server import free_port
from tests.processes import shared_env
from tests.test_routing import HELLO, client, failing_then_ok, provider, spare, spare_server  # noqa: F401

needs_redis = pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs REDIS_URL (CI sets it)")


@pytest.fixture
def only_route(upstream, transactional_db):
    """A model with one route, on the fake upstream, that behaves as its upstream name says."""

    def make(upstream_name):
        return add_model(provider("only", upstream.base_url, UPSTREAM_KEY), "team/model", upstream_name)

    return make


def refusal(client):
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="team/model", messages=HELLO)
    return raised.value


def test_a_provider_rate_limit_on_every_route_is_a_429_with_its_retry_after(client, hub, upstream, only_route, caplog):
    only_route("fake-error-429")  # the provider says retry-after: 7
    assert refusal(client).status_code == 429  # its own answer, passed on
    caplog.clear()
    refused = refusal(client)
    assert len(upstream.requests) == 1, "the route sits out its retry-after"
    assert (refused.status_code, refused.body["code"], refused.body["type"]) == (
        429,
        "rate_limit_exceeded",
        "rate_limit_error",
    )
    assert 6 <= int(refused.response.headers["retry-after"]) <= 7
    hub.drain()
    record = UsageRecord.objects.order_by("created_at").last()
    assert (record.status, record.http_status) == ("rate_limited", 429)
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelname) for r in lines] == [("hub.relay", "WARNING")]
    assert "rate limited by its provider" in lines[0].getMessage()


def test_an_outage_is_a_503_that_says_when_the_first_route_returns(client, hub, upstream, only_route, caplog):
    only_route("fake-error-401")  # a rejected credential: out for 60 s at once
    assert refusal(client).status_code == 502
    caplog.clear()
    refused = refusal(client)
    assert (refused.status_code, refused.body["code"], refused.body["type"]) == (
        503,
        "no_route_available",
        "server_error",
    )
    assert 58 <= int(refused.response.headers["retry-after"]) <= 60
    hub.drain()
    record = UsageRecord.objects.order_by("created_at").last()
    assert (record.status, record.http_status) == ("unavailable", 503)
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelname) for r in lines] == [("hub.relay", "ERROR")], "logged once, by the hub"


def test_routes_at_their_cap_are_stored_as_unavailable_not_as_the_clients_error(client, hub, spare, transactional_db):
    add_model(provider("shared", spare.base_url, ("sk-capped-00000001", {"rpm_limit": 1})), "team/model", "gpt-4o-mini")
    client.chat.completions.create(model="team/model", messages=HELLO)
    refused = refusal(client)
    assert (refused.status_code, refused.body["code"], refused.response.headers["retry-after"]) == (
        503,
        "routes_busy",
        "1",
    )
    hub.drain()
    assert UsageRecord.objects.order_by("created_at").last().status == "unavailable"


def test_a_failed_probe_sends_the_credential_straight_back_out_for_twice_as_long(
    client, hub, upstream, spare, failing_then_ok, settings
):
    settings.HUB_COOLDOWN_SECONDS = 0.5
    failing_then_ok("fake-error-500")
    health = route_health.store().read
    primary = Credential.objects.get(provider__name="primary").pk
    for _ in range(settings.HUB_COOLDOWN_AFTER_FAILURES):
        client.chat.completions.create(model="team/model", messages=HELLO)
    first = health(primary)
    assert first.level == 1 and len(upstream.requests) == 3
    time.sleep(max(0.0, first.cooldown_until - time.time()) + 0.05)
    probed = time.time()
    client.chat.completions.create(model="team/model", messages=HELLO)  # the probe, which fails
    assert len(upstream.requests) == 4
    client.chat.completions.create(model="team/model", messages=HELLO)
    assert len(upstream.requests) == 4, "one failed probe, and the credential is out again"
    second = health(primary)
    assert second.level == 2 and 1.0 <= second.cooldown_until - probed <= 1.2


def test_of_the_requests_that_find_a_credential_half_open_one_probes_it(hub, api_key, upstream, spare, failing_then_ok):
    failing_then_ok("fake-hang")  # a black-holed provider: each try costs its timeout
    Provider.objects.filter(name="primary").update(first_byte_timeout=0.5)
    primary = Credential.objects.get(provider__name="primary").pk
    route_health.store().write(primary, route_health.Health(level=1, cooldown_until=time.time() - 1))

    async def four_at_once():
        client = openai.AsyncOpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)

        async def one():
            stream = await client.chat.completions.create(model="team/model", messages=HELLO, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        try:
            return await asyncio.gather(*(one() for _ in range(4)))
        finally:
            await client.close()

    assert asyncio.run(four_at_once()) == ["Hello! You said: hello"] * 4
    assert len(upstream.requests) == 1 and len(spare.requests) == 4, "one probe; the others passed it by"
    assert route_health.store().read(primary).level == 2


def test_a_fallback_gets_its_turn_when_the_models_own_routes_use_up_the_attempts(
    client, hub, upstream, spare, transactional_db
):
    failing = provider("failing", upstream.base_url, UPSTREAM_KEY, UPSTREAM_KEY, UPSTREAM_KEY)
    add_model(failing, "big/model", "fake-error-500")
    add_model(provider("backup", spare.base_url, "sk-backup-key-0001"), "small/model", "gpt-4o-mini")
    CatalogModel.objects.filter(public_id="big/model").update(fallbacks=["small/model"])
    reply = client.chat.completions.with_raw_response.create(model="big/model", messages=HELLO)
    assert reply.headers["x-hub-route"] == "small/model; provider=backup"
    assert len(upstream.requests) == django_settings.HUB_ROUTING_MAX_ATTEMPTS and len(spare.requests) == 1


class Error500:
    code, status, retry_after, message = "upstream_error", 502, None, "The provider 'x' failed (500)."


def stores(kind):
    if kind == "local":
        one = route_health.LocalStore()
        return one, one
    return route_health.RedisStore(django_settings.REDIS_URL), route_health.RedisStore(django_settings.REDIS_URL)


@pytest.mark.parametrize("kind", ["local", pytest.param("redis", marks=needs_redis)])
def test_failures_from_two_processes_each_count_once(kind, settings):
    """Each has read the credential clean (and cached it); then they fail it at once, turn by turn."""
    route_health.reset()
    settings.HUB_COOLDOWN_SECONDS = 5.0
    one, other = stores(kind)
    cid = 515151
    if kind == "redis":
        one._sync.delete(one._key(cid))
    failure = route_health.Failure.of(Error500())

    async def scenario():
        await asyncio.gather(one.states([cid]), other.states([cid]))
        now = time.time()
        await asyncio.gather(one.fail(cid, failure, now), other.fail(cid, failure, now))
        counted = one.read(cid).failures
        third = await one.fail(cid, failure, now)
        return counted, third, (await other.states([cid]))[cid]

    counted, third, seen = asyncio.run(scenario())
    assert counted == 2
    assert third.cooling(time.time()) and third.level == 1 and third.failures == 0
    assert seen.cooling(time.time()), "the other process does not route on what it cached"
    if kind == "redis":
        one._sync.delete(one._key(cid))


def _shared_backends() -> bool:
    engine = django_settings.DATABASES["default"]["ENGINE"]
    return bool(django_settings.REDIS_URL) and "postgresql" in engine


def _wait_until_up(proc, base: str, key: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the hub exited:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{base}/v1/models", headers={"authorization": f"Bearer {key}"}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the hub did not answer within 60 s:\n{log.read_text()[-3000:]}")


def _start_hub(env: dict, port: int):
    log = tempfile.NamedTemporaryFile(prefix="hub-gunicorn-", suffix=".log", delete=False)
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    proc = subprocess.Popen(
        [
            gunicorn,
            "hub.asgi:application",
            "-k",
            "uvicorn_worker.UvicornWorker",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--graceful-timeout",
            "5",
            "--no-control-socket",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}", Path(log.name), log


@pytest.fixture
def two_workers(transactional_db, settings):
    """The hub as users scale it: two gunicorn processes (one uvicorn worker each, on two ports, as behind a
    balancer), on this test's PostgreSQL and Redis, with cooldowns shortened (1 s, doubling) so that a few
    cycles fit in seconds. Two masters rather than one with two workers: which worker accepts a connection
    is the kernel's choice, and one idle worker often takes them all; requests sent to each in turn make
    every cycle cross processes."""
    route_health.store()
    route_health.reset()  # what earlier tests left in Redis
    env = shared_env(HUB_COOLDOWN_SECONDS="1", HUB_COOLDOWN_AFTER_FAILURES="3")
    hubs = [_start_hub(env, free_port()) for _ in range(2)]
    try:
        yield [(proc, base, path) for proc, base, path, _ in hubs]
    finally:
        for proc, _, _, log in hubs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc, _, _, log in hubs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            log.close()


@pytest.mark.skipif(
    not _shared_backends(),
    reason="several processes share route health only through Redis "
    "(with PostgreSQL as the database): set both to run it",
)
def test_two_workers_send_a_failing_route_three_requests_then_one_probe_per_cooldown(
    upstream, spare, api_key, failing_then_ok, two_workers
):
    failing_then_ok("fake-error-500")  # route 1 always answers 500, route 2 always answers
    for proc, base, log in two_workers:
        _wait_until_up(proc, base, api_key, log)
    clients = [openai.OpenAI(base_url=f"{base}/v1", api_key=api_key, max_retries=0) for _, base, _ in two_workers]
    hits, served, started = [], [0, 0], time.monotonic()
    while time.monotonic() - started < 9.5:  # cooldowns of 1, 2 and 4 s, and the probes between them
        turn = len(hits) % 2  # each process in turn: every failure count and cooldown crosses processes
        before, sent = len(upstream.requests), time.monotonic()
        assert clients[turn].chat.completions.create(model="team/model", messages=HELLO).choices[0].message.content
        hits.append(len(upstream.requests) - before)
        served[turn] += 1
        time.sleep(max(0.0, 0.25 - (time.monotonic() - sent)))
    runs, current = [], 0  # the hits on the failing route, counted per cycle (a run of requests that hit it)
    for hit in [*hits, 0]:
        if hit:
            current += hit
        elif current:
            runs.append(current)
            current = 0
    assert runs == [3, 1, 1, 1], f"hits per request: {hits}"
    assert len(spare.requests) == len(hits), "route 2 answered every request"
    assert min(served) >= len(hits) // 2 and all(proc.poll() is None for proc, _, _ in two_workers)


class RateLimit:
    code, status, retry_after, message = "rate_limit_exceeded", 429, "2", "Rate limit reached."


class Rejected:
    code, status, retry_after, message = "upstream_auth_failed", 502, None, "The provider rejected the credential."


@pytest.mark.parametrize("kind", ["local", pytest.param("redis", marks=needs_redis)])
def test_both_stores_apply_the_same_cooldown_rule(kind, settings):
    """The in-process store runs it in Python, Redis in Lua: step by step, they agree."""
    settings.HUB_COOLDOWN_SECONDS, settings.HUB_COOLDOWN_AFTER_FAILURES = 5.0, 3
    store, _ = stores(kind)
    cid, t = 525252, 1_000_000.0
    if kind == "redis":
        store._sync.delete(store._key(cid))
    steps = [  # (seconds from t, error) -> (failures, level, cooldown ends at t +, rate limited)
        (0, RateLimit, (1, 0, 2, True)),  # its retry-after, below the threshold
        (3, Error500, (2, 0, 2, True)),
        (4, Error500, (0, 1, 9, False)),  # the third in a row: out for 5 s
        (6, Error500, (0, 1, 9, False)),  # in flight when it went out: not news
        (10, Error500, (0, 2, 20, False)),  # the failed probe: straight back out, for 10 s
        (21, Rejected, (0, 3, 21 + 240, False)),  # a rejected credential: 60 s, doubled twice
    ]
    seen = []
    for at, error, _ in steps:
        h = store.failed(cid, route_health.Failure.of(error()), t + at)
        seen.append((h.failures, h.level, round(h.cooldown_until - t, 3), h.rate_limited))
    assert seen == [expected for _, _, expected in steps]
    assert store.succeeded(cid, 40.0).clean
    if kind == "redis":
        store._sync.delete(store._key(cid))


@pytest.mark.parametrize(
    "value", ["1e999", "99999999999999999999", "-5", "NaN", "inf", "Fri, 31 Dec 9999 23:59:59 GMT", "soon"]
)
def test_a_providers_absurd_retry_after_cools_a_route_down_for_at_most_the_cap(
    client, hub, upstream, only_route, settings, value
):
    """A retry-after of forever (1e999, a date in 9999) or nonsense (NaN, negative, words) is the provider's
    word, not a law: the route is out for at most HUB_COOLDOWN_MAX_SECONDS and clients are told a sane time."""
    settings.HUB_COOLDOWN_MAX_SECONDS = 30.0
    only_route(f"fake-error-429-retry-after:{value}")
    first = refusal(client)
    assert first.status_code == 429
    told = first.response.headers.get("retry-after")
    assert told is None or 1 <= int(told) <= 30, told
    health = route_health.store().read(Credential.objects.get(provider__name="only").pk)
    assert health.cooldown_until - time.time() <= 30.0
    if told is None:  # unreadable: not believed, the route stays in
        assert health.cooldown_until == 0.0
        return
    assert told == "30", "forever is the cap"
    refused = refusal(client)  # the hub's own refusal, while the route sits out the cap
    assert len(upstream.requests) == 1 and 1 <= int(refused.response.headers["retry-after"]) <= 30
    hub.drain()
    assert [r.http_status for r in UsageRecord.objects.all()] == [429, 429]
