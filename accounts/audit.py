"""The audit log's one writer: who changed what, from where (accounts.models.AuditEvent)."""

from dataclasses import dataclass

from .models import ApiKey, AuditEvent, User


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a signed-in user or an admin-scoped key, from an address."""

    user: User | None = None
    api_key: ApiKey | None = None
    ip_address: str | None = None

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.email or self.user.get_username()
        if self.api_key is not None:
            return f"key {self.api_key.prefix}…"
        return ""


SYSTEM = Actor()


def audit_record(
    *,
    action: str,
    actor: Actor | None = None,
    organization=None,
    target=None,
    target_type: str = "",
    target_id: str = "",
    details: dict | None = None,
) -> AuditEvent:
    actor = actor or SYSTEM
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target_id or str(target.pk)
    return AuditEvent.objects.create(
        organization=organization,
        actor_user=actor.user,
        actor_key=actor.api_key,
        actor_label=actor.label[:200],
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=details or {},
        ip_address=actor.ip_address,
    )
