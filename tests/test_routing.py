"""Routing and resilience: several credentials and providers per model, failover before the
first byte, cooldowns, fallback models, caps and health checks — each driven by fake
upstreams that fail on command, checking what the client got, what was tried and billed."""

import asyncio
import collections
import time
from decimal import Decimal

import openai
import pytest

from billing.models import LedgerEntry, UsageRecord
from hub import route_health
from providers.models import CatalogModel, Credential, ModelRoute, Provider
from tests import factories
from tests.conftest import UPSTREAM_KEY
from tests.factories import add_model, route
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import server_fixture

HELLO = [{"role": "user", "content": "hello"}]


# A second OpenAI-compatible upstream that takes any key (so several credentials can share it).
spare_server = server_fixture(lambda: FakeOpenAI(api_key=None))


@pytest.fixture
def spare(spare_server):
    spare_server.reset()
    return spare_server


def provider(name, base_url, *secrets, **fields):
    """An OpenAI-preset provider with a credential (key1, key2…) per secret, or per (secret, its fields)."""
    p = factories.provider(name, preset="openai", base_url=base_url, **fields)
    for i, (secret, extra) in enumerate(s if isinstance(s, tuple) else (s, {}) for s in secrets):
        factories.credential(p, secret, name=f"key{i + 1}", **extra)
    return p


def keys_used(fake) -> list[str]:
    return [r.headers.get("authorization", "").removeprefix("Bearer ") for r in fake.requests]


@pytest.fixture
def client(hub, api_key):
    return openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)


@pytest.fixture
def failing_then_ok(upstream, spare, transactional_db):
    """A model whose first route fails (chosen by priority) and second answers."""
    primary = provider("primary", upstream.base_url, UPSTREAM_KEY)
    backup = provider("backup", spare.base_url, "sk-backup-key-0001")

    def make(upstream_name, **model_fields):
        model = add_model(primary, "team/model", upstream_name)
        CatalogModel.objects.filter(pk=model.pk).update(strategy="priority", **model_fields)
        route(model, backup, "gpt-4o-mini", priority=1)
        return model

    return make


@pytest.mark.parametrize(
    "failure, status",
    [("fake-error-500", 500), ("fake-error-503", 503), ("fake-error-429", 429), ("fake-error-401", 401)],
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_retryable_failure_fails_over_before_the_first_byte(
    client, hub, upstream, spare, failing_then_ok, failure, status, stream
):
    failing_then_ok(failure)
    reply = client.chat.completions.with_raw_response.create(model="team/model", messages=HELLO, stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in reply.parse() if c.choices)
    else:
        text = reply.parse().choices[0].message.content
    assert text == "Hello! You said: hello"
    assert reply.headers["x-hub-route"] == "team/model; provider=backup"
    assert len(upstream.requests) == 1 and len(spare.requests) == 1
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.status, record.provider.name, record.credential.name) == ("ok", "backup", "key1")
    assert LedgerEntry.objects.filter(kind="usage").count() == 1  # billed once


def test_a_non_retryable_failure_is_answered_at_once(client, hub, upstream, spare, failing_then_ok):
    failing_then_ok("fake-error-400")
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="team/model", messages=HELLO)
    assert raised.value.body["code"] == "context_length_exceeded"
    assert spare.requests == []


def test_an_unreachable_provider_fails_over(client, hub, spare, transactional_db):
    gone = provider("gone", "http://127.0.0.1:9/v1", UPSTREAM_KEY)
    backup = provider("backup", spare.base_url, "sk-backup-key-0001")
    model = add_model(gone, "team/model", "gpt-4o-mini")
    CatalogModel.objects.filter(pk=model.pk).update(strategy="priority")
    route(model, backup, "gpt-4o-mini", priority=1)
    assert client.chat.completions.create(model="team/model", messages=HELLO).choices[0].message.content
    assert len(spare.requests) == 1


def test_a_stream_that_does_not_start_in_time_fails_over(client, hub, upstream, spare, failing_then_ok):
    failing_then_ok("fake-hang")
    Provider.objects.filter(name="primary").update(first_byte_timeout=0.3)
    started = time.monotonic()
    chunks = list(client.chat.completions.create(model="team/model", messages=HELLO, stream=True))
    assert time.monotonic() - started < 5 and chunks
    assert upstream.wait_for_disconnect(timeout=5)
    assert len(spare.requests) == 1


