"""The Bedrock adapter and its fake: the fake checked against boto3, the adapter's
translation, signing and error mapping, and failures the conformance table does not cover."""

import asyncio
import base64
import json
import struct
from types import SimpleNamespace

import boto3
import botocore.config
import botocore.exceptions
import openai
import pytest
from botocore.eventstream import EventStreamBuffer

from providers.adapters.base import UpstreamError
from providers.adapters.bedrock import BedrockAdapter
from providers.adapters.bedrock import errors as bedrock_errors
from providers.adapters.bedrock import request as bedrock_request
from providers.adapters.bedrock import response as bedrock_response
from tests.conformance.cases import PIXEL_DATA_URL, PIXEL_PNG, WEATHER_TOOL
from tests.conftest import add_model
from tests.fakes.bedrock_upstream import (
    ACCESS_KEY_ID,
    GUARDRAIL_TEXT,
    REGION,
    SECRET_ACCESS_KEY,
    FakeBedrock,
    event,
    exception,
    frame,
)

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(scope="module")
def fake():
    server = FakeBedrock().start()
    yield server
    server.stop()


@pytest.fixture
def aws(fake):
    fake.reset()
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=fake.base_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def user(text, *blocks):
    return [{"role": "user", "content": [{"text": text}, *blocks]}]


# ----------------------------------------------------------------- the fake, as boto3 sees it
def test_fake_converse_parses_with_boto3(aws, fake):
    answer = aws.converse(
        modelId=MODEL_ID, messages=user("hi there"), system=[{"text": "Be brief."}], inferenceConfig={"maxTokens": 3}
    )
    assert answer["output"]["message"] == {"role": "assistant", "content": [{"text": "Hello! You said:"}]}
    assert answer["stopReason"] == "max_tokens"
    assert answer["usage"] == {
        "inputTokens": 7,
        "outputTokens": 3,
        "totalTokens": 13,
        "cacheReadInputTokens": 2,
        "cacheWriteInputTokens": 1,
    }
    (request,) = fake.requests
    assert request.signature_valid and request.model_id == MODEL_ID
    assert request.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"  # botocore's encoding


def test_fake_converse_tool_use_and_image_with_boto3(aws):
    tools = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}
    answer = aws.converse(modelId=ARN, messages=user("weather, parallel"), toolConfig=tools)
    uses = [b["toolUse"] for b in answer["output"]["message"]["content"]]
    assert [u["input"] for u in uses] == [{"city": "Paris"}, {"city": "London"}]
    assert answer["stopReason"] == "tool_use"
    image = {"image": {"format": "png", "source": {"bytes": PIXEL_PNG}}}  # boto3 base64-encodes blobs
    answer = aws.converse(modelId=MODEL_ID, messages=user("see", image))
    assert answer["output"]["message"]["content"] == [{"text": "Hello! You said: see [image]"}]


def test_fake_converse_stream_parses_with_boto3(aws):
    tools = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}
    events = list(aws.converse_stream(modelId=MODEL_ID, messages=user("weather?"), toolConfig=tools)["stream"])
    assert [next(iter(e)) for e in events] == [
        "messageStart",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[1]["contentBlockStart"]["start"]["toolUse"]["name"] == "get_weather"
    assert "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events[2:5]) == '{"city": "Paris"}'
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}
    events = list(
        aws.converse_stream(modelId=MODEL_ID, messages=user("hi there"), inferenceConfig={"stopSequences": ["said"]})[
            "stream"
        ]
    )
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "Hello! You " and events[-2] == {"messageStop": {"stopReason": "stop_sequence"}}
    assert events[-1]["metadata"]["usage"]["inputTokens"] == 2


