"""Reads shared by the management API and the admin."""

from datetime import date, datetime, time, timedelta

from django.utils import timezone

from . import permissions
from .models import ApiKey, AuditEvent, Invitation, Membership, Organization


def access_of(*, user=None, api_key: ApiKey | None = None, slug: str) -> tuple[Organization, str] | None:
    """The organisation `slug` and the caller's role in it, or None if the caller has no access.

    None covers "no such organisation" and "not yours" alike, so that the
    answer (404) does not tell which.
    """
    if api_key is not None:
        if api_key.organization.slug == slug and api_key.organization.is_active:
            return api_key.organization, permissions.KEY_ROLE
        return None
    if user is None or not user.is_authenticated:
        return None
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=user, organization__slug=slug, organization__is_active=True)
        .first()
    )
    return (membership.organization, membership.role) if membership else None


def memberships_of_user(*, user):
    return Membership.objects.select_related("organization").filter(user=user, organization__is_active=True)


def keys_of(*, organization: Organization):
    return ApiKey.objects.filter(organization=organization).select_related("created_by")


def members_of(*, organization: Organization):
    return Membership.objects.filter(organization=organization).select_related("user").order_by("created_at", "pk")


def invitations_of(*, organization: Organization):
    return Invitation.objects.filter(organization=organization).select_related("invited_by")


def audit_events_of(*, organization: Organization):
    return AuditEvent.objects.filter(organization=organization).select_related("actor_user", "actor_key")


def day_range(start: date | None, end: date | None, *, default_days: int = 30) -> tuple[datetime, datetime]:
    """Whole UTC days from `start` to `end` inclusive, as [from, to)."""
    today = timezone.now().date()
    end = end or today
    start = start or end - timedelta(days=default_days - 1)
    tz = timezone.get_current_timezone()
    return datetime.combine(start, time.min, tz), datetime.combine(end + timedelta(days=1), time.min, tz)
