"""The response cache (hub/response_cache.py), through the openai SDK against the live hub and the fake OpenAI
upstream, whose recorded requests say how many calls reached it."""

import asyncio
import socket
import time
from decimal import Decimal

import httpx
import openai
import pytest

from accounts.models import ApiKey, Organization
from billing.models import LedgerEntry, UsageRecord
from billing.money import quantize
from tests import factories
from tests.test_embeddings import embedding_model

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def cache_on(organization, seconds=60, **fields):
    Organization.objects.filter(pk=organization.pk).update(response_cache_seconds=seconds, **fields)


def chat(client, **fields):
    fields = {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "temperature": 0, **fields}
    return client.chat.completions.with_raw_response.create(**fields)


def stream_text(raw) -> bytes:
    return b"".join(raw.http_response.iter_bytes())


def records():
    return list(UsageRecord.objects.order_by("id"))


@pytest.fixture
def cached(organization):
    cache_on(organization)
    return organization


def test_off_by_default_every_request_goes_upstream(client, upstream, organization):
    first, again = chat(client), chat(client)
    assert len(upstream.requests) == 2
    assert "x-hub-cache" not in first.headers and "x-hub-cache" not in again.headers


def test_a_chat_answer_is_served_again_without_an_upstream_call(client, hub, upstream, cached):
    miss, hit = chat(client), chat(client)
    assert (miss.headers["x-hub-cache"], hit.headers["x-hub-cache"]) == ("miss", "hit")
    assert len(upstream.requests) == 1
    assert hit.http_response.content == miss.http_response.content
    assert hit.parse().choices[0].message.content == miss.parse().choices[0].message.content
    assert hit.headers["x-request-id"] != miss.headers["x-request-id"]
    assert hit.headers["x-hub-route"] == miss.headers["x-hub-route"]
    hub.drain()
    first, second = records()
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.status == UsageRecord.Status.OK and second.request_id == hit.headers["x-request-id"]
    assert second.prompt_tokens == first.prompt_tokens and second.completion_tokens == first.completion_tokens
    assert second.cost == 0 and second.price == 0  # HUB_RESPONSE_CACHE_PRICE_SHARE's default
    assert second.provider_id is None and second.served_model == first.served_model
    # One charge: the answer's. A free hit writes no ledger entry.
    assert [e.amount for e in LedgerEntry.objects.filter(kind="usage")] == [-first.price]


def test_a_stream_is_replayed_with_the_same_events(client, hub, upstream, cached):
    with client.chat.completions.with_streaming_response.create(
        model="openai/gpt-4o-mini", messages=MESSAGES, temperature=0, stream=True
    ) as miss:
        assert miss.headers["x-hub-cache"] == "miss"
        sent = stream_text(miss)
    with client.chat.completions.with_streaming_response.create(
        model="openai/gpt-4o-mini", messages=MESSAGES, temperature=0, stream=True
    ) as hit:
        assert hit.headers["x-hub-cache"] == "hit" and hit.headers["content-type"].startswith("text/event-stream")
        again = stream_text(hit)
    assert again == sent and sent.endswith(b"data: [DONE]\n\n")
    assert len(upstream.requests) == 1
    # The SDK reads the replay as a stream.
    chunks = list(
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES, temperature=0, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Hello")
    assert len(upstream.requests) == 1
    # A whole answer is kept apart from a stream's.
    assert chat(client).headers["x-hub-cache"] == "miss" and len(upstream.requests) == 2
    hub.drain()
    assert [r.cache_hit for r in records()] == [False, True, True, False]
    assert [r.stream for r in records()] == [True, True, True, False]


def test_embeddings_are_served_again(client, hub, upstream, openai_provider, cached):
    embedding_model(openai_provider)
    miss = client.embeddings.with_raw_response.create(model="openai/embed", input=["one", "two"])
    hit = client.embeddings.with_raw_response.create(model="openai/embed", input=["one", "two"])
    other = client.embeddings.with_raw_response.create(model="openai/embed", input=["one", "three"])
    assert [r.headers["x-hub-cache"] for r in (miss, hit, other)] == ["miss", "hit", "miss"]
    assert hit.parse().data[0].embedding == miss.parse().data[0].embedding
    assert len(upstream.requests) == 2
    hub.drain()
    assert [r.cache_hit for r in records()] == [False, True, False]


def test_organisations_never_share_entries(client, hub, upstream, cached, chat_model):
    globex, _, raw = factories.organization_with_key("Globex", credit="10")
    cache_on(globex)
    other = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=raw, max_retries=0)
    assert chat(client).headers["x-hub-cache"] == "miss"
    assert chat(other).headers["x-hub-cache"] == "miss"
    assert chat(other).headers["x-hub-cache"] == "hit"
    assert len(upstream.requests) == 2
    hub.drain()
    assert UsageRecord.objects.filter(organization=globex, cache_hit=True).count() == 1


