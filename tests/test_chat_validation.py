"""The chat body's quick check (ChatCompletionRequest.plainly_valid) never accepts what DRF's validation refuses.

The gateway skips run_validation for a body the quick check accepts (hub/views.py), so a body it wrongly
accepted would reach the provider unchecked. Generated bodies mix valid values with every near miss the
fields know of (strings for numbers, booleans for integers, out-of-range and non-finite numbers, blank,
padded, NUL and surrogate model names, non-dict messages, unknown roles).
"""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from hub.serializers import INT64, MAX_OUTPUT_TOKENS, ChatCompletionRequest

SERIALIZER = ChatCompletionRequest()

edges = st.sampled_from(
    [0, 1, -1, 2, 20, 21, 128, 129, MAX_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS + 1, INT64, INT64 + 1, -INT64 - 1, -INT64 - 2]
)
numbers = st.one_of(
    edges,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, 2.0, 2.0000001, -2.0, -2.1, 0.5, 1e308, -0.0]),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.just("7"),
    st.lists(st.integers(), max_size=1),
)
names = st.one_of(
    st.sampled_from(["gpt-4o", "acme/model", "", " ", " gpt", "gpt ", "a\x00b", "a\ud800b", "x" * 200, "x" * 201]),
    st.text(max_size=5),
    st.integers(),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=2), max_size=1),
)
roles = st.one_of(st.sampled_from(["user", "system", "assistant", "tool", "robot", ""]), st.none(), st.integers())
messages = st.one_of(
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"role": roles, "content": st.one_of(st.text(max_size=5), st.none())}),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
            st.text(max_size=3),
            st.none(),
        ),
        max_size=3,
    ),
    st.text(max_size=3),
    st.none(),
    st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=1),
)
FIELDS = ("max_tokens", "max_completion_tokens", "n", "temperature", "top_p", "presence_penalty")
FIELDS += ("frequency_penalty", "seed", "top_logprobs")
OPTIONAL = {
    **dict.fromkeys(FIELDS, numbers),
    "stream": st.one_of(st.booleans(), st.none(), st.sampled_from(["true", 1, 0, "no", 2])),
    "stream_options": st.one_of(st.none(), st.just({"include_usage": True}), st.text(max_size=2), st.integers()),
    "tools": st.just([{"type": "function", "function": {"name": "f"}}]),
}
# At most two of them per body, so that one near miss is often its only fault.
optional = st.lists(st.sampled_from(sorted(OPTIONAL)), max_size=2, unique=True).flatmap(
    lambda chosen: st.fixed_dictionaries({name: OPTIONAL[name] for name in chosen})
)
MISSING = object()
VALID_MESSAGES = [{"role": "user", "content": "hi"}]


def _body(model, chat, rest):
    body = {"model": model, "messages": chat, **rest}
    return {k: v for k, v in body.items() if v is not MISSING}


# Valid model and messages half the time (one_of draws its first branch most), so a near miss in one other
# field is often the body's only fault: the case the quick check must not let through.
bodies = st.builds(
    _body,
    st.one_of(st.just("gpt-4o"), names, st.just(MISSING)),
    st.one_of(st.just(VALID_MESSAGES), messages, st.just(MISSING)),
    optional,
)


def drf_accepts(body) -> bool:
    try:
        SERIALIZER.run_validation(body)
    except ValidationError:
        return False
    return True


@settings(max_examples=3000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_what_the_quick_check_accepts_drf_accepts(body):
    if SERIALIZER.plainly_valid(body):
        assert drf_accepts(body), body


@pytest.mark.parametrize(
    "body",
    [
        {"model": "bench/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        {
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text"}]}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 64,
            "temperature": 0.2,
            "top_p": 1,
            "n": 1,
            "seed": -5,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        },
        {"model": "m", "messages": [{"role": "tool", "content": None}], "max_completion_tokens": MAX_OUTPUT_TOKENS},
    ],
)
def test_what_sdks_send_is_accepted_by_the_quick_check(body):
    assert SERIALIZER.plainly_valid(body) and drf_accepts(body)


@pytest.mark.parametrize(
    "change",
    [
        {"model": " gpt"},
        {"model": ""},
        {"model": "a\x00"},
        {"model": "a\udfff"},
        {"model": "x" * 201},
        {"model": 7},
        {"messages": []},
        {"messages": ["hi"]},
        {"messages": [{"role": "robot"}]},
        {"stream": "true"},
        {"stream": None},
        {"stream_options": "yes"},
        {"n": 0},
        {"n": True},
        {"n": 1.0},
        {"temperature": math.inf},
        {"temperature": math.nan},
        {"temperature": "1"},
        {"top_logprobs": 21},
        {"seed": INT64 + 1},
        {"max_tokens": MAX_OUTPUT_TOKENS + 1},
    ],
)
def test_a_near_miss_is_left_to_drf(change):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **change}
    assert not SERIALIZER.plainly_valid(body)
