import ipaddress

from django.db.backends.base.operations import BaseDatabaseOperations
from django.utils.translation import gettext as _
from rest_framework import serializers

from billing.money import max_amount

from .models import (
    RESPONSE_CACHE_MAX_SECONDS,
    ApiKey,
    AuditEvent,
    BudgetPeriod,
    Invitation,
    KeyScope,
    Membership,
    Organization,
    Role,
    Team,
    User,
)

# A PositiveIntegerField's range where it is narrowest: PostgreSQL's `integer` (SQLite would take 2**63 - 1).
POSITIVE_INT_MAX = BaseDatabaseOperations.integer_field_ranges["PositiveIntegerField"][1]
LIMIT_FIELDS = (
    "allowed_models",
    "allowed_ips",
    "rpm_limit",
    "tpm_limit",
    "budget",
    "budget_period",
    "response_cache_seconds",
)


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True)

    class Meta:
        model = Organization
        fields = ["slug", "name", "role"]


class OrganizationUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=Organization._meta.get_field("name").max_length or 200)


class ApiKeySerializer(serializers.ModelSerializer):
    created_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scope",
            "team",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "is_active",
            *LIMIT_FIELDS,
        ]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=KeyScope.choices, default=KeyScope.INFERENCE)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    # The key's limits (hub/policy.py); empty ones default to the organisation's.
    allowed_models = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=100)
    allowed_ips = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=100)
    # Bounded by their columns, so an out-of-range value is a 400 naming the field, not the database's error.
    rpm_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=POSITIVE_INT_MAX)
    tpm_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=POSITIVE_INT_MAX)
    budget = serializers.DecimalField(
        required=False, allow_null=True, max_digits=19, decimal_places=10, min_value=0, max_value=max_amount()
    )
    budget_period = serializers.ChoiceField(choices=BudgetPeriod.choices, required=False)
    response_cache_seconds = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=RESPONSE_CACHE_MAX_SECONDS
    )

    def validate_allowed_ips(self, value):
        try:
            return [str(ipaddress.ip_network(v, strict=False)) for v in value]
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class ApiKeyTeamSerializer(serializers.Serializer):
    team = serializers.IntegerField(allow_null=True, help_text="A team of the organisation, or null for none")


class TeamSerializer(serializers.ModelSerializer):
    keys = serializers.SerializerMethodField(help_text="Ids of the team's keys")

    class Meta:
        model = Team
        fields = ["id", "name", "keys", "created_at"]
        read_only_fields = fields

    def get_keys(self, team) -> list[int]:
        return sorted(key.pk for key in team.api_keys.all())


class TeamNameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)

    def validate_name(self, value):
        if not value.strip():
            raise serializers.ValidationError(_("A team needs a name."))
        return value.strip()


class NewApiKeySerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The raw key, shown this once: only its hash is kept.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.pk", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user_id", "username", "email", "role", "created_at"]
        read_only_fields = fields


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationSerializer(serializers.ModelSerializer):
    invited_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    status = serializers.CharField(read_only=True)

    class Meta:
        model = Invitation
        fields = [
            "id",
            "email",
            "role",
            "status",
            "invited_by",
            "created_at",
            "expires_at",
            "accepted_at",
            "declined_at",
            "revoked_at",
        ]
        read_only_fields = fields


class InvitationCreateSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.DEVELOPER)


class InvitationPreviewSerializer(serializers.ModelSerializer):
    """What the invitee sees from the email's link, before accepting."""

    organization = serializers.CharField(source="organization.name", read_only=True)
    status = serializers.CharField(read_only=True)

    class Meta:
        model = Invitation
        fields = ["organization", "email", "role", "status", "expires_at"]
        read_only_fields = fields


class DateRangeSerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First UTC day (default: 30 days before end)")
    end = serializers.DateField(required=False, help_text="Last UTC day, included (default: today)")

    def validate(self, data):
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise serializers.ValidationError({"start": "start must not be after end"})
        if start and end and (end - start).days > 366:
            raise serializers.ValidationError({"start": "a range covers at most 366 days"})
        return data


class UsageRecordSerializer(serializers.Serializer):
    request_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    model = serializers.CharField(source="model_name", help_text="The model asked for, as the request named it")
    served_model = serializers.CharField(
        help_text="The model that served (a fallback's, when one did), whose price it paid"
    )
    api_key_id = serializers.IntegerField(allow_null=True)
    endpoint = serializers.CharField()
    stream = serializers.BooleanField()
    cache_hit = serializers.BooleanField(
        read_only=True, help_text="Answered from the hub's response cache, not by a provider"
    )
    status = serializers.CharField()
    http_status = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    price = serializers.DecimalField(max_digits=30, decimal_places=10)
    latency_ms = serializers.IntegerField()


class UsageTotalSerializer(serializers.Serializer):
    day = serializers.DateField()
    model = serializers.CharField(source="served_model", help_text="The model that served")
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    price = serializers.DecimalField(max_digits=30, decimal_places=10)


class BalanceSerializer(serializers.Serializer):
    balance = serializers.DecimalField(max_digits=30, decimal_places=10)
    currency = serializers.CharField()
    updated_at = serializers.DateTimeField()


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)
    actor_key_id = serializers.IntegerField(allow_null=True, read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "actor_key_id",
            "action",
            "target_type",
            "target_id",
            "details",
            "ip_address",
        ]
        read_only_fields = fields
