"""Usage records and rollups: read-only, written by the gateway and billing.rollups."""

from django.contrib import admin

from ..models import UsageRecord, UsageRollup, UsageRollupState
from .base import ReadOnlyAdmin


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "organization",
        "model_name",
        "served_model",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "price",
        "billing_mode",
        "latency_ms",
    ]
    # Provider and credential: the operator overview's figures link to the records behind them (hub/admin_overview.py).
    list_filter = ["status", "billing_mode", "provider", "credential", "endpoint", "stream"]
    search_fields = ["request_id", "model_name", "served_model", "organization__name"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    """Usage per organisation, key and model, per hour and day; rebuilt by billing.tasks.roll_up_usage."""

    list_display = [
        "period_start",
        "granularity",
        "organization",
        "api_key",
        "model_name",
        "billing_mode",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "cache_read_tokens",
        "cost",
        "price",
    ]
    list_filter = ["granularity", "billing_mode"]
    search_fields = ["organization__name", "model_name"]
    date_hierarchy = "period_start"

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(UsageRollupState)
class UsageRollupStateAdmin(ReadOnlyAdmin):
    list_display = ["rolled_up_at", "pruned_through", "pruned_at"]

    def has_change_permission(self, request, obj=None):
        return False
