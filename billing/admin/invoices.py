"""Postpaid invoices: read-only but for marking an open one paid or void, and their printable view."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.audit import Actor

from ..api import invoice_context
from ..invoices import collecting, issuing
from ..models import Invoice, InvoiceLine
from .base import ReadOnlyAdmin


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    fields = readonly_fields = (
        "model_name",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "images",
        "audio_seconds",
        "amount",
    )
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    """Issued by billing.tasks.issue_invoices; an operator may only mark an open one paid (outside Stripe) or void,
    and not while its card charge waits for Stripe's answer or its payment is disputed."""

    list_display = [
        "number",
        "organization",
        "period_start",
        "status",
        "total",
        "issued_at",
        "paid_at",
        "payment_error",
    ]
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
        return format_html(
            '<a href="{}" target="_blank">Printable invoice</a> (members see it at {})',
            reverse("admin:billing_invoice_print", args=[obj.pk]),
            issuing.invoice_path(obj),
        )

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
                marked += collecting.invoice_mark(invoice=invoice, status=status, actor=actor)
            except collecting.PaymentInFlight as exc:
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