def test_nothing_is_retried_once_bytes_reached_the_client(client, hub, upstream, spare, failing_then_ok):
    failing_then_ok("fake-cut")
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="team/model", messages=HELLO, stream=True))
    assert spare.requests == []
    hub.drain()
    assert UsageRecord.objects.get().status == "upstream_error"


def test_a_rate_limited_credential_sits_out_its_retry_after(client, hub, upstream, spare, failing_then_ok):
    failing_then_ok("fake-error-429")
    for _ in range(3):
        client.chat.completions.create(model="team/model", messages=HELLO)
    assert len(upstream.requests) == 1, "after its 429 the primary is not asked again within retry-after"
    assert len(spare.requests) == 3
    primary = Credential.objects.get(provider__name="primary")
    health = route_health.store().read(primary.pk)
    assert health.cooling(time.time()) and 6 <= health.cooldown_until - time.time() <= 7.5
    assert "Rate limit" in health.reason


def test_repeated_failures_cool_a_credential_down_and_a_success_brings_it_back(
    client, hub, upstream, spare, failing_then_ok, settings
):
    model = failing_then_ok("fake-error-500")
    primary = Credential.objects.get(provider__name="primary")
    for _ in range(settings.HUB_COOLDOWN_AFTER_FAILURES):
        client.chat.completions.create(model="team/model", messages=HELLO)
    health = route_health.store().read(primary.pk)
    assert health.cooling(time.time()) and health.level == 1 and health.since
    client.chat.completions.create(model="team/model", messages=HELLO)
    assert len(upstream.requests) == settings.HUB_COOLDOWN_AFTER_FAILURES  # out of rotation now
    # The cooldown ends; the primary is healthy again: the next request is the probe.
    route_health.store().write(primary.pk, route_health.Health(failures=0, level=1, cooldown_until=time.time() - 1))
    ModelRoute.objects.filter(model=model, provider__name="primary").update(upstream_name="gpt-4o-mini")
    from hub import catalogue

    catalogue.invalidate()
    client.chat.completions.create(model="team/model", messages=HELLO)
    assert route_health.store().read(primary.pk).clean


def test_a_rejected_credential_is_taken_out_at_once(client, hub, upstream, spare, failing_then_ok):
    failing_then_ok("fake-error-401")
    client.chat.completions.create(model="team/model", messages=HELLO)
    health = route_health.store().read(Credential.objects.get(provider__name="primary").pk)
    assert health.cooling(time.time()) and health.cooldown_until - time.time() > 50


def test_a_fallback_model_serves_when_every_route_failed_and_is_billed_at_its_price(
    client, hub, upstream, spare, transactional_db
):
    primary = provider("primary", upstream.base_url, UPSTREAM_KEY)
    backup = provider("backup", spare.base_url, "sk-backup-key-0001")
    add_model(primary, "big/model", "fake-error-503")
    add_model(
        backup,
        "small/model",
        "gpt-4o-mini",
        input_cost=Decimal(3),
        output_cost=Decimal(5),
        input_price=Decimal(7),
        output_price=Decimal(11),
    )
    CatalogModel.objects.filter(public_id="big/model").update(fallbacks=["small/model"])
    reply = client.chat.completions.with_raw_response.create(model="big/model", messages=HELLO)
    assert reply.headers["x-hub-route"] == "small/model; provider=backup"
    assert reply.parse().model == "small/model"  # the public id of the model that served
    assert reply.headers["x-hub-provider-model"] == "gpt-4o-mini"  # what its provider calls it
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.model_name, record.model.public_id) == ("big/model", "small/model")
    usage = reply.parse().usage
    assert record.price == (Decimal(usage.prompt_tokens) * 7 + Decimal(usage.completion_tokens) * 11) / 10**6


def test_attempts_are_bounded(client, hub, upstream, transactional_db, settings):
    settings.HUB_ROUTING_MAX_ATTEMPTS = 2
    failing = provider("failing", upstream.base_url, UPSTREAM_KEY, UPSTREAM_KEY, UPSTREAM_KEY)
    add_model(failing, "team/model", "fake-error-500")
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="team/model", messages=HELLO)
    assert raised.value.status_code == 502 and len(upstream.requests) == 2


def test_weights_share_the_traffic(client, hub, spare, transactional_db):
    shared = provider(
        "shared", spare.base_url, ("sk-heavy-000000001", {"weight": 3}), ("sk-light-000000001", {"weight": 1})
    )
    add_model(shared, "team/model", "gpt-4o-mini")
    for _ in range(80):
        client.chat.completions.create(model="team/model", messages=HELLO)
    counts = collections.Counter(keys_used(spare))
    assert 0.6 <= counts["sk-heavy-000000001"] / 80 <= 0.9


