from django import forms
from django.contrib import admin

from . import services
from .models import (
    AutoRecharge,
    CreditAccount,
    LedgerEntry,
    ModelRate,
    Payment,
    StripeEvent,
    UsageRecord,
)


@admin.register(ModelRate)
class ModelRateAdmin(admin.ModelAdmin):
    list_display = ["model", "input_cost", "output_cost", "margin", "input_price", "output_price", "updated_at"]
    search_fields = ["model__public_id"]


class LedgerInline(admin.TabularInline):
    model = LedgerEntry
    fields = ["created_at", "kind", "amount", "description", "created_by"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at", "-id"]
    max_num = 0
    show_change_link = True


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    list_display = ["organization", "balance", "updated_at"]
    search_fields = ["organization__name"]
    readonly_fields = ["organization", "balance", "updated_at"]
    inlines = [LedgerInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class LedgerEntryForm(forms.ModelForm):
    kind = forms.ChoiceField(choices=[(LedgerEntry.Kind.GRANT, "Grant"), (LedgerEntry.Kind.ADJUSTMENT, "Adjustment")])

    class Meta:
        model = LedgerEntry
        fields = ["account", "kind", "amount", "description"]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    """Credit moves by adding an entry; entries themselves never change."""

    form = LedgerEntryForm
    list_display = ["created_at", "account", "kind", "amount", "description", "created_by"]
    list_filter = ["kind"]
    search_fields = ["account__organization__name", "description", "idempotency_key"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["account", "kind", "amount", "description", "idempotency_key", "usage_record", "created_by",
                "created_at"]

    def get_fields(self, request, obj=None):
        return self.get_readonly_fields(request, obj) or ["account", "kind", "amount", "description"]

    def save_model(self, request, obj, form, change):
        entry = services.credit_grant(
            organization=obj.account.organization, amount=obj.amount, kind=obj.kind,
            description=obj.description, created_by=request.user,
        )
        obj.pk = entry.pk

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["created_at", "organization", "model_name", "status", "prompt_tokens", "completion_tokens",
                    "price", "latency_ms"]
    list_filter = ["status", "endpoint", "stream"]
    search_fields = ["request_id", "model_name", "organization__name"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only Stripe's events and the services write."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "source", "amount", "currency", "status", "amount_refunded",
                    "requested_by"]
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
    readonly_fields = ["organization", "stripe_customer_id", "stripe_payment_method_id", "pending_payment",
                       "disabled_reason", "updated_at"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
