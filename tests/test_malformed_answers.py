"""The attack: a provider (or what sits in front of it) answers 200 in a shape its API does not document: a
number or an object as text, content that is not a list, a tool input that is not an object, a list as the
stop reason, a number as a tool's name.

Before, most of these crashed the translation outside its guard (a 500: the hub's fault, the request free and
unexplained) or, worse, passed the wrong type on to the tenant as OpenAI's format ("content": {"a": 1}). Each
is the provider's invalid answer: a 502 upstream_invalid_response in OpenAI's shape, whole or streamed (an
error event), with its usage record. Table-driven: family x malformation x {whole, stream}, on the fakes of
tests/fakes, each told to spoil its answers (FakeUpstream.malform).
"""

import json

import openai
import pytest

from billing.models import UsageRecord
from tests import factories
from tests.conformance.cases import WEATHER_TOOL
from tests.factories import add_model
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.bedrock_upstream import FakeBedrock
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.server import server_fixture

UPSTREAM = {
    "anthropic": "claude-test",
    "gemini": "gemini-2.5-flash",
    "bedrock": "anthropic.claude-3-haiku-20240307-v1:0",
}


def replacing(**values):
    """Every member named as a key, at any depth of an answer or event, set to its value."""

    def walk(data):
        if isinstance(data, dict):
            return {k: values[k] if k in values else walk(v) for k, v in data.items()}
        if isinstance(data, list):
            return [walk(v) for v in data]
        return data

    return walk


# malformation -> (whether the request offers a tool, family -> the members spoiled)
MALFORMATIONS = {
    "text_is_a_number": (False, {f: {"text": 42} for f in UPSTREAM}),
    "text_is_an_object": (False, {f: {"text": {"a": 1}} for f in UPSTREAM}),
    "text_is_a_list": (False, {f: {"text": ["a"]} for f in UPSTREAM}),
    "content_is_not_a_list": (
        False,
        {
            "anthropic": {"content": "oops", "content_block": "oops"},
            "gemini": {"content": "oops"},
            "bedrock": {"content": "oops", "delta": "oops"},
        },
    ),
    "stop_reason_is_a_list": (
        False,
        {
            "anthropic": {"stop_reason": ["end_turn"]},
            "gemini": {"finishReason": ["STOP"]},
            "bedrock": {"stopReason": ["end_turn"]},
        },
    ),
    "tool_input_is_not_an_object": (
        True,
        {
            "anthropic": {"input": [1, 2], "partial_json": [1, 2]},
            "gemini": {"args": [1, 2]},
            "bedrock": {"input": [1, 2]},
        },
    ),
    "tool_name_is_a_number": (True, {f: {"name": 7} for f in UPSTREAM}),
}


fakes = server_fixture(lambda: {"anthropic": FakeAnthropic(), "gemini": FakeGemini(), "bedrock": FakeBedrock()})


def _model(family: str, fake) -> str:
    options = {"region": "us-east-1"} if family == "bedrock" else {}
    provider = factories.provider(
        family,
        kind=family,
        base_url=fake.base_url,
        options=options,
        secret=fake.secret if family == "bedrock" else fake.api_key,
    )
    add_model(provider, f"{family}/spoilt", UPSTREAM[family])
    return f"{family}/spoilt"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("malformation", MALFORMATIONS)
@pytest.mark.parametrize("family", UPSTREAM)
def test_a_malformed_answer_is_a_502_invalid_response_with_its_record(
    family, malformation, stream, fakes, hub, api_key
):
    tools, spoilt = MALFORMATIONS[malformation]
    model = _model(family, fakes[family])
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    request = dict(
        model=model,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        **({"tools": [WEATHER_TOOL]} if tools else {}),
    )
    fakes[family].malform = replacing(**spoilt[family])
    try:
        if stream:
            with pytest.raises(openai.APIError) as raised:
                for _ in client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **request):
                    pass
            error = raised.value.body
        else:
            with pytest.raises(openai.APIStatusError) as raised:
                client.chat.completions.create(**request)
            assert raised.value.status_code == 502
            error = raised.value.body
    finally:
        fakes[family].malform = None
    assert (error["code"], error["type"]) == ("upstream_invalid_response", "upstream_error")
    assert family in error["message"] and isinstance(error["message"], str)
    hub.drain()
    record = UsageRecord.objects.get()
    # A stream's status was sent (200) before the provider's event was read; its record says what failed.
    assert (record.status, record.http_status, record.model_name) == ("upstream_error", 200 if stream else 502, model)
    assert "not in its API's format" in record.error or "malformed" in record.error
    # And the same fake, unspoilt, answers normally: the table tests the malformation, not the setup.
    answer = client.chat.completions.create(**request)
    message = answer.choices[0].message
    assert isinstance(message.content, str) or message.tool_calls


@pytest.mark.parametrize(
    "body",
    [b"[" * 200_000 + b"]" * 200_000, b'{"error": {"code": 1e999}}'],
    ids=["nested_past_the_parser", "infinite_int"],
)
def test_reading_an_answer_too_deep_or_infinite_is_the_providers_invalid_answer(body):
    """json.loads raises RecursionError on deep nesting and int(1e999) OverflowError: neither is a ValueError."""
    from providers.adapters import translate
    from providers.adapters.base import UpstreamError

    with pytest.raises(UpstreamError) as raised, translate.reading("deep"):
        data = json.loads(body)
        int(data["error"]["code"])
    assert raised.value.code == "upstream_invalid_response"
