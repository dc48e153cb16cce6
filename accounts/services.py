import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from . import permissions
from .audit import SYSTEM, Actor, audit_record  # noqa: F401 - re-exported: callers name them from here
from .errors import DomainError, Forbidden, NotFound
from .models import ApiKey, Invitation, KeyScope, Membership, Organization, Role
from .serializers import LIMIT_FIELDS
from .signals import keys_changed_on_commit, organization_opened


class AccountsError(DomainError):
    """A change the rules refuse (the last owner leaving, an expired invitation…)."""


class PermissionDenied(Forbidden):
    """The actor's role does not allow this change (an admin touching an owner…)."""


def hash_api_key(raw_key: str) -> str:
    # Keys are 240 random bits, so a fast hash is safe and keeps auth cheap.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def organization_create(*, name: str, slug: str = "", owner=None) -> Organization:
    with transaction.atomic():
        organization = Organization.objects.create(name=name, slug=slug or slugify(name)[:100])
        if owner is not None:
            Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
        # Billing opens its credit account in the same transaction (billing/apps.py).
        organization_opened.send(sender=Organization, organization=organization)
    return organization


def organization_update(
    *, organization: Organization, name: str, actor_role: str | None, actor: Actor | None = None
) -> Organization:
    """Rename the organisation. Its slug stays: it names the organisation in the API's URLs and in clients."""
    if not permissions.allows(actor_role, "manage_organization"):
        raise PermissionDenied(_("Only an owner or an admin can rename the organisation."))
    name = name.strip()
    if not name:
        raise AccountsError(_("An organisation needs a name."), code="invalid_name", param="name")
    max_length = Organization._meta.get_field("name").max_length or 0
    if len(name) > max_length:
        raise AccountsError(
            _("A name of at most %(count)d characters.") % {"count": max_length}, code="invalid_name", param="name"
        )
    with transaction.atomic():
        old = organization.name
        if old == name:
            return organization
        organization.name = name
        organization.save(update_fields=["name"])
        audit_record(
            action="organization.rename",
            actor=actor,
            organization=organization,
            target=organization,
            details={"from": old, "to": name},
        )
    return organization


def api_key_create(
    *,
    organization: Organization,
    name: str,
    created_by=None,
    expires_at=None,
    raw_key: str = "",
    scope: str = KeyScope.INFERENCE,
    actor: Actor | None = None,
    limits: dict | None = None,
):
    """Create a key and return (ApiKey, raw key). The raw key is never stored.

    `limits`: the key's own allowed_models, allowed_ips, rpm_limit, tpm_limit,
    budget and budget_period (hub/policy.py).
    """
    raw_key = raw_key or ApiKey.PREFIX + secrets.token_urlsafe(30)
    if not raw_key.startswith(ApiKey.PREFIX) or len(raw_key) < len(ApiKey.PREFIX) + 20:
        raise ValueError(f"an API key must start with {ApiKey.PREFIX} and carry at least 20 random characters")
    if actor is None and created_by is not None:
        actor = Actor(user=created_by)
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            organization=organization,
            name=name,
            prefix=raw_key[: len(ApiKey.PREFIX) + 6],
            hashed_key=hash_api_key(raw_key),
            created_by=created_by,
            expires_at=expires_at,
            scope=scope,
            **(limits or {}),
        )
        audit_record(
            action="key.create",
            actor=actor,
            organization=organization,
            target=api_key,
            details={
                "name": name,
                "prefix": api_key.prefix,
                "scope": scope,
                "expires_at": expires_at.isoformat() if expires_at else None,
                **{k: str(v) for k, v in (limits or {}).items()},
            },
        )
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey, actor: Actor | None = None) -> ApiKey:
    with transaction.atomic():
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
            audit_record(
                action="key.revoke",
                actor=actor,
                organization=api_key.organization,
                target=api_key,
                details={"name": api_key.name, "prefix": api_key.prefix},
            )
    # On commit, whatever transaction this is in (a rotation's): forgotten
    # before, the key could be cached again as valid by a concurrent request.
    keys_changed_on_commit(api_key.hashed_key)
    return api_key


