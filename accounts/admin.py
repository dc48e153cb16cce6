from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db import transaction

from . import services
from .models import ApiKey, Membership, Organization, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    pass


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_active", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            from billing.services import account_open

            account_open(organization=obj)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "organization", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["organization"]
    search_fields = ["name", "prefix", "organization__name"]
    fields = ["organization", "name", "expires_at", "prefix", "created_by", "created_at", "revoked_at", "last_used_at"]
    readonly_fields = ["prefix", "created_by", "created_at", "revoked_at", "last_used_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (["organization"] if obj else [])

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        with transaction.atomic():
            api_key, raw = services.api_key_create(
                organization=obj.organization, name=obj.name, created_by=request.user, expires_at=obj.expires_at
            )
        obj.pk = api_key.pk
        # Shown once: only the hash is kept.
        messages.warning(request, f"Copy this key now, it will not be shown again: {raw}")

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")