@pytest.mark.parametrize(
    "kind, code, status",
    [
        ("auth", "UnrecognizedClientException", 403),
        ("rate_limit", "ThrottlingException", 429),
        ("overloaded", "ServiceUnavailableException", 503),
        ("context_length", "ValidationException", 400),
        ("server", "InternalServerException", 500),
        ("model_not_ready", "ModelNotReadyException", 429),
        ("timeout", "ModelTimeoutException", 408),
        ("not_found", "ResourceNotFoundException", 404),
    ],
)
def test_fake_errors_parse_with_boto3(aws, kind, code, status):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        aws.converse(modelId=MODEL_ID, messages=user(f"error:{kind}"))
    response = raised.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert response["Error"]["Message"]
    assert "retry-after" not in response["ResponseMetadata"]["HTTPHeaders"]


@pytest.mark.parametrize(
    "kind, code", [("midstream", "modelStreamErrorException"), ("midstream_throttle", "throttlingException")]
)
def test_fake_midstream_exception_with_boto3(aws, kind, code):
    stream = aws.converse_stream(modelId=MODEL_ID, messages=user(f"error:{kind}"))["stream"]
    with pytest.raises(botocore.exceptions.EventStreamError) as raised:
        list(stream)
    assert raised.value.response["Error"]["Code"] == code


def test_fake_checks_the_signature(fake):
    wrong = boto3.client(
        "bedrock-runtime",
        endpoint_url=fake.base_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key="not-the-secret",
    )
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        wrong.converse(modelId=MODEL_ID, messages=user("hi"))
    assert raised.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    other_region = boto3.client(
        "bedrock-runtime",
        endpoint_url=fake.base_url,
        region_name="us-west-2",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        other_region.converse(modelId=MODEL_ID, messages=user("hi"))
    assert raised.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_fake_refuses_what_bedrock_refuses(aws):
    with pytest.raises(botocore.exceptions.ClientError, match="alternate"):
        aws.converse(modelId=MODEL_ID, messages=user("a") + user("b"))
    with pytest.raises(botocore.exceptions.ClientError, match="toolConfig"):
        aws.converse(
            modelId=MODEL_ID,
            messages=[
                *user("a"),
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
                *user("b"),
            ],
        )


def test_frame_encoder_round_trips_through_botocore():
    buffer = EventStreamBuffer()
    data = event("messageStop", {"stopReason": "end_turn"}) + exception("throttlingException", "slow down")
    buffer.add_data(data[:7])
    assert list(buffer) == []
    buffer.add_data(data[7:])
    first, second = list(buffer)
    assert first.headers == {
        ":event-type": "messageStop",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(first.payload)["stopReason"] == "end_turn"
    assert second.headers[":exception-type"] == "throttlingException"
    assert frame({"a": "b"}, b"")[:8] == struct.pack(">II", 16 + 6, 6)  # prelude + 1+1+1+2+1 header bytes + CRC


# ----------------------------------------------------------------- the adapter alone
def route(fake, **overrides):
    values = {
        "provider_name": "bedrock",
        "upstream_name": MODEL_ID,
        "base_url": fake.base_url,
        "options": {},
        "secret": fake.secret,
        "max_output_tokens": None,
    }
    return SimpleNamespace(**{**values, **overrides})


def run(coroutine):
    from providers import http

    async def main():
        try:
            return await coroutine
        finally:
            await http.close()

    return asyncio.run(main())


def test_native_request_translates_everything():
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": PIXEL_DATA_URL}},
                ],
            },
            {"role": "user", "content": "and tell me"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "rainy"}]},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_completion_tokens": 500,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "parallel_tool_calls": True,
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
        "user": "someone",
        "seed": 1,
        "logprobs": True,
    }
    native = bedrock_request.build_request(SimpleNamespace(max_output_tokens=256), body)
    assert native == {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "look"},
                    {"image": {"format": "png", "source": {"bytes": base64.b64encode(PIXEL_PNG).decode()}}},
                    {"text": "and tell me"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"text": "Checking."},
                    {"toolUse": {"toolUseId": "call_a", "name": "get_weather", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "call_b", "name": "get_weather", "input": {}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "call_a", "content": [{"text": "sunny"}]}},
                    {"toolResult": {"toolUseId": "call_b", "content": [{"text": "rainy"}]}},
                ],
            },
        ],
        "system": [
            {"text": "Be brief."},
            {"text": "Use metric units."},
            {"text": bedrock_request.JSON_INSTRUCTION + ' It must match this JSON schema: {"type":"object"}'},
        ],
        "inferenceConfig": {"maxTokens": 256, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "The current weather in a city.",
                        "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
                    }
                }
            ],
            "toolChoice": {"tool": {"name": "get_weather"}},
        },
    }