def api_key_limits_set(*, api_key: ApiKey, limits: dict, expires_at=None, actor: Actor | None = None) -> ApiKey:
    """Set a key's own limits (LIMIT_FIELDS, as api_key_create takes them) and its expiry.

    A revoked key keeps the limits it had: it is the record of what it could do. The gateway forgets its
    cached copy on commit, so the new limits apply at once.
    """
    if api_key.revoked_at is not None:
        raise AccountsError(_("A revoked key cannot be changed."), code="key_revoked")
    unknown = set(limits) - set(LIMIT_FIELDS)
    if unknown:
        raise ValueError(f"not a key limit: {sorted(unknown)}")
    with transaction.atomic():
        for name, value in limits.items():
            setattr(api_key, name, value)
        api_key.expires_at = expires_at
        api_key.save(update_fields=[*limits, "expires_at"])
        audit_record(
            action="key.update",
            actor=actor,
            organization=api_key.organization,
            target=api_key,
            details={
                "prefix": api_key.prefix,
                "expires_at": expires_at.isoformat() if expires_at else None,
                **{k: str(v) for k, v in limits.items()},
            },
        )
    keys_changed_on_commit(api_key.hashed_key)
    return api_key


def api_key_rotate(*, api_key: ApiKey, actor: Actor | None = None):
    """Replace a key by a new one with the same name, scope, expiry, limits and team; return (new key, raw key).

    The limits are copied because a rotated key that lost them would quietly
    gain every model, address and budget its predecessor was kept from.
    """
    if api_key.revoked_at is not None:
        raise AccountsError(_("A revoked key cannot be rotated."), code="key_revoked")
    with transaction.atomic():
        new_key, raw = api_key_create(
            organization=api_key.organization,
            name=api_key.name,
            expires_at=api_key.expires_at,
            scope=api_key.scope,
            created_by=actor.user if actor else None,
            actor=actor,
            limits={name: getattr(api_key, name) for name in LIMIT_FIELDS},
        )
        if api_key.team_id is not None:
            ApiKey.objects.filter(pk=new_key.pk).update(team_id=api_key.team_id)
            new_key.team_id = api_key.team_id
        api_key_revoke(api_key=api_key, actor=actor)
        audit_record(
            action="key.rotate",
            actor=actor,
            organization=api_key.organization,
            target=api_key,
            details={"replaced_by": new_key.pk, "prefix": new_key.prefix},
        )
    return new_key, raw


def _owners_left(organization: Organization, *, without: Membership) -> int:
    return organization.memberships.filter(role=Role.OWNER).exclude(pk=without.pk).count()


def _lock_owners(organization: Organization) -> None:
    # Two owners demoting each other at once must not leave none: serialise
    # owner changes on the organisation's row.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()


def membership_change_role(
    *, membership: Membership, role: str, actor_role: str | None, actor: Actor | None = None
) -> Membership:
    if role not in Role.values:
        raise AccountsError(_("Unknown role %(role)r.") % {"role": role}, code="invalid_role", param="role")
    if not (permissions.may_manage_role(actor_role, membership.role) and permissions.may_manage_role(actor_role, role)):
        raise PermissionDenied(_("Only an owner can make or unmake owners."))
    with transaction.atomic():
        _lock_owners(membership.organization)
        if (
            membership.role == Role.OWNER
            and role != Role.OWNER
            and not _owners_left(membership.organization, without=membership)
        ):
            raise AccountsError(
                _("The last owner cannot be demoted: make someone else owner first."), code="last_owner"
            )
        old = membership.role
        if old == role:
            return membership
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            action="member.role_change",
            actor=actor,
            organization=membership.organization,
            target=membership,
            details={"user": membership.user.get_username(), "from": old, "to": role},
        )
    return membership


def membership_remove(
    *, membership: Membership, actor_role: str | None, actor: Actor | None = None, leaving: bool = False
) -> None:
    if not leaving and not permissions.may_manage_role(actor_role, membership.role):
        raise PermissionDenied(_("Only an owner can remove an owner."))
    with transaction.atomic():
        _lock_owners(membership.organization)
        if membership.role == Role.OWNER and not _owners_left(membership.organization, without=membership):
            raise AccountsError(
                _("The last owner cannot leave or be removed: make someone else owner first."), code="last_owner"
            )
        audit_record(
            action="member.leave" if leaving else "member.remove",
            actor=actor,
            organization=membership.organization,
            target=membership,
            details={"user": membership.user.get_username(), "role": membership.role},
        )
        membership.delete()


