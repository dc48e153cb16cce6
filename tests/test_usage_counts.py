"""Every provider family's usage is read through one check: a bad count is noted, never raised or trusted."""

import json
from decimal import Decimal

import pytest

from providers.adapters import audio
from providers.adapters.anthropic import response as anthropic
from providers.adapters.base import MAX_TOKENS, Usage, whole_number
from providers.adapters.bedrock import response as bedrock
from providers.adapters.gemini import response as gemini

BAD = {
    "string": "abc",
    "infinite": float("inf"),
    "nan": float("nan"),
    "negative": -5,
    "fraction": 7.5,
    "boolean": True,
    "over_int32": 2**31,
    "absurd": MAX_TOKENS + 1,
    "list": [1],
    "object": {"n": 1},
}

# Each family's parser, and the usage object it reads with one count replaced.
FAMILIES = {
    "openai": (Usage.from_openai, lambda v: {"prompt_tokens": v, "completion_tokens": 3}),
    "openai_cached": (
        Usage.from_openai,
        lambda v: {"prompt_tokens": 9, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": v}},
    ),
    "anthropic": (anthropic.usage, lambda v: {"input_tokens": 9, "output_tokens": v}),
    "anthropic_cache": (
        anthropic.usage,
        lambda v: {"input_tokens": 9, "output_tokens": 3, "cache_read_input_tokens": v},
    ),
    "gemini": (gemini.usage, lambda v: {"promptTokenCount": v, "candidatesTokenCount": 3}),
    "gemini_thoughts": (gemini.usage, lambda v: {"promptTokenCount": 9, "thoughtsTokenCount": v}),
    "bedrock": (bedrock.usage, lambda v: {"inputTokens": 9, "outputTokens": v}),
    "bedrock_cache": (bedrock.usage, lambda v: {"inputTokens": 9, "outputTokens": 3, "cacheWriteInputTokens": v}),
}


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("family", FAMILIES.values(), ids=FAMILIES.keys())
def test_a_bad_count_is_noted_and_read_as_nothing(family, value):
    parse, report = family
    usage = parse(report(value))
    assert usage.invalid and "invalid usage" in usage.invalid
    for count in (usage.prompt_tokens, usage.completion_tokens, usage.cache_read_tokens, usage.cache_write_tokens):
        assert 0 <= count <= 2 * MAX_TOKENS


@pytest.mark.parametrize("family", FAMILIES.values(), ids=FAMILIES.keys())
def test_sound_counts_are_trusted(family):
    parse, report = family
    usage = parse(report(4))
    assert not usage.invalid and usage.prompt_tokens >= 4


def test_a_usage_object_that_is_not_one_is_noted():
    assert Usage.from_openai({"prompt_tokens": 1, "prompt_tokens_details": "abc"}).invalid
    assert anthropic.usage({"input_tokens": 1}).invalid == ""
    assert gemini.usage("abc") is None and bedrock.usage(["x"]) is None


def test_a_count_may_be_an_integral_float_or_digits():
    assert whole_number(12.0) == 12 and whole_number("12") == 12 and whole_number(None) == 0
    assert whole_number("١٢") is None and whole_number("1" * 40) is None


def test_unsound_usage_is_replaced_by_the_estimate_saying_why():
    reported = Usage.from_openai({"prompt_tokens": -1})
    usage = Usage.or_estimate(reported, lambda: Usage(10, 20))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (10, 20, True)
    assert "prompt_tokens=-1" in usage.invalid
    assert Usage.or_estimate(Usage(1, 2), lambda: Usage(10, 20)).prompt_tokens == 1


@pytest.mark.parametrize("seconds", ["abc", 1e999, -3, "NaN", 10**12, True])
def test_a_bad_transcription_duration_is_estimated_from_the_upload(seconds):
    content = json.dumps({"text": "hi", "usage": {"type": "duration", "seconds": seconds}}, allow_nan=True)
    usage = audio.transcription_usage(content.encode(), "application/json", {"file": ("a.mp3", b"x" * 32000)})
    assert usage.estimated and usage.invalid and usage.seconds == Decimal("2.000")


def test_bad_transcription_tokens_are_noted_and_not_billed():
    content = json.dumps({"text": "hi", "duration": 3, "usage": {"type": "tokens", "input_tokens": "abc"}})
    usage = audio.transcription_usage(content.encode(), "application/json", {"file": ("a.mp3", b"x")})
    assert usage.invalid and usage.prompt_tokens == 0 and usage.seconds == Decimal("3.000")


@pytest.mark.parametrize("length", [float("inf"), float("nan"), 1e12, -1.0, "2"])
def test_an_upload_header_claiming_an_impossible_duration_is_not_believed(monkeypatch, length):
    import types

    from hub import audio as upload

    parsed = types.SimpleNamespace(info=types.SimpleNamespace(length=length))
    monkeypatch.setattr(upload.mutagen, "File", lambda _: parsed)
    assert upload.duration(b"x" * 1000) is None