@pytest.mark.parametrize("choice, expected", [("auto", {"auto": {}}), ("required", {"any": {}}), ("none", None)])
def test_tool_choice(choice, expected):
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL], "tool_choice": choice}
    native = bedrock_request.build_request(SimpleNamespace(max_output_tokens=None), body)
    assert (native.get("toolConfig") or {}).get("toolChoice") == expected
    assert ("toolConfig" in native) == (choice != "none")


def test_unsupported_image_type_is_refused():
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}
        ]
    }
    with pytest.raises(UpstreamError) as raised:
        bedrock_request.build_request(SimpleNamespace(max_output_tokens=None), body)
    assert (raised.value.status, raised.value.code) == (400, "invalid_image")


def test_adapter_signs_arn_model_ids(fake):
    fake.reset()
    result = run(
        BedrockAdapter().chat(route(fake, upstream_name=ARN), {"messages": [{"role": "user", "content": "hi"}]})
    )
    answer = json.loads(result.body)
    assert answer["choices"][0]["message"]["content"] == "Hello! You said: hi"
    assert answer["model"] == ARN
    (request,) = fake.requests
    assert request.signature_valid and request.model_id == ARN
    assert "%2F" in request.path  # the ARN's "/" stays inside the one path segment


def test_adapter_stream_with_session_token():
    token_fake = FakeBedrock(session_token="session-token-123").start()
    try:

        async def collect():
            stream = await BedrockAdapter().chat_stream(
                route(token_fake), {"messages": [{"role": "user", "content": "hi there"}]}, include_usage=True
            )
            try:
                return [chunk async for chunk in stream], stream
            finally:
                await stream.aclose()

        chunks, stream = run(collect())
        (request,) = token_fake.requests
        assert request.signature_valid and request.headers["x-amz-security-token"] == "session-token-123"
        events = [json.loads(c[6:]) for c in b"".join(chunks).split(b"\n\n") if c.startswith(b"data: {")]
        assert (
            "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
            == "Hello! You said: hi there"
        )
        assert events[-1]["usage"] == {
            "prompt_tokens": 5,
            "completion_tokens": 5,
            "total_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 2},
        }
        assert stream.final_usage().prompt_tokens == 5 and stream.error is None
    finally:
        token_fake.stop()


@pytest.mark.parametrize("secret", ["", "AKIA:secret", '{"access_key_id": "AKIA"}'])
def test_unusable_credential(fake, secret):
    with pytest.raises(UpstreamError) as raised:
        run(BedrockAdapter().chat(route(fake, secret=secret), {"messages": [{"role": "user", "content": "hi"}]}))
    assert (raised.value.status, raised.value.code) == (503, "no_credential")
    assert "AKIA" not in raised.value.message


