"""One hostile value never stops metering.

A client's model name with a NUL or a lone surrogate, a provider's usage with a
count that is a string, 1e999, negative or beyond any column: each used to
fail its batch's write on every retry, and with it every record of the worker
behind it. Each is now answered, recorded (cleaned, or billed by estimate and
marked so), and the traffic after it is recorded too.
"""

import json
from decimal import Decimal

import httpx
import pytest

from billing.models import CreditAccount, CreditHold, LedgerEntry, UsageRecord
from billing.services import hold_place
from hub.metering import _write
from tests.factories import usage_event

PRICE_IN, PRICE_OUT = Decimal(2), Decimal(4)  # per million tokens (tests/factories.py's DEFAULT_RATE)


def ask(client, n: int = 20, **kwargs) -> list[str]:
    """n ordinary requests through the SDK; their request ids."""
    ids = []
    for i in range(n):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"hello {i}"}], **kwargs
        )
        raw.parse()
        ids.append(raw.headers["x-request-id"])
    return ids


def stream_raw(hub, client, **extra) -> tuple[list[str], str]:
    """A streamed chat read over plain HTTP: its `data:` lines and its request id."""
    with httpx.stream(
        "POST",
        f"{hub.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {client.api_key}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}], "stream": True, **extra},
    ) as response:
        return [line for line in response.iter_lines() if line.startswith("data:")], response.headers["x-request-id"]


def assert_all_recorded(ids: list[str]) -> None:
    records = {r.request_id: r for r in UsageRecord.objects.filter(request_id__in=ids)}
    assert set(records) == set(ids), f"{len(ids) - len(records)} of {len(ids)} requests have no usage record"
    for record in records.values():
        assert record.status == "ok" and record.price > 0
        assert LedgerEntry.objects.filter(usage_record=record).get().amount == -record.price


def assert_ledger_matches(organization) -> None:
    account = CreditAccount.objects.get(organization=organization)
    assert account.held == 0 and not CreditHold.objects.exists()
    charged = sum(UsageRecord.objects.filter(organization=organization).values_list("price", flat=True))
    assert account.balance == Decimal(10) - charged


@pytest.mark.parametrize("name", ["rel/\u0000", "rel/\ud800", "\udfff" * 300], ids=["nul", "surrogate", "long"])
def test_a_model_name_the_database_cannot_store_is_refused_and_metering_goes_on(
    hub, api_key, client, organization, name
):
    # ensure_ascii: the JSON carries the escapes \u0000 and \ud800, as a hostile client sends them.
    poison = httpx.post(
        f"{hub.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {api_key}"},
        content=json.dumps({"model": name, "messages": [{"role": "user", "content": "hi"}]}),
    )
    assert 400 <= poison.status_code < 500
    ids = ask(client)
    hub.drain()
    assert_all_recorded(ids)
    refusal = UsageRecord.objects.get(request_id=poison.headers["x-request-id"])
    assert refusal.status == "client_error" and refusal.price == 0
    assert "\x00" not in refusal.model_name
    refusal.model_name.encode("utf-8")  # no lone surrogate
    if "\x00" in name:
        assert "\ufffd" in refusal.model_name  # kept, cleaned; a surrogate is refused with the body (hub/views.py)
    assert_ledger_matches(organization)


