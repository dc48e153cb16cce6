"""Credit bought through Stripe: payments, webhook events and auto-recharge."""

from django.contrib import admin

from ..models import AutoRecharge, Payment, StripeEvent
from .base import ReadOnlyAdmin


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "organization",
        "source",
        "amount",
        "currency",
        "status",
        "amount_refunded",
        "requested_by",
    ]
    list_filter = ["status", "source"]
    search_fields = ["organization__name", "stripe_checkout_session_id", "stripe_payment_intent_id"]
    date_hierarchy = "created_at"

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "type", "stripe_id", "processed_at", "attempts", "outcome"]
    list_filter = ["type"]
    search_fields = ["stripe_id", "outcome"]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AutoRecharge)
class AutoRechargeAdmin(admin.ModelAdmin):
    """An operator may switch auto-recharge off or on and change its amounts; the rest is Stripe's."""

    list_display = ["organization", "enabled", "threshold", "amount", "pending_payment", "disabled_reason"]
    list_filter = ["enabled"]
    search_fields = ["organization__name", "stripe_customer_id"]
    readonly_fields = [
        "organization",
        "stripe_customer_id",
        "stripe_payment_method_id",
        "pending_payment",
        "disabled_reason",
        "updated_at",
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
