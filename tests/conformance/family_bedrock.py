"""The Amazon Bedrock family: OpenAI requests become signed Converse / ConverseStream calls."""

import base64
import re

from providers.adapters.bedrock.request import JSON_INSTRUCTION
from tests.conformance.family import FakeFamily
from tests.fakes.bedrock_upstream import GUARDRAIL_TEXT, FakeBedrock

from .cases import PIXEL_PNG, WEATHER_TOOL, Expect

REGION = "eu-west-3"  # not the default, so the region option must reach the signature
MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"  # the ":" must survive URL encoding and signing
ACCESS_KEY_ID = "AKIAIOSFODNN7CONFORM"
SECRET_ACCESS_KEY = "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"
SESSION_TOKEN = "FwoGZXIvYXdzEConformanceSessionToken"

_PIXEL = {"image": {"format": "png", "source": {"bytes": base64.b64encode(PIXEL_PNG).decode()}}}
_TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "The current weather in a city.",
                "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
            }
        }
    ]
}


def _user(*blocks):
    return {"role": "user", "content": list(blocks)}


def _text(text):
    return {"text": text}


# The exact Converse body Bedrock documents for each case (errors: just the message).
EXPECTED = {
    "plain": {"messages": [_user(_text("hi there"))]},
    "system_prompt": {"messages": [_user(_text("hi there"))], "system": [_text("Be brief.")]},
    "multi_turn": {
        "messages": [
            _user(_text("first")),
            {"role": "assistant", "content": [_text("Hello! You said: first")]},
            _user(_text("second")),
        ]
    },
    "image_base64": {"messages": [_user(_text("what is this?"), _PIXEL)]},
    "image_url": {"messages": [_user(_text("and this?"), _PIXEL)]},
    "one_tool": {"messages": [_user(_text("weather in Paris?"))], "toolConfig": _TOOLS},
    "parallel_tools": {"messages": [_user(_text("weather in Paris and London, in parallel"))], "toolConfig": _TOOLS},
    "tool_round_trip": {
        "messages": [
            _user(_text("weather in Paris?")),
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}}],
            },
            _user({"toolResult": {"toolUseId": "call_1", "content": [_text("sunny")]}}),
        ],
        "toolConfig": _TOOLS,
    },
    # Converse has no JSON mode: the adapter asks for it with a system instruction.
    "json_mode": {"messages": [_user(_text("answer in json"))], "system": [_text(JSON_INSTRUCTION)]},
    "stop_sequence": {"messages": [_user(_text("hi there"))], "inferenceConfig": {"stopSequences": ...}},
    "max_tokens": {"messages": [_user(_text("hi there"))], "inferenceConfig": {"maxTokens": 2}},
}


class BedrockFamily(FakeFamily):
    name = "bedrock"
    kind = "bedrock"
    options = {"region": REGION}
    upstream_model = MODEL_ID
    overrides = {
        # Bedrock's ThrottlingException carries no retry-after header.
        "error_rate_limit": Expect(status=429, code="rate_limit_exceeded"),
        # A guardrail blocking the input is a 200 with its blocked-input message and
        # stopReason guardrail_intervened, not an HTTP error.
        "error_content_policy": Expect(GUARDRAIL_TEXT, "content_filter"),
    }

    def check_request(self, case, request, stream):
        assert request.method == "POST"
        assert request.model_id == MODEL_ID
        assert request.path.endswith("/converse-stream" if stream else "/converse")
        assert request.path.count("/") == 3, "the model id is one encoded path segment"
        # A SigV4 signature the fake recomputed with botocore from what it received.
        assert request.signature_valid
        assert re.fullmatch(
            rf"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/\d{{8}}/{REGION}/bedrock/aws4_request, "
            r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}",
            request.headers["authorization"],
        )
        signed = re.search(r"SignedHeaders=([a-z0-9;-]+)", request.headers["authorization"]).group(1).split(";")
        assert {"host", "x-amz-date", "x-amz-security-token", "content-type"} <= set(signed)
        assert request.headers["x-amz-security-token"] == SESSION_TOKEN
        assert request.headers["content-type"] == "application/json"
        accept = "application/vnd.amazon.eventstream" if stream else "application/json"
        assert request.headers["accept"] == accept
        expected = EXPECTED.get(case.name) or {"messages": [_user(_text(case.messages[-1]["content"]))]}
        # Always a cap: the request's, else the one its credit was held for (HUB_DEFAULT_OUTPUT_HOLD).
        inference = dict(expected.get("inferenceConfig") or {}, maxTokens=case.params.get("max_tokens", 4096))
        if "stop" in case.params:
            stop = case.params["stop"]
            inference["stopSequences"] = [stop] if isinstance(stop, str) else stop
        expected = dict(expected, inferenceConfig=inference)
        assert request.json == expected


_fake = FakeBedrock(ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN, region=REGION)
FAMILY = BedrockFamily(_fake, _fake.secret, upstream_secret=SECRET_ACCESS_KEY)