def membership_leave(*, membership: Membership, actor: Actor | None = None) -> None:
    membership_remove(membership=membership, actor_role=membership.role, actor=actor, leaving=True)


def invitation_ttl() -> timedelta:
    return timedelta(days=getattr(settings, "HUB_INVITATION_DAYS", 7))


def invitation_create(
    *,
    organization: Organization,
    email: str,
    role: str,
    actor_role: str | None,
    actor: Actor | None = None,
    accept_url_base: str = "",
):
    """Invite by email and return (Invitation, raw token). The token is sent, never stored."""
    if not permissions.may_manage_role(actor_role, role):
        raise PermissionDenied(_("Only an owner can invite an owner."))
    email = email.strip()
    if organization.memberships.filter(user__email__iexact=email).exists():
        raise AccountsError(
            _("%(email)s is already a member.") % {"email": email}, code="already_member", param="email"
        )
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            organization=organization,
            email=email,
            role=role,
            hashed_token=hash_api_key(token),
            invited_by=actor.user if actor else None,
            expires_at=timezone.now() + invitation_ttl(),
        )
        audit_record(
            action="invitation.create",
            actor=actor,
            organization=organization,
            target=invitation,
            details={"email": email, "role": role},
        )
    context = {
        # A person is named; an admin key is not (its prefix means nothing to the invitee): the email
        # then reads as the organisation's own invitation.
        "invitation": invitation,
        "organization": organization,
        "inviter": actor.label if actor is not None and actor.user is not None else "",
        # The dashboard's page, which signs the invitee up or in first (accounts/views/organisations.py).
        "accept_url": accept_url_base.rstrip("/") + reverse("dashboard-invitation", args=[token]),
    }
    subject = render_to_string("accounts/invitation_subject.txt", context).strip()
    body = render_to_string("accounts/invitation_email.txt", context)
    transaction.on_commit(lambda: send_mail(subject, body, None, [email]))
    return invitation, token


def invitation_by_token(token: str) -> Invitation:
    invitation = Invitation.objects.select_related("organization").filter(hashed_token=hash_api_key(token)).first()
    if invitation is None or not invitation.organization.is_active:
        raise NotFound(_("This invitation does not exist."), code="invitation_not_found")
    return invitation


def _open(invitation: Invitation) -> None:
    state = invitation.status
    closed = {
        "accepted": _("This invitation is accepted."),
        "declined": _("This invitation is declined."),
        "revoked": _("This invitation is revoked."),
        "expired": _("This invitation is expired."),
    }
    if state != "pending":
        raise AccountsError(closed.get(state, _("This invitation is closed.")), code=f"invitation_{state}")


def invitation_accept(*, token: str, user, actor: Actor | None = None) -> Membership:
    with transaction.atomic():
        invitation = invitation_by_token(token)
        Invitation.objects.select_for_update().filter(pk=invitation.pk).first()
        invitation.refresh_from_db()
        _open(invitation)
        # The link alone is not enough: a forwarded email must not let someone else in.
        if (user.email or "").lower() != invitation.email.lower():
            raise PermissionDenied(
                _("This invitation was sent to another email address."), code="invitation_email_mismatch"
            )
        if invitation.organization.memberships.filter(user=user).exists():
            raise AccountsError(_("You are already a member."), code="already_member")
        membership = Membership.objects.create(user=user, organization=invitation.organization, role=invitation.role)
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        audit_record(
            action="invitation.accept",
            actor=actor or Actor(user=user),
            organization=invitation.organization,
            target=invitation,
            details={"email": invitation.email, "role": invitation.role},
        )
    return membership


def invitation_decline(*, token: str, actor: Actor | None = None) -> Invitation:
    with transaction.atomic():
        invitation = invitation_by_token(token)
        _open(invitation)
        invitation.declined_at = timezone.now()
        invitation.save(update_fields=["declined_at"])
        audit_record(
            action="invitation.decline",
            actor=actor,
            organization=invitation.organization,
            target=invitation,
            details={"email": invitation.email},
        )
    return invitation


def invitation_revoke(*, invitation: Invitation, actor: Actor | None = None) -> Invitation:
    _open(invitation)
    with transaction.atomic():
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit_record(
            action="invitation.revoke",
            actor=actor,
            organization=invitation.organization,
            target=invitation,
            details={"email": invitation.email},
        )
    return invitation
