import functools
import ipaddress
import zoneinfo

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from billing.money import MoneyField

# Names zoneinfo lists that are no place a person lives in: the system's own link and tzdata's placeholder.
NOT_TIME_ZONES = frozenset({"localtime", "posixrules", "Factory"})
RESPONSE_CACHE_MAX_SECONDS = 30 * 24 * 3600


@functools.cache
def time_zone_names() -> tuple[str, ...]:
    """The IANA time zones a user may choose, sorted (read from disk once: the list is long)."""
    return tuple(sorted(zoneinfo.available_timezones() - NOT_TIME_ZONES))


def validate_time_zone(value: str) -> None:
    if value and value not in time_zone_names():
        raise ValidationError(_("%(value)s is not a time zone."), code="invalid_time_zone", params={"value": value})


def validate_language(value: str) -> None:
    if value and value not in dict(settings.LANGUAGES):
        raise ValidationError(
            _("%(value)s is not a language of the site."), code="invalid_language", params={"value": value}
        )


class User(AbstractUser):
    """The hub's user. Custom from the first migration so it can grow freely."""

    email = models.EmailField("email address", blank=True)
    # The dashboard's settings (accounts/views/settings.py), applied to every page by accounts/middleware.py.
    # Validators, not choices: a new tzdata or language must not need a migration.
    time_zone = models.CharField(
        max_length=64, blank=True, validators=[validate_time_zone], help_text="Empty: the site's TIME_ZONE"
    )
    language = models.CharField(
        max_length=16, blank=True, validators=[validate_language], help_text="Empty: the browser's language"
    )


class BudgetPeriod(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    TOTAL = "total", "Never resets"


class Limits(models.Model):
    """What a key (or, as defaults for its keys, an organisation) may use. Empty means no limit.

    Enforced on every gateway call by hub/policy.py; a key's own value wins
    over its organisation's.
    """

    allowed_models = models.JSONField(
        default=list, blank=True, help_text='Model patterns, e.g. ["openai/*", "claude-*"]; empty: every model'
    )
    allowed_ips = models.JSONField(
        default=list, blank=True, help_text='Client addresses (CIDR), e.g. ["203.0.113.0/24"]; empty: anywhere'
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute")
    budget = MoneyField(null=True, blank=True, help_text="Spend allowed per budget period")
    budget_period = models.CharField(max_length=10, choices=BudgetPeriod.choices, default=BudgetPeriod.MONTHLY)
    # The gateway's exact-match response cache (hub/response_cache.py): off unless set. A key's 0 turns it off
    # for that key when its organisation has it on.
    response_cache_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(RESPONSE_CACHE_MAX_SECONDS)],
        help_text="Answers kept this many seconds and served again to the same request; empty: off (a key: "
        "its organisation's), 0: off",
    )

    class Meta:
        abstract = True

    def clean(self):
        if not isinstance(self.allowed_models, list) or not all(isinstance(p, str) for p in self.allowed_models):
            raise ValidationError({"allowed_models": _("A list of model patterns.")})
        try:
            [ipaddress.ip_network(c, strict=False) for c in self.allowed_ips]
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                {"allowed_ips": _("Not a list of addresses or CIDR ranges: %(error)s") % {"error": exc}}
            ) from None


class Organization(Limits):
    """The tenant: owns keys, credits and usage. Its limits are its keys' defaults."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    is_active = models.BooleanField(default=True)
    # Sampled answers (temperature above 0) differ from call to call; cached only if the organisation says so.
    response_cache_sampled = models.BooleanField(
        default=False, help_text="The response cache also keeps answers sampled at a temperature above 0"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    members: "models.ManyToManyField[User, Membership]" = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="organizations"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Role(models.TextChoices):
    # Labels in the role's own context: "Billing" the role is not "Billing" the dashboard's section.
    OWNER = "owner", pgettext_lazy("role", "Owner")
    ADMIN = "admin", pgettext_lazy("role", "Admin")
    DEVELOPER = "developer", pgettext_lazy("role", "Developer")
    BILLING = "billing", pgettext_lazy("role", "Billing")
    VIEWER = "viewer", pgettext_lazy("role", "Viewer")


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.DEVELOPER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="unique_membership")]

    def __str__(self):
        return f"{self.user} in {self.organization} ({self.role})"


class Team(models.Model):
    """A group of an organisation's keys whose cost is reported together (billing/teams.py)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="unique_team_name")]

    def __str__(self):
        return self.name


class KeyScope(models.TextChoices):
    INFERENCE = "inference", "Inference (the gateway)"
    ADMIN = "admin", "Admin (the gateway and the management API of its organisation)"


class KeyPurpose(models.TextChoices):
    API = "", "API (a key someone holds)"
    PLAYGROUND = "playground", "Playground (a member's own, used by the hub for them; never shown)"


class ApiKey(Limits):
    """A hub API key. Only its SHA-256 and a visible prefix are stored."""

    PREFIX = "sk-hub-"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=20, help_text="The first characters of the key, to recognise it.")
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    scope = models.CharField(
        max_length=20,
        choices=KeyScope.choices,
        default=KeyScope.INFERENCE,
        help_text="An admin key may also manage its own organisation through /manage/v1/.",
    )
    # Usage is reported by the key's team as it is now, not as it was when the key was used.
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="api_keys")
    # The dashboard's playground calls the gateway with a key of its member's own (accounts/playground.py), so its
    # requests are policed, held, metered and logged as any other; this marks them apart.
    purpose = models.CharField(max_length=20, choices=KeyPurpose.choices, default=KeyPurpose.API, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        constraints = [
            # One live playground key per member and organisation: two first uses at once make one key.
            models.UniqueConstraint(
                fields=["organization", "created_by"],
                condition=models.Q(purpose="playground", revoked_at__isnull=True),
                name="one_live_playground_key",
            )
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    def clean(self):
        super().clean()
        if self.team is not None and self.team.organization_id != self.organization_id:
            raise ValidationError({"team": _("A team of the key's own organisation.")})

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class Invitation(models.Model):
    """An email invitation to join an organisation. Only the token's SHA-256 is stored."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.DEVELOPER)
    hashed_token = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    declined_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.email} to {self.organization} ({self.role})"

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.declined_at:
            return "declined"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ValueError("audit events are append-only")

    def delete(self):
        raise ValueError("audit events are append-only")


class AuditEvent(models.Model):
    """Who changed what. Appended, never edited or deleted.

    `organization` is empty for operator-level events (credentials, prices).
    The actor's name is copied into `actor_label` so the event still says who
    it was after the user or key is gone.
    """

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=60, db_index=True)
    target_type = models.CharField(max_length=60, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "created_at"])]

    def __str__(self):
        return f"{self.action} by {self.actor_label or 'the system'}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("audit events are append-only")
