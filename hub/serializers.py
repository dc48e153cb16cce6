from rest_framework import serializers

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)


class ChatCompletionRequest(serializers.Serializer):
    """The fields the hub acts on. Everything else passes to the provider as sent."""

    model = serializers.CharField(max_length=200)
    messages = MessageSerializer(many=True, allow_empty=False)
    stream = serializers.BooleanField(required=False, default=False)
    stream_options = serializers.DictField(required=False, allow_null=True)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=128)
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
