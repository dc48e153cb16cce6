"""The attack: a provider (or what answers in its place) sends without end: a whole answer of gigabytes, a
small gzip that inflates to one, a stream whose event never ends (no blank line, ever). Before, the hub read
each into memory until the read timeout (600 s) or the worker died. Each is now bounded
(HUB_UPSTREAM_MAX_BODY_BYTES, HUB_UPSTREAM_MAX_EVENT_BYTES, counted decoded): a 502
upstream_response_too_large, or the stream's error event, with its record."""

import asyncio
import gzip

import openai
import pytest

from billing.models import UsageRecord
from providers.models import Credential
from tests import factories
from tests.factories import add_model
from tests.fakes.server import FakeUpstream, server_fixture, until_disconnect

HELLO = [{"role": "user", "content": "hi"}]


class Flood(FakeUpstream):
    """Answers every POST as `mode` says: `big` (a 200 JSON body of `size` bytes), `gzip` (the same, gzipped),
    `endless` (an event stream whose one event never ends, `size` bytes of it), `deep_error` (a 500 whose body
    nests deeper than Python's JSON parser goes)."""

    thread_name = "fake-flood"

    def __init__(self):
        super().__init__()
        self.mode, self.size, self.sent = "big", 0, 0

    async def handle(self, scope, receive, send, body, headers) -> None:
        self.sent = 0
        if self.mode == "deep_error":
            await send(
                {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": b'{"error": ' + b"[" * 60000})
            return
        if self.mode == "endless":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            piece = b"data: " + b"a" * 65536
            gone = asyncio.ensure_future(until_disconnect(receive))  # the hub hung up: what it should do
            try:
                while self.sent < self.size and not gone.done():
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                    self.sent += len(piece)
                    await asyncio.sleep(0.001)
            finally:
                gone.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        text = b'{"id": "x", "object": "chat.completion", "pad": "' + b"a" * self.size + b'"}'
        extra = []
        if self.mode == "gzip":
            text, extra = gzip.compress(text), [(b"content-encoding", b"gzip")]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(text)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": text})


flood = server_fixture(lambda: Flood())


def _model(kind: str, flood) -> str:
    provider = factories.provider(
        kind,
        kind=kind,
        base_url=flood.base_url + ("" if kind == "anthropic" else "/v1"),
        secret="sk-flood-00000000000001",
    )
    add_model(provider, f"{kind}/flood", "flood-1")
    return f"{kind}/flood"


@pytest.mark.parametrize("mode", ["big", "gzip"])
def test_a_whole_answer_larger_than_the_bound_is_refused_not_held(mode, flood, hub, api_key, settings):
    settings.HUB_UPSTREAM_MAX_BODY_BYTES = 1_000_000
    flood.mode, flood.size = mode, 20_000_000  # gzipped: about 20 KB on the wire
    model = _model("openai_compatible", flood)
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=model, messages=HELLO)
    assert (raised.value.status_code, raised.value.body["code"]) == (502, "upstream_response_too_large")
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.status, record.http_status, record.price) == ("upstream_error", 502, 0)


@pytest.mark.parametrize("kind", ["openai_compatible", "anthropic"])
def test_a_stream_event_that_never_ends_is_cut_at_the_bound(kind, flood, hub, api_key, settings):
    settings.HUB_UPSTREAM_MAX_EVENT_BYTES = 1_000_000
    flood.mode, flood.size = "endless", 200_000_000
    model = _model(kind, flood)
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    with pytest.raises(openai.APIError) as raised:
        for _ in client.chat.completions.create(model=model, messages=HELLO, stream=True):
            pass
    assert raised.value.body["code"] == "upstream_response_too_large"
    assert flood.sent < 100_000_000, "the hub stopped reading (and hung up) soon after the bound"
    hub.drain()
    record = UsageRecord.objects.get()
    assert record.status == "upstream_error" and ("larger than" in record.error or "exceeded" in record.error)


@pytest.mark.parametrize("kind", ["openai_compatible", "anthropic", "gemini", "bedrock"])
def test_an_error_body_nested_past_the_parser_is_the_providers_failure(kind, flood, hub, api_key):
    """json.loads raises RecursionError, which no adapter's error reader expected: a 500 before."""
    flood.mode = "deep_error"
    model = _model(kind, flood)
    if kind == "bedrock":
        credential = Credential.objects.get()
        credential.set_secret('{"access_key_id": "AKIAFLOOD", "secret_access_key": "flood"}')
        credential.save()
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=model, messages=HELLO)
    assert (raised.value.status_code, raised.value.body["code"]) == (502, "upstream_error")
    hub.drain()
    assert UsageRecord.objects.get().status == "upstream_error"


@pytest.mark.parametrize(
    "pieces",
    [
        ["data: a\r\n\r\ndata: b\r\n\r\n"],
        ["data: a\r", "\n\r", "\ndata: b\r\n", "\r\n"],  # every \r\n split across two reads
        ["data: a\n", "\ndata:", " b\n\n"],
        ["event: x\ndata: a\ndata: b\n\n"],
    ],
    ids=["whole", "crlf_split", "lf_split", "multiline"],
)
def test_the_event_reader_finds_events_however_the_reads_cut_them(pieces, settings):
    """The SSE reader now normalises and searches only the new text: an event end split across reads is found."""
    from providers.adapters import sse

    class Response:
        async def aiter_text(self):
            for piece in pieces:
                yield piece

    async def read():
        return [e async for e in sse.events(Response())]

    expected = [("x", "a\nb")] if len(pieces) == 1 and "event:" in pieces[0] else [("message", "a"), ("message", "b")]
    assert asyncio.run(read()) == expected


def test_the_openai_stream_finds_events_when_a_crlf_is_split_across_reads(settings):
    """Each read was normalised alone: a \\r\\n cut between two reads merged two events into invalid JSON."""
    from providers.adapters.openai_compat import OpenAIStream

    chunk = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}]}\r\n\r\n'
    done = b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\r\n\r\ndata: [DONE]\r\n\r\n'

    class Response:
        async def aiter_raw(self):
            yield chunk[:-1]  # ends "\r\n\r"
            yield chunk[-1:] + done

    async def read():
        stream = OpenAIStream(Response(), {"messages": []}, False, "crlf")
        return b"".join([c async for c in stream]), stream

    out, stream = asyncio.run(read())
    assert stream.error is None and out.count(b"data: ") == 3, out
