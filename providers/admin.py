import time
from datetime import datetime
from datetime import timezone as dt_timezone

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html

from accounts.admin import AuditedAdmin
from billing.models import ModelRate

from .models import CatalogModel, Credential, ModelRoute, Provider
from .redaction import scrub


def _secret_of(credential: Credential) -> str:
    """The secret to scrub from what is shown of a credential ("" if it cannot be read: the shapes still go)."""
    try:
        return credential.get_secret() if credential.pk else ""
    except ValueError:
        return ""


class CredentialForm(forms.ModelForm):
    # Write-only: the stored secret is never rendered back, not even encrypted.
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False), required=False,
        help_text="The provider API key. Leave empty to keep the current one.",
    )

    class Meta:
        model = Credential
        fields = ["provider", "name", "enabled"]

    def clean(self):
        data = super().clean()
        if not self.instance.pk and not data.get("secret"):
            provider = data.get("provider")
            from .presets import get_preset

            if provider is not None and get_preset(provider.preset).needs_key:
                self.add_error("secret", "A new credential needs its secret.")
        return data

    def save(self, commit=True):
        if self.cleaned_data.get("secret"):
            self.instance.set_secret(self.cleaned_data["secret"])
        elif not self.instance.encrypted_secret:
            self.instance.set_secret("")
        return super().save(commit)


class CredentialInline(admin.TabularInline):
    model = Credential
    form = CredentialForm
    extra = 0
    fields = ["name", "secret", "secret_hint", "enabled"]
    readonly_fields = ["secret_hint"]


@admin.register(Provider)
class ProviderAdmin(AuditedAdmin):
    list_display = ["name", "kind", "preset", "base_url", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    inlines = [CredentialInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(Credential)
class CredentialAdmin(AuditedAdmin):
    form = CredentialForm
    list_display = ["__str__", "secret_hint", "enabled", "rotation", "last_check", "updated_at"]
    list_filter = ["provider", "enabled"]
    fields = ["provider", "name", "secret", "secret_hint", "enabled", "weight", "priority", "max_concurrency",
              "rpm_limit", "rotation", "last_check"]
    readonly_fields = ["secret_hint", "rotation", "last_check"]
    actions = ["test_now"]

    @admin.display(description="In rotation")
    def rotation(self, obj):
        from hub import route_health

        health = route_health.store().read(obj.pk) if obj.pk else route_health.Health()
        # Scrubbed again here: a reason cached by an older hub may quote a provider's echo of the key.
        reason, now = scrub(health.reason, _secret_of(obj)), time.time()
        if health.cooling(now):
            since = datetime.fromtimestamp(health.since or now, tz=dt_timezone.utc)
            return format_html("<b>out</b> for {}s more, since {}: {}", int(health.cooldown_until - now),
                               since.strftime("%Y-%m-%d %H:%M:%S UTC"), reason)
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
            state = f"failed: {scrub(obj.last_check_error, _secret_of(obj))}"
        return f"{obj.last_checked_at:%Y-%m-%d %H:%M:%S} {state}"

    @admin.action(description="Test now")
    def test_now(self, request, queryset):
        from hub.health_checks import check

        for credential in queryset.select_related("provider"):
            check(credential)
            level = messages.SUCCESS if credential.last_check_ok else messages.ERROR
            self.message_user(request, f"{credential}: {self.last_check(credential)}", level)


class ModelRateInline(admin.StackedInline):
    model = ModelRate
    can_delete = False
    fields = [("input_cost", "cached_input_cost", "image_input_cost", "output_cost", "margin"),
              ("input_price", "cached_input_price", "image_input_price", "output_price"),
              ("image_cost", "image_price", "audio_second_cost", "audio_second_price"),
              ("image_costs", "image_prices")]


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