def test_a_key_sets_its_own_ttl_and_0_turns_it_off(hub, upstream, organization, chat_model):
    _, own = factories.api_key(organization, "own", limits={"response_cache_seconds": 60})
    _, off = factories.api_key(organization, "off", limits={"response_cache_seconds": 0})
    cache_on(organization)
    with_own = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=own, max_retries=0)
    with_off = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=off, max_retries=0)
    assert chat(with_own).headers["x-hub-cache"] == "miss"
    assert chat(with_own).headers["x-hub-cache"] == "hit"
    assert "x-hub-cache" not in chat(with_off).headers
    assert len(upstream.requests) == 2
    assert ApiKey.objects.get(name="own").response_cache_seconds == 60


def test_an_entry_expires_after_its_ttl(client, upstream, organization):
    cache_on(organization, seconds=1)
    assert chat(client).headers["x-hub-cache"] == "miss"
    assert chat(client).headers["x-hub-cache"] == "hit"
    time.sleep(1.2)
    assert chat(client).headers["x-hub-cache"] == "miss"
    assert len(upstream.requests) == 2


def test_no_store_neither_reads_nor_stores_and_no_cache_stores_without_reading(client, upstream, cached):
    assert "x-hub-cache" not in chat(client, extra_headers={"cache-control": "no-store"}).headers
    assert chat(client, extra_headers={"cache-control": "no-cache"}).headers["x-hub-cache"] == "miss"
    assert chat(client, extra_headers={"cache-control": "no-cache"}).headers["x-hub-cache"] == "miss"
    assert len(upstream.requests) == 3
    assert chat(client).headers["x-hub-cache"] == "hit"  # what no-cache stored
    assert "x-hub-cache" not in chat(client, extra_headers={"cache-control": "max-age=0, no-store"}).headers
    assert len(upstream.requests) == 4


def test_the_namespace_header_partitions_entries(client, upstream, cached):
    def ask(namespace):
        return chat(client, extra_headers={"x-hub-cache-namespace": namespace}).headers["x-hub-cache"]

    assert [ask("tenant-a"), ask("tenant-b"), ask("tenant-a"), ask("tenant-b")] == ["miss", "miss", "hit", "hit"]
    assert chat(client).headers["x-hub-cache"] == "miss"  # no namespace is a namespace of its own
    assert len(upstream.requests) == 3


def test_fields_that_change_the_answer_are_in_the_key_and_user_is_not(client, upstream, cached):
    assert chat(client, user="alice").headers["x-hub-cache"] == "miss"
    assert chat(client, user="bob").headers["x-hub-cache"] == "hit"
    assert chat(client, max_tokens=3).headers["x-hub-cache"] == "miss"
    assert chat(client, messages=[{"role": "user", "content": "Another question"}]).headers["x-hub-cache"] == "miss"
    assert chat(client, model="gpt-4o-mini").headers["x-hub-cache"] == "hit"  # the alias: the same model
    assert len(upstream.requests) == 3


