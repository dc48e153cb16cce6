"""Streams that do not end well: the client leaves, the upstream breaks. Each is billed by rule."""

import time

import httpx
import openai
import pytest

from billing.models import LedgerEntry, UsageRecord
from tests.factories import add_model

PRICE_IN, PRICE_OUT = 2, 4


def wait_for_record(hub, timeout=5.0) -> UsageRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hub.drain()
        record = UsageRecord.objects.first()
        if record is not None:
            return record
        time.sleep(0.05)
    raise AssertionError("no usage record was written")


def assert_charged_for(record: UsageRecord):
    from decimal import Decimal

    expected = (Decimal(record.prompt_tokens) * PRICE_IN + Decimal(record.completion_tokens) * PRICE_OUT) / 10**6
    assert record.price == expected > 0
    assert LedgerEntry.objects.get(kind="usage").amount == -record.price


def test_a_client_that_disconnects_cancels_the_upstream_and_pays_for_what_it_got(
    hub, api_key, openai_provider, upstream
):
    add_model(openai_provider, "openai/slow", "fake-slow")
    body = {"model": "openai/slow", "messages": [{"role": "user", "content": "long story"}], "stream": True}
    with httpx.stream(
        "POST", f"{hub.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {api_key}"}, timeout=10
    ) as response:
        assert response.status_code == 200
        received = 0
        for line in response.iter_lines():
            received += line.startswith("data:")
            if received == 6:
                break
    assert upstream.wait_for_disconnect(timeout=5), "the hub must cancel the upstream request"
    record = wait_for_record(hub)
    assert record.status == "cancelled" and record.stream
    # Only what was produced: a handful of words, not the 200-word answer, estimated by characters.
    assert record.usage_estimated and 1 <= record.completion_tokens < 60
    assert_charged_for(record)


def test_a_stream_cut_by_the_upstream_ends_in_an_error_event_and_bills_what_arrived(
    hub, api_key, openai_provider, upstream
):
    add_model(openai_provider, "openai/cut", "fake-cut")
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(
            model="openai/cut", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            received.append(chunk)
    assert "cut off" in raised.value.message
    assert len(received) == 4  # the role chunk and three words
    record = wait_for_record(hub)
    assert record.status == "upstream_error" and record.usage_estimated
    assert_charged_for(record)


def test_a_malformed_stream_event_ends_in_an_error_event(hub, api_key, openai_provider, upstream):
    add_model(openai_provider, "openai/malformed", "fake-malformed")
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    with pytest.raises(openai.APIError) as raised:
        list(
            client.chat.completions.create(
                model="openai/malformed", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    assert "malformed" in raised.value.message
    assert wait_for_record(hub).status == "upstream_error"


def test_a_stream_without_reported_usage_is_estimated(hub, api_key, openai_provider, upstream):
    add_model(openai_provider, "openai/quiet", "fake-no-usage")
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="openai/quiet",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        if c.choices
    )
    assert text == "Hello! You said: hi"
    record = wait_for_record(hub)
    assert record.status == "ok" and record.usage_estimated
    assert record.completion_tokens == -(-len(text) // 4)
    assert_charged_for(record)


def test_a_client_that_gives_up_before_the_answer_is_recorded_free(hub, api_key, openai_provider, upstream):
    add_model(openai_provider, "openai/hang", "fake-hang")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{hub.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {api_key}"},
            json={"model": "openai/hang", "messages": [{"role": "user", "content": "hi"}]},
            timeout=0.5,
        )
    assert upstream.wait_for_disconnect(timeout=5), "the hub must cancel the upstream request"
    record = wait_for_record(hub)
    assert (record.status, record.http_status, record.price) == ("cancelled", 499, 0)


def test_open_streams_hold_no_thread_each(hub, api_key, openai_provider, upstream):
    import asyncio
    import threading

    add_model(openai_provider, "openai/slow", "fake-slow")
    client = openai.AsyncOpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    before = threading.active_count()

    async def scenario():
        streams = await asyncio.gather(
            *[
                client.chat.completions.create(
                    model="openai/slow", messages=[{"role": "user", "content": f"s{i}"}], stream=True
                )
                for i in range(60)
            ]
        )
        for stream in streams:
            await stream.__anext__()  # every stream is open and flowing
        during = threading.active_count()
        for stream in streams:
            await stream.close()
        await client.close()
        return during

    during = asyncio.run(scenario())
    assert during - before < 10, f"{during - before} threads for 60 open streams"
