"""The rate card, its price history and price plans."""

from django.contrib import admin
from django.utils.html import format_html_join

from accounts.admin import AuditedAdmin

from .. import pricing
from ..models import ModelRate, PriceChange, PricePlan
from .base import ReadOnlyAdmin


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
        return (
            format_html_join(
                "\n",
                "<div>{} {} by {} ({}): {} → {}</div>",
                (
                    (
                        c.changed_at.strftime("%Y-%m-%d %H:%M"),
                        c.action,
                        c.changed_by or "-",
                        c.source or "-",
                        _rate_text(c.old),
                        _rate_text(c.new),
                    )
                    for c in changes
                ),
            )
            or "-"
        )

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


@admin.register(PriceChange)
class PriceChangeAdmin(ReadOnlyAdmin):
    """The price history: appended by billing.pricing on every rate change, never edited."""

    list_display = ["changed_at", "model_name", "action", "changed_by", "source", "old", "new"]
    list_filter = ["action", "source"]
    search_fields = ["model_name"]
    date_hierarchy = "changed_at"

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PricePlan)
class PricePlanAdmin(admin.ModelAdmin):
    """Deals for some organisations: a discount on every price, or a margin of their own over cost."""

    list_display = ["name", "discount", "margin", "created_at"]
    search_fields = ["name"]