@pytest.mark.parametrize(
    "kind, status, message, expected",
    [
        (
            "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            403,
            "no access to AKIA…",
            (502, "upstream_auth_failed", True),
        ),
        (
            "ThrottlingException",
            429,
            "Too many tokens, please wait before trying again.",
            (429, "rate_limit_exceeded", True),
        ),
        ("ModelNotReadyException", 429, "Model is not ready", (503, "upstream_overloaded", True)),
        ("ServiceUnavailableException", 503, "busy", (503, "upstream_overloaded", True)),
        (
            "ValidationException",
            400,
            "The model returned the following errors: prompt is too long: 227255 tokens > 200000 maximum",
            (400, "context_length_exceeded", False),
        ),
        ("ValidationException", 400, "Input is too long for requested model.", (400, "context_length_exceeded", False)),
        ("ValidationException", 400, "temperature: range: 0..1", (400, None, False)),
        ("InternalServerException", 500, "oops", (502, "upstream_error", True)),
        ("ModelErrorException", 424, "the model failed", (502, "upstream_error", True)),
        ("ModelTimeoutException", 408, "slow", (504, "upstream_timeout", True)),
        ("ResourceNotFoundException", 404, "no such model", (502, "upstream_model_not_found", False)),
        ("modelStreamErrorException", 0, "stream failed", (502, "upstream_error", True)),
        ("throttlingException", 0, "slow down", (429, "rate_limit_exceeded", True)),
    ],
)
def test_error_mapping(kind, status, message, expected):
    error = bedrock_errors.aws_error(kind, status, message, "bedrock")
    assert (error.status, error.code, error.retryable) == expected
    if expected[1] == "upstream_auth_failed":
        assert "AKIA" not in error.message
    if status == 400:
        assert error.message == message and error.type == "invalid_request_error"


def test_url_images_come_in_fetched():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://img.example/cat.jpg"}},
                    {"type": "image_url", "image_url": {"url": PIXEL_DATA_URL}},
                ],
            }
        ]
    }
    assert bedrock_request.image_urls(body["messages"]) == ["https://img.example/cat.jpg"]
    native = bedrock_request.build_request(
        SimpleNamespace(max_output_tokens=None), body, {"https://img.example/cat.jpg": ("image/jpeg", b"jpg")}
    )
    assert [block["image"]["format"] for block in native["messages"][0]["content"]] == ["jpeg", "png"]
    assert native["messages"][0]["content"][0]["image"]["source"] == {"bytes": "anBn"}


