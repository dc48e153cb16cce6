"""The gateway's part of the operator admin: what shows route health (hub/route_health.py) or spans
providers and billing (a catalogue model with its rate; accounts and billing: hub/admin_accounts.py).
The models stay the providers app's."""

import time
from datetime import UTC, datetime

from django.contrib import admin, messages
from django.utils.html import format_html

from accounts.admin import AuditedAdmin
from accounts.models import Organization, Team
from billing.models import ModelRate
from billing.ratecard import PAIRS, TIERS
from providers.admin import CredentialForm, secret_of
from providers.models import CatalogModel, Credential, ModelRoute
from providers.redaction import scrub

from . import admin_accounts, admin_overview, route_health
from .health_checks import check

# Accounts' team admin, with the cost and price billing knows of the team.
admin.site.unregister(Team)
admin.site.register(Team, admin_accounts.TeamCostAdmin)
# And its organisation admin with the usage chart, balance history, keys and recent errors.
admin.site.unregister(Organization)
admin.site.register(Organization, admin_overview.OrganizationOverviewAdmin)


@admin.register(Credential)
class CredentialAdmin(AuditedAdmin):
    form = CredentialForm
    list_display = ["__str__", "secret_hint", "enabled", "rotation", "last_check", "updated_at"]
    list_filter = ["provider", "enabled"]
    fields = [
        "provider",
        "name",
        "secret",
        "secret_hint",
        "enabled",
        "weight",
        "priority",
        "max_concurrency",
        "rpm_limit",
        "rotation",
        "last_check",
    ]
    readonly_fields = ["secret_hint", "rotation", "last_check"]
    actions = ["test_now"]

    @admin.display(description="In rotation")
    def rotation(self, obj):
        health = route_health.store().read(obj.pk) if obj.pk else route_health.Health()
        # Scrubbed again here: a reason cached by an older hub may quote a provider's echo of the key.
        reason, now = scrub(health.reason, secret_of(obj)), time.time()
        if health.cooling(now):
            since = datetime.fromtimestamp(health.since or now, tz=UTC)
            return format_html(
                "<b>out</b> for {}s more, since {}: {}",
                int(health.cooldown_until - now),
                since.strftime("%Y-%m-%d %H:%M:%S UTC"),
                reason,
            )
        if health.failures:
            return f"in ({health.failures} failure(s) in a row: {reason})"
        return "in"

    @admin.display(description="Last check")
    def last_check(self, obj):
        if obj.last_checked_at is None:
            return "never"
        if obj.last_check_ok:
            state = f"ok in {obj.last_check_latency_ms} ms"
        else:
            state = f"failed: {scrub(obj.last_check_error, secret_of(obj))}"
        return f"{obj.last_checked_at:%Y-%m-%d %H:%M:%S} {state}"

    @admin.action(description="Test now")
    def test_now(self, request, queryset):
        for credential in queryset.select_related("provider"):
            check(credential)
            level = messages.SUCCESS if credential.last_check_ok else messages.ERROR
            self.message_user(request, f"{credential}: {self.last_check(credential)}", level)


class ModelRateInline(admin.StackedInline):
    model = ModelRate
    can_delete = False
    # The rate card's kinds (a new one shows up too): costs and the margin, their prices, the tier tables.
    fields = [
        (*(cost for cost, _ in PAIRS if cost not in TIERS), "margin"),
        tuple(price for cost, price in PAIRS if cost not in TIERS),
        TIERS,
    ]


class ModelRouteInline(admin.TabularInline):
    model = ModelRoute
    extra = 0
    fields = ["provider", "upstream_name", "weight", "priority", "enabled"]


@admin.register(CatalogModel)
class CatalogModelAdmin(AuditedAdmin):
    list_display = ["public_id", "alias", "served_by", "kind", "strategy", "enabled"]
    list_filter = ["routes__provider", "kind", "enabled"]
    search_fields = ["public_id", "alias", "routes__upstream_name"]
    inlines = [ModelRouteInline, ModelRateInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("routes__provider")

    @admin.display(description="Served by")
    def served_by(self, obj):
        return ", ".join(f"{r.provider.name}:{r.upstream_name}" for r in obj.routes.all()) or "—"
