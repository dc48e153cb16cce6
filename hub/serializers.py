from rest_framework import serializers

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class ChatCompletionRequest(serializers.Serializer):
    """The fields the hub acts on. Everything else passes to the provider as sent."""

    model = serializers.CharField(max_length=200)
    messages = serializers.ListField(child=serializers.DictField(), allow_empty=False)
    stream = serializers.BooleanField(required=False, default=False)
    stream_options = serializers.DictField(required=False, allow_null=True)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=128)
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)

    def validate_messages(self, messages):
        # A plain loop: a nested serializer per message costs more than the relay.
        for index, message in enumerate(messages):
            if message.get("role") not in ROLES:
                raise serializers.ValidationError(
                    {f"[{index}].role": f"must be one of {', '.join(sorted(ROLES))}"})
        return messages