@pytest.mark.parametrize(
    "answer, expected",
    [
        (
            {
                "output": {"message": {"content": [{"text": "Hi"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 5, "outputTokens": 2, "cacheReadInputTokens": 10},
            },
            ("Hi", None, "stop", (15, 2, 10)),
        ),
        (
            {
                "output": {"message": {"content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {"x": 1}}}]}},
                "stopReason": "tool_use",
                "usage": {"inputTokens": 5, "outputTokens": 2},
            },
            (None, ("t1", "f", '{"x": 1}'), "tool_calls", (5, 2, 0)),
        ),
        (
            {
                "output": {"message": {"content": [{"text": "blocked"}]}},
                "stopReason": "guardrail_intervened",
                "usage": {"inputTokens": 5, "outputTokens": 1},
            },
            ("blocked", None, "content_filter", (5, 1, 0)),
        ),
    ],
)
def test_answers_become_completions(answer, expected):
    result = bedrock_response.chat_result(json.dumps(answer).encode(), {"messages": []}, MODEL_ID, "bedrock")
    (choice,) = json.loads(result.body)["choices"]
    calls = choice["message"].get("tool_calls")
    call = (calls[0]["id"], calls[0]["function"]["name"], calls[0]["function"]["arguments"]) if calls else None
    counts = (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.cache_read_tokens)
    assert (choice["message"]["content"], call, choice["finish_reason"], counts) == expected


@pytest.mark.parametrize(
    "answer",
    [
        b"{}",
        b'{"output": {"message": {"content": "abc"}}, "usage": {}}',
        b'{"output": {"message": {"content": [{"text": "no usage"}]}}}',
    ],
)
def test_an_answer_that_is_not_one_is_the_providers_fault(answer):
    with pytest.raises(UpstreamError) as raised:
        bedrock_response.chat_result(answer, {"messages": []}, MODEL_ID, "bedrock")
    assert (raised.value.status, raised.value.code) == (502, "upstream_invalid_response")


@pytest.mark.parametrize(
    "status, headers, content, expected",
    [
        (
            429,
            {"x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/"},
            b'{"message": "slow"}',
            (429, "rate_limit_exceeded", "slow"),
        ),
        (
            400,
            {},
            b'{"__type": "ValidationException", "Message": "Input is too long"}',
            (400, "context_length_exceeded", "Input is too long"),
        ),
        (
            502,
            {},
            b"<html>bad gateway</html>",
            (502, "upstream_error", "The provider 'bedrock' failed: <html>bad gateway</html>"),
        ),
    ],
)
def test_a_failed_answer_is_read_from_its_header_or_body(status, headers, content, expected):
    error = bedrock_errors.error_from_response(status, content, headers, "bedrock")
    assert (error.status, error.code, error.message) == expected


# ----------------------------------------------------------------- through the live hub
@pytest.fixture
def hub_client(hub, api_key, fake):
    from providers.models import Credential, Provider

    fake.reset()
    provider = Provider.objects.create(
        name="bedrock", kind="bedrock", base_url=fake.base_url, options={"region": REGION}
    )
    credential = Credential(provider=provider, name="main")
    credential.set_secret(fake.secret)
    credential.save()
    add_model(provider, "bedrock/claude", MODEL_ID)
    return openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)


@pytest.mark.parametrize(
    "kind, code",
    [
        ("midstream", "upstream_error"),
        ("midstream_throttle", "rate_limit_exceeded"),
        ("truncated", "upstream_stream_incomplete"),
        ("cut", "upstream_connection_error"),
    ],
)
def test_stream_failures_end_with_an_error_event(hub, hub_client, kind, code):
    from billing.models import UsageRecord

    stream = hub_client.chat.completions.create(
        model="bedrock/claude", stream=True, messages=[{"role": "user", "content": f"error:{kind}"}]
    )
    with pytest.raises(openai.APIError) as raised:
        for _ in stream:
            pass
    assert raised.value.body["code"] == code
    hub.drain()
    record = UsageRecord.objects.get()
    assert record.status == "upstream_error" and record.usage_estimated and record.completion_tokens > 0


@pytest.mark.parametrize(
    "kind, status, code",
    [
        ("model_not_ready", 503, "upstream_overloaded"),
        ("timeout", 504, "upstream_timeout"),
        ("validation", 400, "invalid_request"),  # a 400 always names a code
        ("not_found", 502, "upstream_model_not_found"),
    ],
)
def test_more_errors_through_the_hub(hub_client, kind, status, code):
    with pytest.raises(openai.APIStatusError) as raised:
        hub_client.chat.completions.create(
            model="bedrock/claude", messages=[{"role": "user", "content": f"error:{kind}"}]
        )
    assert (raised.value.status_code, raised.value.body.get("code")) == (status, code)


def test_wrong_secret_is_an_auth_failure(hub_client):
    from providers.models import Credential

    credential = Credential.objects.get(provider__name="bedrock")
    credential.set_secret(json.dumps({"access_key_id": ACCESS_KEY_ID, "secret_access_key": "wrong-secret-key"}))
    credential.save()
    from hub import catalogue

    catalogue.invalidate()
    with pytest.raises(openai.APIStatusError) as raised:
        hub_client.chat.completions.create(model="bedrock/claude", messages=[{"role": "user", "content": "hi"}])
    assert (raised.value.status_code, raised.value.body["code"]) == (502, "upstream_auth_failed")
    assert "signature" not in raised.value.response.text.lower()


def test_guardrail_is_a_content_filter(hub_client):
    answer = hub_client.chat.completions.create(
        model="bedrock/claude", messages=[{"role": "user", "content": "error:content_policy"}]
    )
    assert (answer.choices[0].message.content, answer.choices[0].finish_reason) == (GUARDRAIL_TEXT, "content_filter")