HOSTILE_USAGE = {
    "over_int32": '{"prompt_tokens": 2147483648, "completion_tokens": 3, "total_tokens": 2147483651}',
    "infinite": '{"prompt_tokens": 1e999, "completion_tokens": 3}',
    "negative": '{"prompt_tokens": -5, "completion_tokens": -3, "total_tokens": -8}',
    "string": '{"prompt_tokens": "abc", "completion_tokens": 3}',
    "fraction": '{"prompt_tokens": 7.5, "completion_tokens": 3}',
    "cached_negative": '{"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": -1}}',
    "details_not_an_object": '{"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": "abc"}',
    "boolean": '{"prompt_tokens": true, "completion_tokens": 3}',
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("reported", HOSTILE_USAGE.values(), ids=HOSTILE_USAGE.keys())
def test_a_provider_that_miscounts_is_billed_by_estimate_and_metering_goes_on(
    hub, client, upstream, organization, reported, stream
):
    upstream.reported_usage = reported
    messages = [{"role": "user", "content": "count this for me please"}]
    if stream:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(raw.parse())  # a reset connection would raise here
        shown = chunks[-1].usage
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Hello!")
    else:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
        shown = raw.parse().usage
    poisoned = raw.headers["x-request-id"]
    upstream.reported_usage = None
    ids = ask(client, 5)
    hub.drain()
    assert_all_recorded(ids)
    record = UsageRecord.objects.get(request_id=poisoned)
    # Billed, never free and never negative: by the hub's estimate, and the record says so and why.
    assert record.status == "ok" and record.usage_estimated
    assert "invalid usage" in record.error and "billed by estimate" in record.error
    assert 0 < record.prompt_tokens < 100 and 0 < record.completion_tokens < 100
    assert record.price == (record.prompt_tokens * PRICE_IN + record.completion_tokens * PRICE_OUT) / 10**6 > 0
    # The client is shown what it is billed, not the provider's numbers.
    assert (shown.prompt_tokens, shown.completion_tokens) == (record.prompt_tokens, record.completion_tokens)
    assert not UsageRecord.objects.filter(request_id__in=ids, usage_estimated=True).exists()
    assert_ledger_matches(organization)


def test_a_stream_chunk_of_the_wrong_shape_ends_in_an_error_event_and_a_record(hub, client, upstream, organization):
    # Valid JSON, but "choices" is not a list of objects: the relay used to raise and reset the connection.
    upstream.reported_usage = '{"prompt_tokens": 1}, "choices": "abc"'
    events, request_id = stream_raw(hub, client, stream_options={"include_usage": True})
    error = json.loads(events[-1][5:])["error"]
    assert error["code"] == "upstream_invalid_response" and error["type"]
    upstream.reported_usage = None
    ids = ask(client, 3)
    hub.drain()
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.status == "upstream_error" and record.usage_estimated and record.price > 0
    assert_all_recorded(ids)
    assert_ledger_matches(organization)


def test_an_adapter_bug_mid_stream_ends_in_an_error_event_and_a_record(hub, client, organization, monkeypatch):
    from providers.adapters.openai_compat import OpenAIStream

    original = OpenAIStream._on_event

    def broken(self, event):
        if self._chars:
            raise RuntimeError("a bug in the adapter")
        return original(self, event)

    monkeypatch.setattr(OpenAIStream, "_on_event", broken)
    events, request_id = stream_raw(hub, client)
    assert json.loads(events[-1][5:])["error"]["code"] == "internal_error"
    monkeypatch.undo()
    ids = ask(client, 3)
    hub.drain()
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.status == "server_error" and record.usage_estimated and record.price > 0
    assert_all_recorded(ids)
    assert_ledger_matches(organization)


# ---------------------------------------------------------------- the meter's batches


def event(org_id, request_id, price="0.01", **fields):
    fields = {"prompt_tokens": 1, "completion_tokens": 1, **fields}
    return usage_event(organization_id=org_id, request_id=request_id, price=price, **fields)


def test_every_text_is_cleaned_and_cut_to_its_column(organization):
    _write(
        [
            event(
                organization.pk,
                "req_dirty\x00",
                model_name="a\x00b\ud800" + "x" * 500,
                endpoint="e\udfff" * 80,
                error="boom\x00" * 100,
                image_tier="\ud800" * 50,
                unit="tokens\x00",
                latency_ms=-4,
                first_token_ms=2**40,
                prompt_tokens=2**40,
                http_status=10**6,
            )
        ]
    )
    record = UsageRecord.objects.get()
    assert record.request_id == "req_dirty\ufffd"
    assert record.model_name.startswith("a\ufffdb\ufffdxx") and len(record.model_name) == 200
    assert len(record.endpoint) == 50 and len(record.error) == 300 and len(record.image_tier) == 40
    assert record.latency_ms == 0 and record.first_token_ms == 2**31 - 1 and record.total_tokens <= 2**31 - 1
    assert LedgerEntry.objects.get(kind="usage").description.startswith("e\ufffd")


def test_a_record_the_database_refuses_is_set_aside_and_the_rest_written(
    organization, monkeypatch, settings, tmp_path, caplog
):
    from billing import usage

    settings.HUB_METERING_DEAD_LETTER = str(tmp_path / "dead.jsonl")
    original = usage.record_row

    def refuse(e):
        if e.request_id == "req_poison":
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        return original(e)

    monkeypatch.setattr(usage, "record_row", refuse)
    batch = [event(organization.pk, f"req_{i}") for i in range(7)]
    batch.insert(3, event(organization.pk, "req_poison", model_name="rel/\x00\ud800"))
    balances = _write(batch)
    assert UsageRecord.objects.count() == 7 and not UsageRecord.objects.filter(request_id="req_poison").exists()
    assert balances[organization.pk] == Decimal("9.93")
    assert "req_poison" in caplog.text and any(r.levelname == "ERROR" for r in caplog.records)
    [line] = (tmp_path / "dead.jsonl").read_text(encoding="ascii").splitlines()
    dead = json.loads(line)
    assert dead["request_id"] == "req_poison" and dead["event"]["model_name"] == "rel/\x00\ud800"
    assert "NUL" in dead["reason"]


def test_a_set_aside_record_does_not_keep_its_credit_held(organization, monkeypatch, settings, tmp_path):
    from billing import usage

    settings.HUB_METERING_DEAD_LETTER = str(tmp_path / "dead.jsonl")
    assert (
        hold_place(organization_id=organization.pk, request_id="lease:test:1", amount=Decimal(1), ttl_seconds=3600)
        is None
    )
    monkeypatch.setattr(usage, "record_row", lambda e: (_ for _ in ()).throw(OverflowError("out of range")))
    _write([event(organization.pk, "req_held", lease="lease:test:1")], ["lease:test:1"])
    account = CreditAccount.objects.get(organization=organization)
    assert account.held == 0 and account.balance == 10 and not CreditHold.objects.exists()


def test_a_database_that_is_away_keeps_the_batch_to_retry(organization, monkeypatch, settings, tmp_path):
    from django.db import OperationalError

    from billing import usage

    settings.HUB_METERING_DEAD_LETTER = str(tmp_path / "dead.jsonl")
    monkeypatch.setattr(usage, "record_row", lambda e: (_ for _ in ()).throw(OperationalError("server closed")))
    with pytest.raises(OperationalError):
        _write([event(organization.pk, "req_later")])
    assert not (tmp_path / "dead.jsonl").exists()
