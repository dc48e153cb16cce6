from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import addresses, services, teams
from .middleware import client_address
from .models import ApiKey, AuditEvent, Invitation, KeyScope, Membership, Organization, Team, User
from .serializers import LIMIT_FIELDS
from .signals import keys_changed_on_commit, organization_opened


def forget_key(hashed: str) -> None:
    keys_changed_on_commit(hashed)  # the gateway's key cache (hub/apps.py)


def forget_all_keys() -> None:
    keys_changed_on_commit()


def actor_of(request) -> services.Actor:
    return services.Actor(user=request.user, ip_address=addresses.client_address(request) or None)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    pass


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class AuditedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose bulk deletions reach the audit log too (see audit_admin_change below)."""

    def log_deletions(self, request, queryset):
        entries = super().log_deletions(request, queryset)
        # Always a list here: the stubs' single LogEntry is for log_actions(single_object=True).
        if isinstance(entries, list) and len(entries) > 1:
            for entry in entries:
                audit_admin_change(LogEntry, entry, created=True)
        return entries


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
    list_display = ["name", "slug", "is_active", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "is_active"]}),
        ("Default limits of its keys", {"fields": LIMIT_FIELDS}),
        ("Response cache", {"fields": ["response_cache_sampled"]}),
    ]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_all_keys()  # its keys' default limits apply at once in this process
        if not change:
            organization_opened.send(sender=Organization, organization=obj)  # billing opens its account


class ApiKeyForm(forms.ModelForm):
    # Optional in the form: a key is for inference unless the operator says otherwise.
    scope = forms.ChoiceField(choices=KeyScope.choices, initial=KeyScope.INFERENCE, required=False)

    class Meta:
        model = ApiKey
        fields = ["organization", "name", "scope", "team", "expires_at", *LIMIT_FIELDS]

    def clean_scope(self):
        return self.cleaned_data.get("scope") or KeyScope.INFERENCE


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = [
        "name",
        "prefix",
        "scope",
        "organization",
        "team",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["scope", "organization"]
    search_fields = ["name", "prefix", "organization__name", "team__name"]
    autocomplete_fields = ["team"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "organization",
                    "name",
                    "scope",
                    "team",
                    "expires_at",
                    "prefix",
                    "created_by",
                    "created_at",
                    "revoked_at",
                    "last_used_at",
                ]
            },
        ),
        ("Limits (empty: the organisation's)", {"fields": LIMIT_FIELDS}),
    ]
    readonly_fields = ["prefix", "created_by", "created_at", "revoked_at", "last_used_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (["organization", "scope"] if obj else [])

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            forget_key(obj.hashed_key)  # new limits apply at once in this process
            return
        with transaction.atomic():
            api_key, raw = services.api_key_create(
                organization=obj.organization,
                name=obj.name,
                created_by=request.user,
                expires_at=obj.expires_at,
                scope=obj.scope,
                actor=actor_of(request),
                limits={name: form.cleaned_data[name] for name in LIMIT_FIELDS if name in form.cleaned_data},
            )
            if obj.team_id:
                teams.api_key_team_set(api_key=api_key, team=obj.team, actor=actor_of(request))
        obj.pk = api_key.pk
        # Shown once: only the hash is kept.
        messages.warning(request, f"Copy this key now, it will not be shown again: {raw}")

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key, actor=actor_of(request))
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


class TeamKeyInline(admin.TabularInline):
    model = ApiKey
    fields = readonly_fields = ("name", "prefix", "scope", "revoked_at", "last_used_at")
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "keys (move a key from its own page)"


@admin.register(Team)
class TeamAdmin(AuditedAdmin):
    """Teams group keys so their cost is reported together (the cost columns: hub/admin_accounts.py)."""

    list_display = ["name", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "organization__name"]
    readonly_fields = ["created_at"]
    inlines = [TeamKeyInline]

    def get_fields(self, request, obj=None):
        return ["organization", "name"] + (["created_at"] if obj else [])

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (["organization"] if obj else [])


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ["email", "organization", "role", "status", "invited_by", "created_at", "expires_at"]
    list_filter = ["role"]
    search_fields = ["email", "organization__name"]
    exclude = ["hashed_token"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "actor_label", "action", "target_type", "target_id", "ip_address"]
    list_filter = ["action", "target_type"]
    search_fields = ["organization__name", "actor_label", "action", "target_id"]
    date_hierarchy = "created_at"


# Operator changes made in other apps' admins (credentials, prices, credits)
# reach the audit log through the admin's own LogEntry, written by every
# ModelAdmin for each addition, change and deletion of one object, with the
# operator's address from AuditContextMiddleware. The admin writes a bulk
# deletion's entries with bulk_create, which sends no signal: AuditedAdmin
# passes those on.
AUDITED_ADMIN_MODELS = {
    ("providers", "provider"),
    ("providers", "credential"),
    ("providers", "catalogmodel"),
    ("billing", "modelrate"),
    ("billing", "creditaccount"),
    ("billing", "ledgerentry"),
    ("accounts", "organization"),
    ("accounts", "team"),
}
_VERBS = {ADDITION: "add", CHANGE: "change", DELETION: "delete"}

# What an event says of an object beyond the admin's message, and the organisation it concerns, by
# (app label, model): the apps above fill in their own models (hub/admin_accounts.py), which this one
# does not import.
AdminDetails = Callable[[LogEntry], tuple[dict, Organization | None]]
ADMIN_DETAILS: dict[tuple[str, str], AdminDetails] = {}


def admin_details(app_label: str, model: str) -> Callable[[AdminDetails], AdminDetails]:
    def register(function: AdminDetails) -> AdminDetails:
        ADMIN_DETAILS[app_label, model] = function
        return function

    return register


@admin_details("accounts", "organization")
def _organization_details(entry: LogEntry) -> tuple[dict, Organization | None]:
    if entry.action_flag == DELETION:
        return {}, None
    return {}, Organization.objects.filter(pk=entry.object_id).first()


@admin_details("accounts", "team")
def _team_details(entry: LogEntry) -> tuple[dict, Organization | None]:
    team = Team.objects.select_related("organization").filter(pk=entry.object_id).first()
    return {}, team.organization if team is not None else None


def _admin_details(entry: LogEntry) -> tuple[dict, Organization | None]:
    """What the event says beyond the admin's message, and the organisation it concerns."""
    details = {"object": entry.object_repr, "change": entry.get_change_message()}
    more = ADMIN_DETAILS.get((entry.content_type.app_label, entry.content_type.model))
    if more is None:
        return details, None
    extra, organization = more(entry)
    return {**details, **extra}, organization


@receiver(post_save, sender=LogEntry, dispatch_uid="accounts.audit_admin_changes")
def audit_admin_change(sender, instance: LogEntry, created: bool, **kwargs):
    content_type = instance.content_type
    if not created or content_type is None or (content_type.app_label, content_type.model) not in AUDITED_ADMIN_MODELS:
        return
    details, organization = _admin_details(instance)
    services.audit_record(
        action=f"admin.{content_type.model}.{_VERBS.get(instance.action_flag, 'change')}",
        actor=services.Actor(user=instance.user, ip_address=client_address.get()),
        organization=organization,
        target_type=content_type.model,
        target_id=instance.object_id or "",
        details=details,
    )