def test_priority_order_uses_the_first_credential_while_it_is_healthy(client, hub, spare, transactional_db):
    shared = provider(
        "shared", spare.base_url, ("sk-first-000000001", {"priority": 0}), ("sk-second-00000001", {"priority": 5})
    )
    model = add_model(shared, "team/model", "gpt-4o-mini")
    CatalogModel.objects.filter(pk=model.pk).update(strategy="priority")
    for _ in range(10):
        client.chat.completions.create(model="team/model", messages=HELLO)
    assert set(keys_used(spare)) == {"sk-first-000000001"}


def test_lowest_latency_prefers_the_faster_credential(client, hub, spare, transactional_db):
    shared = provider("shared", spare.base_url, "sk-slow-0000000001", "sk-fast-0000000001")
    model = add_model(shared, "team/model", "gpt-4o-mini")
    CatalogModel.objects.filter(pk=model.pk).update(strategy="lowest_latency")
    slow, fast = Credential.objects.order_by("name")
    route_health.store().write(slow.pk, route_health.Health(latency_ms=900))
    route_health.store().write(fast.pk, route_health.Health(latency_ms=90))
    for _ in range(5):
        client.chat.completions.create(model="team/model", messages=HELLO)
    assert set(keys_used(spare)) == {"sk-fast-0000000001"}


def open_streams(hub, api_key, model, count):
    async def scenario():
        client = openai.AsyncOpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
        streams = []
        for _i in range(count):
            try:
                stream = await client.chat.completions.create(model=model, messages=HELLO, stream=True)
                await stream.__anext__()
                streams.append(stream)
            except openai.APIStatusError as error:
                streams.append(error)
        return client, streams

    return scenario


def test_least_busy_and_concurrency_caps_spread_open_streams(hub, api_key, spare, transactional_db):
    shared = provider(
        "shared",
        spare.base_url,
        ("sk-one-00000000001", {"max_concurrency": 1}),
        ("sk-two-00000000001", {"max_concurrency": 1}),
    )
    model = add_model(shared, "team/slow", "fake-slow")
    CatalogModel.objects.filter(pk=model.pk).update(strategy="least_busy")

    async def scenario():
        client, streams = await open_streams(hub, api_key, "team/slow", 3)()
        for s in streams:
            if not isinstance(s, Exception):
                await s.close()
        await client.close()
        return streams

    streams = asyncio.run(scenario())
    assert sorted(keys_used(spare)) == ["sk-one-00000000001", "sk-two-00000000001"]
    assert isinstance(streams[2], openai.APIStatusError) and streams[2].status_code == 503
    assert streams[2].body["code"] == "routes_busy"


def test_a_requests_per_minute_cap_is_respected(client, hub, spare, transactional_db):
    shared = provider("shared", spare.base_url, ("sk-capped-00000001", {"rpm_limit": 2}))
    add_model(shared, "team/model", "gpt-4o-mini")
    for _ in range(2):
        client.chat.completions.create(model="team/model", messages=HELLO)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="team/model", messages=HELLO)
    assert raised.value.status_code == 503 and len(spare.requests) == 2


def test_the_health_check_probes_every_credential_and_feeds_the_rotation(hub, upstream, spare, transactional_db):
    from hub.tasks import check_credentials

    good = provider("good", spare.base_url, "sk-good-0000000001")
    bad = provider("bad", upstream.base_url, UPSTREAM_KEY)
    add_model(good, "good/model", "gpt-4o-mini")
    add_model(bad, "bad/model", "fake-error-401")
    assert check_credentials.delay().get() == 2
    good_credential, bad_credential = Credential.objects.get(provider=good), Credential.objects.get(provider=bad)
    assert good_credential.last_check_ok and good_credential.last_check_latency_ms is not None
    assert bad_credential.last_check_ok is False and "rejected" in bad_credential.last_check_error
    assert route_health.store().read(bad_credential.pk).cooling(time.time())
    # The credential is fixed: the next probe brings it back at once.
    ModelRoute.objects.filter(provider=bad).update(upstream_name="gpt-4o-mini")
    check_credentials.delay().get()
    assert route_health.store().read(bad_credential.pk).clean