def test_sampled_answers_are_cached_only_if_the_organisation_allows_it(client, upstream, cached):
    for fields in ({"temperature": 0.7}, {"temperature": openai.NOT_GIVEN}):
        assert "x-hub-cache" not in chat(client, **fields).headers
        assert "x-hub-cache" not in chat(client, **fields).headers
    assert len(upstream.requests) == 4
    Organization.objects.filter(pk=cached.pk).update(response_cache_sampled=True)
    from hub import auth

    auth.forget_all()  # the key's settings are cached for HUB_AUTH_CACHE_SECONDS
    assert chat(client, temperature=0.7).headers["x-hub-cache"] == "miss"
    assert chat(client, temperature=0.7).headers["x-hub-cache"] == "hit"
    assert chat(client, temperature=openai.NOT_GIVEN).headers["x-hub-cache"] == "miss"
    assert len(upstream.requests) == 6


def test_a_hit_is_charged_its_share_of_the_price_exactly(client, hub, upstream, cached, settings):
    settings.HUB_RESPONSE_CACHE_PRICE_SHARE = Decimal("0.3")
    chat(client), chat(client), chat(client)
    hub.drain()
    miss, *hits = records()
    assert [r.cache_hit for r in (miss, *hits)] == [False, True, True]
    assert miss.price > 0
    for hit in hits:
        assert hit.price == quantize(miss.price * Decimal("0.3")) and hit.cost == 0
    charges = sorted(-e.amount for e in LedgerEntry.objects.filter(kind="usage"))
    assert charges == sorted([miss.price, *(h.price for h in hits)])
    assert sum(charges) == miss.price + 2 * quantize(miss.price * Decimal("0.3"))


def test_a_failed_answer_is_not_kept(client, openai_provider, upstream, cached):
    factories.add_model(openai_provider, "openai/broken", "fake-error-500")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            chat(client, model="openai/broken")
    assert len(upstream.requests) == 2


def test_a_burst_of_one_request_makes_one_upstream_call(async_client, hub, openai_provider, upstream, cached):
    factories.add_model(openai_provider, "openai/slow", "fake-slow")  # a stream of 200 events, 20 ms apart

    async def one():
        async with async_client.chat.completions.with_streaming_response.create(
            model="openai/slow", messages=MESSAGES, temperature=0, stream=True
        ) as response:
            return response.headers["x-hub-cache"], b"".join(
                [part async for part in response.http_response.aiter_bytes()]
            )

    async def burst():
        return await asyncio.gather(*(one() for _ in range(20)))

    answers = asyncio.run(burst())
    assert len(upstream.requests) == 1
    assert sorted(header for header, _ in answers) == ["hit"] * 19 + ["miss"]
    assert len({body for _, body in answers}) == 1
    hub.drain()
    assert UsageRecord.objects.filter(cache_hit=True).count() == 19


def test_a_burst_of_whole_answers_makes_one_upstream_call(async_client, hub, upstream, cached):
    async def burst():
        return await asyncio.gather(
            *(
                async_client.chat.completions.with_raw_response.create(
                    model="openai/gpt-4o-mini", messages=MESSAGES, temperature=0
                )
                for _ in range(20)
            )
        )

    answers = asyncio.run(burst())
    assert len(upstream.requests) == 1
    assert sorted(a.headers["x-hub-cache"] for a in answers) == ["hit"] * 19 + ["miss"]


@pytest.mark.parametrize("namespace", ["n" * 129, "x" * 20_000, "caf\u00e9", "tab\there"])
def test_a_bad_namespace_is_a_400(client, hub, api_key, cached, namespace):
    response = httpx.post(
        f"{hub.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {api_key}", "x-hub-cache-namespace": namespace.encode("latin-1")},
        json={"model": "openai/gpt-4o-mini", "messages": MESSAGES, "temperature": 0},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_cache_namespace"


def test_a_nul_byte_in_the_namespace_is_refused_not_a_500(hub, api_key, cached, chat_model):
    body = b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": 0}'
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        + f"authorization: Bearer {api_key}\r\n".encode()
        + b"x-hub-cache-namespace: a\x00b\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status == 400


