import math
import re

from rest_framework import serializers

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, nothing that converts to one: the chat body is sent upstream as it came, so `"7"`, `7.0`
    or `true` would reach the provider (and the hold's arithmetic) as they are."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


class StrictFloatField(serializers.FloatField):
    """A JSON number (not a string, not a boolean), finite."""

    def to_internal_value(self, data):
        if (
            isinstance(data, bool)
            or not isinstance(data, (int, float))
            or (isinstance(data, float) and not math.isfinite(data))
        ):  # a huge int compares exactly, unconverted
            self.fail("invalid")
        return data


# No output cap of any model comes near it; a bigger one would only be refused later, by a price too large to hold.
MAX_OUTPUT_TOKENS = 2**31 - 1
INT64 = 2**63 - 1
_SURROGATES = re.compile("[\ud800-\udfff]")  # lone ones: JSON can carry them, DRF's CharField refuses them


class ChatCompletionRequest(serializers.Serializer):
    """The fields the hub acts on. Everything else passes to the provider as sent."""

    model = serializers.CharField(max_length=200)
    messages = serializers.ListField(child=serializers.DictField(), allow_empty=False)
    stream = serializers.BooleanField(required=False, default=False)
    stream_options = serializers.DictField(required=False, allow_null=True)
    max_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_OUTPUT_TOKENS)
    max_completion_tokens = StrictIntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_OUTPUT_TOKENS
    )
    n = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=128)
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=1)
    presence_penalty = StrictFloatField(required=False, allow_null=True, min_value=-2, max_value=2)
    frequency_penalty = StrictFloatField(required=False, allow_null=True, min_value=-2, max_value=2)
    seed = StrictIntegerField(required=False, allow_null=True, min_value=-INT64 - 1, max_value=INT64)
    top_logprobs = StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=20)

    # The fields above whose values plainly_valid checks itself: (name, kind, lowest, highest).
    _NUMBERS = (
        ("max_tokens", int, 1, MAX_OUTPUT_TOKENS),
        ("max_completion_tokens", int, 1, MAX_OUTPUT_TOKENS),
        ("n", int, 1, 128),
        ("temperature", float, 0, 2),
        ("top_p", float, 0, 1),
        ("presence_penalty", float, -2, 2),
        ("frequency_penalty", float, -2, 2),
        ("seed", int, -INT64 - 1, INT64),
        ("top_logprobs", int, 0, 20),
    )

    def plainly_valid(self, body) -> bool:
        """True when the body is plainly what the fields accept, checked without DRF's machinery (which costs
        more per request than the relay's own work); False sends it to run_validation, for its verdict and
        its error. Never True for a body run_validation would refuse: tests/test_chat_validation.py checks
        that on generated bodies."""
        if type(body) is not dict:
            return False
        model = body.get("model")
        if (
            type(model) is not str
            or not 0 < len(model) <= 200
            or model.strip() != model
            or "\x00" in model
            or _SURROGATES.search(model)
        ):
            return False
        messages = body.get("messages")
        if type(messages) is not list or not messages:
            return False
        for message in messages:
            if type(message) is not dict or type(role := message.get("role")) is not str or role not in ROLES:
                return False
        if "stream" in body and type(body["stream"]) is not bool:
            return False
        if body.get("stream_options") is not None and type(body["stream_options"]) is not dict:
            return False
        for name, kind, lowest, highest in self._NUMBERS:
            value = body.get(name)
            if value is None:
                continue
            if type(value) is int or (kind is float and type(value) is float and math.isfinite(value)):
                if not lowest <= value <= highest:
                    return False
            else:
                return False
        return True

    def validate_messages(self, messages):
        # A plain loop: a nested serializer per message costs more than the relay.
        for index, message in enumerate(messages):
            role = message.get("role")
            if not isinstance(role, str) or role not in ROLES:  # a list or object is not hashable: no `in`
                raise serializers.ValidationError({f"[{index}].role": f"must be one of {', '.join(sorted(ROLES))}"})
        return messages


class EmbeddingsRequest(serializers.Serializer):
    model = serializers.CharField(max_length=200)
    input = serializers.JSONField()
    encoding_format = serializers.ChoiceField(choices=["float", "base64"], required=False)
    dimensions = StrictIntegerField(required=False, min_value=1, max_value=65536)

    def validate_input(self, value):
        # OpenAI's four forms: a string, strings, token ids, or lists of token ids; never empty.
        def tokens(v):
            return isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool) for t in v)

        if isinstance(value, str) and value:
            return value
        if (
            isinstance(value, list)
            and 0 < len(value) <= 2048
            and (all(isinstance(v, str) and v for v in value) or tokens(value) or all(tokens(v) for v in value))
        ):
            return value
        raise serializers.ValidationError(
            "must be a non-empty string, a list of up to 2048 non-empty strings, a list of token ids, "
            "or a list of lists of token ids"
        )


class SpeechRequest(serializers.Serializer):
    model = serializers.CharField(max_length=200)
    input = serializers.CharField(max_length=4096, trim_whitespace=False)
    voice = serializers.CharField(max_length=100)
    response_format = serializers.ChoiceField(choices=["mp3", "opus", "aac", "flac", "wav", "pcm"], required=False)
    speed = StrictFloatField(required=False, min_value=0.25, max_value=4.0)


class ImageRequest(serializers.Serializer):
    """Generations and edits (JSON or multipart: the values arrive as strings and are coerced).

    What each model accepts (sizes, qualities, n, …) is checked once the model
    is known (hub/images.py); here only the shapes.
    """

    model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    prompt = serializers.CharField(trim_whitespace=False)
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=10)
    size = serializers.CharField(max_length=20, required=False, allow_null=True)
    quality = serializers.CharField(max_length=20, required=False, allow_null=True)
    # The metaclass takes declared fields off the class: no clash with Field.style, as the stubs think.
    style = serializers.CharField(max_length=20, required=False, allow_null=True)  # type: ignore[assignment]
    response_format = serializers.ChoiceField(choices=["url", "b64_json"], required=False, allow_null=True)
    user = serializers.CharField(max_length=256, required=False)
    background = serializers.ChoiceField(choices=["transparent", "opaque", "auto"], required=False)
    output_format = serializers.ChoiceField(choices=["png", "jpeg", "webp"], required=False)
    output_compression = serializers.IntegerField(required=False, min_value=0, max_value=100)
    moderation = serializers.ChoiceField(choices=["low", "auto"], required=False)
    input_fidelity = serializers.ChoiceField(choices=["high", "low"], required=False)
