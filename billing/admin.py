from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from accounts.admin import AuditedAdmin, forget_all_keys
from accounts.audit import Actor, audit_record

from . import grants, invoices, modes, pricing, services
from .api import invoice_context
from .models import (
    AutoRecharge,
    CreditAccount,
    CreditGrant,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    LowBalanceAlert,
    ModelRate,
    Payment,
    PriceChange,
    PricePlan,
    StripeEvent,
    UsageRecord,
    UsageRollup,
    UsageRollupState,
)


@admin.register(ModelRate)
class ModelRateAdmin(AuditedAdmin):
    """Edits go through billing.pricing, so the price history records who made them."""

    list_display = ["model", "input_cost", "output_cost", "margin", "input_price", "output_price", "updated_at"]
    search_fields = ["model__public_id"]
    readonly_fields = ["price_history"]

    @admin.display(description="Price history (latest 10)")
    def price_history(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        changes = PriceChange.objects.filter(model_id=obj.model_id)[:10]
        return format_html_join(
            "\n", "<div>{} {} by {} ({}): {} → {}</div>",
            ((c.changed_at.strftime("%Y-%m-%d %H:%M"), c.action, c.changed_by or "-", c.source or "-",
              _rate_text(c.old), _rate_text(c.new)) for c in changes),
        ) or "-"

    def save_model(self, request, obj, form, change):
        pricing.rate_save(rate=obj, changed_by=request.user, source="admin")

    def delete_model(self, request, obj):
        pricing.rate_delete(rate=obj, changed_by=request.user, source="admin")

    def delete_queryset(self, request, queryset):
        for rate in queryset:
            pricing.rate_delete(rate=rate, changed_by=request.user, source="admin")


def _rate_text(values: dict) -> str:
    if not values:
        return "none"
    return ", ".join(f"{name} {values.get(name)}" for name in pricing.RATE_FIELDS)


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
    list_display = ["organization", "balance", "held", "billing_mode", "price_plan", "updated_at"]
    list_filter = ["billing_mode", "price_plan"]
    search_fields = ["organization__name"]
    fields = ["organization", "balance", "held", "price_plan", "billing_mode", "invoice_auto_charge", "updated_at"]
    readonly_fields = ["organization", "balance", "held", "updated_at"]
    inlines = [LedgerInline]  # and, below, its low-balance alert and grants with an expiry

    def save_model(self, request, obj, form, change):
        # Only the fields edited here: a whole-row save would write back the
        # balance read when the form was opened over the ledger's newer one.
        changed = [name for name in ("price_plan", "invoice_auto_charge") if name in form.changed_data]
        if changed:
            obj.save(update_fields=[*changed, "updated_at"])
        if "billing_mode" in form.changed_data:
            modes.billing_mode_set(account=obj, mode=obj.billing_mode,
                                   actor=Actor(user=request.user, ip_address=request.META.get("REMOTE_ADDR") or None))
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
        return ["account", "kind", "amount", "description", "idempotency_key", "request_id", "model_name",
                "usage_at", "usage_record", "created_by", "created_at"]

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
    list_display = ["created_at", "organization", "model_name", "served_model", "status", "prompt_tokens",
                    "completion_tokens", "price", "billing_mode", "latency_ms"]
    list_filter = ["status", "billing_mode", "endpoint", "stream"]
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


@admin.register(PriceChange)
class PriceChangeAdmin(ReadOnlyAdmin):
    """The price history: appended by billing.pricing on every rate change, never edited."""

    list_display = ["changed_at", "model_name", "action", "changed_by", "source", "old", "new"]
    list_filter = ["action", "source"]
    search_fields = ["model_name"]
    date_hierarchy = "changed_at"

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    """Usage per organisation, key and model, per hour and day; rebuilt by billing.tasks.roll_up_usage."""

    list_display = ["period_start", "granularity", "organization", "api_key", "model_name", "billing_mode",
                    "requests", "prompt_tokens", "completion_tokens", "cache_read_tokens", "cost", "price"]
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


class LowBalanceAlertInline(admin.StackedInline):
    model = LowBalanceAlert
    fields = ["enabled", "threshold", "notified_at"]
    readonly_fields = ["notified_at"]
    can_delete = False
    extra = 0


class CreditGrantInline(admin.TabularInline):
    model = CreditGrant
    fk_name = "account"
    fields = ["created_at", "amount", "expires_at", "lapsed_at", "lapsed_amount"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True


CreditAccountAdmin.inlines = [LowBalanceAlertInline, CreditGrantInline, LedgerInline]


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
        from datetime import timedelta

        from django.utils import timezone

        data = super().clean()
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
        return ["account", "entry", "amount", "expires_at", "remaining", "lapsed_at", "lapsed_amount",
                "lapse_entry", "created_at"]

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
            organization=data["account"].organization, amount=data["amount"], expires_at=data["expires_at"],
            description=data["description"], created_by=request.user)
        audit_record(action="admin.creditgrant.add", organization=data["account"].organization, target=grant,
                     actor=Actor(user=request.user, ip_address=request.META.get("REMOTE_ADDR") or None),
                     details={"amount": str(grant.amount), "expires_at": grant.expires_at.isoformat(),
                              "description": data["description"]})
        obj.pk = grant.pk

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PricePlan)
class PricePlanAdmin(admin.ModelAdmin):
    """Deals for some organisations: a discount on every price, or a margin of their own over cost."""

    list_display = ["name", "discount", "margin", "created_at"]
    search_fields = ["name"]


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    fields = ["model_name", "requests", "prompt_tokens", "completion_tokens", "images", "audio_seconds", "amount"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    """Issued by billing.tasks.issue_invoices; an operator may only mark an open one paid (outside Stripe) or void,
    and not while its card charge waits for Stripe's answer or its payment is disputed."""

    list_display = ["number", "organization", "period_start", "status", "total", "issued_at", "paid_at",
                    "payment_error"]
    list_filter = ["status"]
    search_fields = ["number", "organization__name", "stripe_payment_intent_id"]
    date_hierarchy = "period_start"
    inlines = [InvoiceLineInline]
    actions = ["mark_paid", "mark_void"]

    def get_readonly_fields(self, request, obj=None):
        return ["printable", *super().get_readonly_fields(request, obj)]

    def save_model(self, request, obj, form, change):
        pass  # nothing is edited in place (a whole-row save could undo a webhook's "paid"); see the actions

    def save_related(self, request, form, formsets, change):
        pass

    @admin.display(description="Invoice")
    def printable(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return format_html('<a href="{}" target="_blank">Printable invoice</a> (members see it at {})',
                           reverse("admin:billing_invoice_print", args=[obj.pk]), invoices.invoice_path(obj))

    def get_urls(self):
        view = self.admin_site.admin_view(self.print_view)
        return [path("<int:invoice_id>/print/", view, name="billing_invoice_print"), *super().get_urls()]

    def print_view(self, request, invoice_id):
        invoice = get_object_or_404(Invoice.objects.select_related("organization"), pk=invoice_id)
        if not self.has_view_permission(request, invoice):
            raise PermissionDenied
        return TemplateResponse(request, "billing/invoice.html", invoice_context(invoice))

    def _mark(self, request, queryset, status):
        actor = Actor(user=request.user, ip_address=request.META.get("REMOTE_ADDR") or None)
        marked, refused = 0, []
        for invoice in queryset.select_related("organization"):
            try:
                marked += invoices.invoice_mark(invoice=invoice, status=status, actor=actor)
            except invoices.PaymentInFlight as exc:
                refused.append(str(exc))
        self.message_user(request, f"Marked {marked} open invoice(s) {status}; others were left as they were.")
        for reason in refused:
            self.message_user(request, f"Not marked {status}: {reason}.", level=messages.ERROR)

    @admin.action(description="Mark selected open invoices paid (outside Stripe)", permissions=["change"])
    def mark_paid(self, request, queryset):
        self._mark(request, queryset, Invoice.Status.PAID)

    @admin.action(description="Void selected open invoices", permissions=["change"])
    def mark_void(self, request, queryset):
        self._mark(request, queryset, Invoice.Status.VOID)