def test_the_admin_tests_a_credential_now_and_shows_why_it_is_out(hub, upstream, transactional_db):
    from django.test import Client

    from accounts.models import User

    bad = provider("bad", upstream.base_url, UPSTREAM_KEY)
    add_model(bad, "bad/model", "fake-error-401")
    credential = Credential.objects.get()
    browser = Client()
    browser.force_login(User.objects.create_superuser("operator", "op@example.com", "pw"))
    response = browser.post(
        "/admin/providers/credential/", {"action": "test_now", "_selected_action": [credential.pk]}, follow=True
    )
    page = response.content.decode()
    assert "failed: The provider &#x27;bad&#x27; rejected the hub&#x27;s credential." in page
    change = browser.get(f"/admin/providers/credential/{credential.pk}/change/").content.decode()
    assert "<b>out</b> for" in change and UPSTREAM_KEY not in change


def test_routes_and_strategy_come_from_hub_config(transactional_db, monkeypatch, tmp_path):
    import io

    from django.core.management import call_command

    config = tmp_path / "hub.yaml"
    config.write_text("""
providers:
  - {name: anthropic, kind: anthropic, first_byte_timeout: 30, credentials: [{name: a, secret_env: K1, weight: 2}]}
  - {name: bedrock, kind: bedrock, options: {region: us-west-2}, credentials: [{name: b, secret_env: K2, priority: 1}]}
models:
  - id: claude-sonnet
    strategy: priority
    fallbacks: [claude-haiku]
    routes:
      - {provider: anthropic, upstream: claude-sonnet-4-5}
      - {provider: bedrock, upstream: us.anthropic.claude-sonnet-4-5-v1:0, priority: 1}
  - {id: claude-haiku, provider: anthropic, upstream: claude-haiku-4-5}
""")
    monkeypatch.setenv("K1", "sk-ant-secret-value-01")
    monkeypatch.setenv("K2", '{"access_key_id": "AKIA", "secret_access_key": "s"}')
    call_command("hub_config", "apply", str(config), stdout=io.StringIO())
    model = CatalogModel.objects.get(public_id="claude-sonnet")
    assert (model.strategy, model.fallbacks) == ("priority", ["claude-haiku"])
    assert [(r.provider.name, r.priority) for r in model.routes.order_by("priority")] == [
        ("anthropic", 0),
        ("bedrock", 1),
    ]
    assert (
        Credential.objects.get(name="a").weight == 2 and Provider.objects.get(name="anthropic").first_byte_timeout == 30
    )
    out = io.StringIO()
    call_command("hub_config", "apply", str(config), stdout=out)
    assert out.getvalue().strip() == "already up to date"


@pytest.mark.skipif(not __import__("django.conf").conf.settings.REDIS_URL, reason="needs REDIS_URL (CI sets it)")
def test_two_processes_share_cooldowns_and_slots_through_redis(transactional_db, settings):
    from types import SimpleNamespace

    route_health.reset()
    one, other = route_health.RedisStore(settings.REDIS_URL), route_health.RedisStore(settings.REDIS_URL)
    route = SimpleNamespace(credential_id=424242, max_concurrency=1, rpm_limit=None)

    async def scenario():
        one.write(424242, route_health.Health(cooldown_until=time.time() + 30, reason="down"))
        seen = (await other.states([424242]))[424242]
        first = await one.acquire(route, "a")
        second = await other.acquire(route, "b")
        await one.release(route, "a")
        third = await other.acquire(route, "c")
        await other.release(route, "c")
        return seen, first, second, third

    seen, first, second, third = asyncio.run(scenario())
    assert seen.cooling(time.time()) and seen.reason == "down"
    assert (first, second, third) == (True, False, True)
    route_health.reset()


def test_a_redis_outage_degrades_routing_instead_of_failing_requests(
    client, hub, spare, transactional_db, settings, caplog
):
    shared = provider("shared", spare.base_url, ("sk-capped-00000001", {"rpm_limit": 1}))
    add_model(shared, "team/model", "gpt-4o-mini")
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    route_health.reset()
    for _ in range(2):  # caps cannot be counted without Redis: fail open
        assert client.chat.completions.create(model="team/model", messages=HELLO).choices
    assert "routing state unavailable" in caplog.text


def test_an_unexpected_failure_is_an_openai_500_and_is_recorded(client, hub, chat_model, monkeypatch):
    from hub import routing

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(routing, "serve", broken)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert raised.value.body["code"] == "internal_error" and "a bug" not in raised.value.response.text
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.status, record.http_status, record.price) == ("server_error", 500, 0)