def test_the_request_log_and_the_metrics_show_hits(client, hub, upstream, cached):
    from django.test import Client
    from prometheus_client import REGISTRY

    from accounts.models import Membership
    from tests.actors import make_user

    def counted(result):
        labels = {"model": "openai/gpt-4o-mini", "result": result}
        return REGISTRY.get_sample_value("hub_response_cache_total", labels) or 0

    before = counted("hit"), counted("miss")
    chat(client), chat(client), chat(client)
    assert (counted("hit") - before[0], counted("miss") - before[1]) == (2, 1)
    hub.drain()
    viewer = make_user("viewer")
    Membership.objects.create(user=viewer, organization=cached, role="viewer")
    browser = Client()
    browser.force_login(viewer)
    assert browser.get("/dashboard/requests/").content.decode().count("Cache hit") == 2
    hit = UsageRecord.objects.filter(cache_hit=True).first()
    detail = browser.get(f"/dashboard/requests/{hit.pk}/").content.decode()
    assert "answered from the response cache" in detail


def test_without_redis_a_process_keeps_at_most_its_byte_budget_oldest_out_first(settings):
    from hub.response_cache import LocalStore

    settings.HUB_RESPONSE_CACHE_LOCAL_BYTES = 100
    store = LocalStore()

    async def fill():
        for name in "abcd":
            await store.set(name, name.encode() * 40, 60)
        await store.set("huge", b"x" * 101, 60)  # larger than the whole budget: not kept
        return [await store.get(name) for name in ("a", "b", "c", "d", "huge")]

    assert asyncio.run(fill()) == [None, None, b"c" * 40, b"d" * 40, None]
    assert store.size == 80


def test_a_redis_outage_turns_the_cache_off_without_failing(caplog):
    from hub.response_cache import FailOpen, RedisStore

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    store = FailOpen(RedisStore(f"redis://127.0.0.1:{port}/0"))

    async def use():
        return await store.get("k"), await store.claim("k"), await store.set("k", b"v", 1), await store.wait("k", 1)

    assert asyncio.run(use()) == (None, False, None, None)
    assert "the response cache unavailable" in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize("seconds, status", [(600, 201), (0, 201), (None, 201), (-1, 400), (30 * 86400 + 1, 400)])
def test_the_management_api_sets_a_keys_ttl_and_rotation_keeps_it(world, seconds, status):
    from accounts.services import hash_api_key
    from hub import auth
    from tests.actors import as_user

    keys = "/manage/v1/orgs/acme/keys/"
    admin = as_user(world.admin)
    created = admin.post(keys, {"name": "cached", "response_cache_seconds": seconds}, format="json")
    assert created.status_code == status, created.content
    if status != 201:
        assert created.json()["error"]["param"] == "response_cache_seconds"
        return
    assert created.json()["response_cache_seconds"] == seconds
    assert auth._load(hash_api_key(created.json()["key"])).cache_seconds == (seconds or 0)
    rotated = admin.post(f"{keys}{created.json()['id']}/rotate").json()
    assert rotated["response_cache_seconds"] == seconds


@pytest.mark.django_db
def test_the_admin_edits_the_settings_of_an_organisation_and_a_key(world):
    from django.test import Client

    from accounts.models import User

    operator = Client()
    operator.force_login(User.objects.create_superuser("op", "op@example.com", "pw"))
    page = operator.get(f"/admin/accounts/organization/{world.acme.pk}/change/").content.decode()
    assert 'name="response_cache_seconds"' in page and 'name="response_cache_sampled"' in page
    page = operator.get(f"/admin/accounts/apikey/{world.acme_key.pk}/change/").content.decode()
    assert 'name="response_cache_seconds"' in page


def test_when_the_first_of_a_burst_fails_the_others_go_upstream_themselves(
    async_client, openai_provider, upstream, cached
):
    factories.add_model(openai_provider, "openai/broken", "fake-error-500")

    async def one():
        try:
            await async_client.chat.completions.create(model="openai/broken", messages=MESSAGES, temperature=0)
        except openai.InternalServerError as error:
            return error.status_code

    async def burst():
        return await asyncio.gather(*(one() for _ in range(5)))

    started = time.monotonic()
    assert asyncio.run(burst()) == [502] * 5
    assert len(upstream.requests) == 5  # none was kept, none waited out HUB_RESPONSE_CACHE_WAIT_SECONDS
    assert time.monotonic() - started < 10
