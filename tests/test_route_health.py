"""When routes go out and come back: what a refused client is told (a provider's rate limit is a
429, an outage a 503, each with the real time until a route returns) and how it is stored and
logged; a failed probe after a cooldown; failures counted once however many stores count them;
fallbacks that get their turn."""

import asyncio
import logging
import time

import openai
import pytest
from django.conf import settings as django_settings

from billing.models import UsageRecord
from hub import route_health
from providers.models import CatalogModel, Credential
from tests.conftest import UPSTREAM_KEY, add_model
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


def test_a_provider_rate_limit_on_every_route_is_a_429_with_its_retry_after(client, hub, upstream, only_route,
                                                                          caplog):
    only_route("fake-error-429")  # the provider says retry-after: 7
    assert refusal(client).status_code == 429  # its own answer, passed on
    caplog.clear()
    refused = refusal(client)
    assert len(upstream.requests) == 1, "the route sits out its retry-after"
    assert (refused.status_code, refused.body["code"], refused.body["type"]) == (429, "rate_limit_exceeded",
                                                                              "rate_limit_error")
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
    assert (refused.status_code, refused.body["code"], refused.body["type"]) == (503, "no_route_available",
                                                                              "server_error")
    assert 58 <= int(refused.response.headers["retry-after"]) <= 60
    hub.drain()
    record = UsageRecord.objects.order_by("created_at").last()
    assert (record.status, record.http_status) == ("unavailable", 503)
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.name, r.levelname) for r in lines] == [("hub.relay", "ERROR")], "logged once, by the hub"


def test_routes_at_their_cap_are_stored_as_unavailable_not_as_the_clients_error(client, hub, spare,
                                                                               transactional_db):
    add_model(provider("shared", spare.base_url, ("sk-capped-00000001", {"rpm_limit": 1})), "team/model",
              "gpt-4o-mini")
    client.chat.completions.create(model="team/model", messages=HELLO)
    refused = refusal(client)
    assert (refused.status_code, refused.body["code"], refused.response.headers["retry-after"]) == (
        503, "routes_busy", "1")
    hub.drain()
    assert UsageRecord.objects.order_by("created_at").last().status == "unavailable"


def test_a_failed_probe_sends_the_credential_straight_back_out_for_twice_as_long(client, hub, upstream, spare,
                                                                                failing_then_ok, settings):
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


def test_a_fallback_gets_its_turn_when_the_models_own_routes_use_up_the_attempts(client, hub, upstream, spare,
                                                                                transactional_db):
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
