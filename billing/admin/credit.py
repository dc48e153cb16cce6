"""Credit accounts, their ledger, grants with an expiry and low-balance alerts."""

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.utils import timezone

from accounts.admin import forget_all_keys
from accounts.audit import Actor, audit_record

from .. import grants, modes, services
from ..models import CreditAccount, CreditGrant, CreditHold, LedgerEntry, LowBalanceAlert


class LedgerInline(admin.TabularInline):
    model = LedgerEntry
    fields = readonly_fields = ("created_at", "kind", "amount", "description", "created_by")
    extra = 0
    can_delete = False
    ordering = ["-created_at", "-id"]
    max_num = 0
    show_change_link = True


class LowBalanceAlertInline(admin.StackedInline):
    model = LowBalanceAlert
    fields = ["enabled", "threshold", "notified_at"]
    readonly_fields = ["notified_at"]
    can_delete = False
    extra = 0


class CreditGrantInline(admin.TabularInline):
    model = CreditGrant
    fk_name = "account"
    fields = readonly_fields = ("created_at", "amount", "expires_at", "lapsed_at", "lapsed_amount")
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    list_display = ["organization", "balance", "held", "billing_mode", "price_plan", "updated_at"]
    list_filter = ["billing_mode", "price_plan"]
    search_fields = ["organization__name"]
    fields = ["organization", "balance", "held", "price_plan", "billing_mode", "invoice_auto_charge", "updated_at"]
    readonly_fields = ["organization", "balance", "held", "updated_at"]
    inlines = [LowBalanceAlertInline, CreditGrantInline, LedgerInline]

    def save_model(self, request, obj, form, change):
        # Only the fields edited here: a whole-row save would write back the
        # balance read when the form was opened over the ledger's newer one.
        changed = [name for name in ("price_plan", "invoice_auto_charge") if name in form.changed_data]
        if changed:
            obj.save(update_fields=[*changed, "updated_at"])
        if "billing_mode" in form.changed_data:
            modes.billing_mode_set(
                account=obj,
                mode=obj.billing_mode,
                actor=Actor(user=request.user, ip_address=request.META.get("REMOTE_ADDR") or None),
            )
        forget_all_keys()  # a new price plan applies at once in this process

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
    search_fields = ["account__organization__name", "description", "idempotency_key", "request_id"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # A usage charge is its own receipt (request, model, when): its usage
        # record is empty once retention archived it.
        return [
            "account",
            "kind",
            "amount",
            "description",
            "idempotency_key",
            "request_id",
            "model_name",
            "usage_at",
            "usage_record",
            "created_by",
            "created_at",
        ]

    def get_fields(self, request, obj=None):
        return self.get_readonly_fields(request, obj) or ["account", "kind", "amount", "description"]

    def save_model(self, request, obj, form, change):
        entry = services.credit_grant(
            organization=obj.account.organization,
            amount=obj.amount,
            kind=obj.kind,
            description=obj.description,
            created_by=request.user,
        )
        obj.pk = entry.pk

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


class CreditGrantForm(forms.ModelForm):
    valid_days = forms.IntegerField(min_value=1, required=False, help_text="Or an expiry date below")
    description = forms.CharField(max_length=300, initial="Promotional credit")

    class Meta:
        model = CreditGrant
        fields = ["account", "amount", "valid_days", "expires_at", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_at"].required = False

    def clean(self):
        data = super().clean() or {}
        if data.get("valid_days"):
            data["expires_at"] = timezone.now() + timedelta(days=data["valid_days"])
        if not data.get("expires_at"):
            raise forms.ValidationError("Give the days it is valid or an expiry date.")
        if data["expires_at"] <= timezone.now():
            raise forms.ValidationError({"expires_at": "In the future."})
        if data.get("amount") is not None and data["amount"] <= 0:
            raise forms.ValidationError({"amount": "A grant is positive."})
        return data


@admin.register(CreditGrant)
class CreditGrantAdmin(admin.ModelAdmin):
    """Operators grant credit with an expiry here; it is written through billing.grants, never edited."""

    form = CreditGrantForm
    list_display = ["created_at", "account", "amount", "expires_at", "lapsed_at", "lapsed_amount"]
    list_filter = ["lapsed_at"]
    search_fields = ["account__organization__name", "entry__description"]
    date_hierarchy = "expires_at"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["account", "amount", "valid_days", "expires_at", "description"]
        return [
            "account",
            "entry",
            "amount",
            "expires_at",
            "remaining",
            "lapsed_at",
            "lapsed_amount",
            "lapse_entry",
            "created_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    @admin.display(description="Left now")
    def remaining(self, obj):
        if obj.lapsed_amount is not None:
            return "-"
        return grants.remainders(obj.account_id).get(obj.pk, "-")

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        grant = grants.grant_with_expiry(
            organization=data["account"].organization,
            amount=data["amount"],
            expires_at=data["expires_at"],
            description=data["description"],
            created_by=request.user,
        )
        audit_record(
            action="admin.creditgrant.add",
            organization=data["account"].organization,
            target=grant,
            actor=Actor(user=request.user, ip_address=request.META.get("REMOTE_ADDR") or None),
            details={
                "amount": str(grant.amount),
                "expires_at": grant.expires_at.isoformat(),
                "description": data["description"],
            },
        )
        obj.pk = grant.pk

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CreditHold)
class CreditHoldAdmin(admin.ModelAdmin):
    """Credit reserved for requests in flight (billing/services.py): read only; expired ones are released by
    billing.tasks.release_expired_holds."""

    list_display = ["request_id", "account", "amount", "created_at", "expires_at"]
    list_filter = ["expires_at"]
    search_fields = ["request_id", "account__organization__name"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
