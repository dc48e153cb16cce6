"""A tenant's chat call through the hub with the official openai SDK, metered and charged."""

import asyncio
from decimal import Decimal

import pytest

from billing.models import CreditAccount, LedgerEntry, UsageRecord
from tests.conftest import UPSTREAM_KEY

PRICE_IN, PRICE_OUT = Decimal(2), Decimal(4)  # per million tokens, see factories.DEFAULT_RATE


def expected_price(prompt: int, completion: int) -> Decimal:
    return (Decimal(prompt) * PRICE_IN + Decimal(completion) * PRICE_OUT) / Decimal(1_000_000)


def only_record() -> UsageRecord:
    (record,) = UsageRecord.objects.all()
    return record


def test_it_relays_a_chat_completion_and_charges_it(client, hub, upstream, organization, api_key):
    reply = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert reply.choices[0].message.content == "Hello! You said: Say hello"
    assert reply.choices[0].finish_reason == "stop"
    hub.drain()

    (sent,) = upstream.requests
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert api_key not in sent.raw.decode() + repr(sent.headers)

    record = only_record()
    assert (record.prompt_tokens, record.completion_tokens) == (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    )
    assert record.status == "ok" and not record.usage_estimated and not record.stream
    assert record.price == expected_price(reply.usage.prompt_tokens, reply.usage.completion_tokens)
    assert record.cost == record.price / 2
    assert record.model.public_id == "openai/gpt-4o-mini" and record.credential.name == "main"
    entry = LedgerEntry.objects.get(kind="usage")
    assert entry.amount == -record.price and entry.usage_record == record
    assert CreditAccount.objects.get(organization=organization).balance == Decimal(10) - record.price


def test_it_accepts_the_bare_alias_and_the_api_path(hub, api_key, chat_model, upstream):
    import openai

    api_client = openai.OpenAI(base_url=f"{hub.url}/api", api_key=api_key, max_retries=0)
    reply = api_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Hello! You said: hi"


def test_it_accepts_the_key_in_x_api_key(hub, api_key, chat_model, upstream):
    import httpx

    response = httpx.post(
        f"{hub.url}/v1/chat/completions",
        headers={"x-api-key": api_key},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"].startswith("req_")


def test_a_stream_is_metered_without_showing_usage_to_a_client_that_did_not_ask(client, hub, upstream):
    chunks = list(
        client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "one two three"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! You said: one two three"
    assert all(c.choices for c in chunks), "the usage chunk must be stripped"
    (sent,) = upstream.requests
    assert sent.json["stream_options"] == {"include_usage": True}
    hub.drain()
    record = only_record()
    assert record.stream and record.status == "ok" and not record.usage_estimated
    # The fake's rule: 3 words + 3 per message in; 6 words out.
    assert (record.prompt_tokens, record.completion_tokens) == (6, 6)
    assert record.price == expected_price(6, 6)


def test_a_stream_shows_usage_to_a_client_that_asked_and_bills_the_same(client, hub, upstream):
    chunks = list(
        client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    hub.drain()
    record = only_record()
    assert (record.prompt_tokens, record.completion_tokens) == (usage.prompt_tokens, usage.completion_tokens)


def test_the_async_client_works_streaming_and_not(async_client, hub, upstream):
    async def scenario():
        reply = await async_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "async"}]
        )
        stream = await async_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "async stream"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await async_client.close()
        return reply, text

    reply, text = asyncio.run(scenario())
    assert reply.choices[0].message.content == "Hello! You said: async"
    assert text == "Hello! You said: async stream"
    hub.drain()
    assert UsageRecord.objects.filter(status="ok").count() == 2


def test_many_concurrent_requests_are_each_recorded_once(async_client, hub, upstream, organization):
    async def scenario():
        calls = [
            async_client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}], stream=bool(i % 2)
            )
            for i in range(40)
        ]
        results = await asyncio.gather(*calls)
        for r in results:
            if not hasattr(r, "choices"):
                [c async for c in r]
        await async_client.close()

    asyncio.run(scenario())
    hub.drain()
    assert UsageRecord.objects.count() == 40
    total = sum(r.price for r in UsageRecord.objects.all())
    assert CreditAccount.objects.get(organization=organization).balance == Decimal(10) - total


def test_max_tokens_cut_off_is_passed_and_billed(client, hub, upstream):
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "a b c d e f"}], max_tokens=2
    )
    assert reply.choices[0].finish_reason == "length"
    sent = upstream.requests[0].json
    assert sent["max_completion_tokens"] == 2 and "max_tokens" not in sent  # OpenAI's name for it, honoured by all
    hub.drain()
    assert only_record().completion_tokens == 2


def test_tool_calls_stream_through_intact(hub, api_key, openai_provider, upstream):
    import openai

    from tests.factories import add_model
    from tests.fakes.openai_upstream import TOOL_ARGUMENTS

    add_model(openai_provider, "openai/tool", "fake-tool")
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    chunks = list(
        client.chat.completions.create(
            model="openai/tool", messages=[{"role": "user", "content": "weather?"}], tools=tools, stream=True
        )
    )
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert arguments == TOOL_ARGUMENTS
    assert upstream.requests[0].json["tools"] == tools


def test_models_lists_ids_and_aliases(client):
    ids = [m.id for m in client.models.list()]
    assert "openai/gpt-4o-mini" in ids and "gpt-4o-mini" in ids
    assert client.models.retrieve("openai/gpt-4o-mini").owned_by == "openai"


@pytest.mark.parametrize("mode", ["internal"])
def test_internal_billing_mode_tracks_cost_without_credit(
    hub, api_key, chat_model, upstream, organization, settings, mode
):
    import openai

    from billing.services import credit_grant

    credit_grant(organization=organization, amount=Decimal("-10"), kind="adjustment", description="empty it")
    settings.HUB_BILLING_MODE = mode
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "free"}])
    hub.drain()
    record = only_record()
    assert record.price > 0 and record.cost > 0
    assert not LedgerEntry.objects.filter(kind="usage").exists()
    assert CreditAccount.objects.get(organization=organization).balance == 0
