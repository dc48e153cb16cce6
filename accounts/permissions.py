"""Who may do what: the tenant roles' matrix and the operators' groups, in one place.

Every management endpoint names one action; `allows(role, action)` is the only
check. An admin-scoped API key acts with the `admin` role in its own
organisation.
"""

from .models import Role

OWNER, ADMIN, DEVELOPER, BILLING, VIEWER = Role.OWNER, Role.ADMIN, Role.DEVELOPER, Role.BILLING, Role.VIEWER
EVERYONE = frozenset(Role.values)

MATRIX: dict[str, frozenset[str]] = {
    "view_keys": frozenset({OWNER, ADMIN, DEVELOPER, VIEWER}),
    "create_keys": frozenset({OWNER, ADMIN, DEVELOPER}),
    # An admin-scoped key can manage the organisation, so only those who can
    # already do that may mint one.
    "create_admin_keys": frozenset({OWNER, ADMIN}),
    "revoke_keys": frozenset({OWNER, ADMIN}),
    # Create, rename and delete teams, and move keys between them.
    "manage_teams": frozenset({OWNER, ADMIN}),
    "view_usage": EVERYONE,
    "view_balance": EVERYONE,
    "buy_credits": frozenset({OWNER, BILLING}),
    "view_invoices": frozenset({OWNER, BILLING}),
    "view_members": EVERYONE,
    "invite_members": frozenset({OWNER, ADMIN}),
    "change_roles": frozenset({OWNER, ADMIN}),
    "remove_members": frozenset({OWNER, ADMIN}),
    "view_audit_log": frozenset({OWNER}),
    # Rename the organisation (its slug names it in URLs and keys' clients, and stays).
    "manage_organization": frozenset({OWNER, ADMIN}),
    # The dashboard's playground: it calls the gateway, and so spends the organisation's credit.
    "use_playground": frozenset({OWNER, ADMIN, DEVELOPER}),
}

ACTIONS = tuple(MATRIX)
KEY_ROLE = ADMIN  # the role an admin-scoped key acts with


def allows(role: str | None, action: str) -> bool:
    if action not in MATRIX:
        raise KeyError(f"unknown action {action!r}: add it to accounts.permissions.MATRIX")
    return role in MATRIX[action]


def may_manage_role(actor_role: str | None, role: str) -> bool:
    """Only an owner makes, unmakes, invites or removes owners."""
    return role != OWNER or actor_role == OWNER


# Operators (the Django admin). Applied by migration accounts.0003 through
# `sync_operator_groups`; a later migration may call it again when models are
# added. Permissions that do not exist (yet) are skipped. No group gets any
# permission on providers.Credential's secret beyond the admin's write-only
# field; `support` gets nothing on credentials at all.
OPERATOR_GROUPS: dict[str, list[str]] = {
    "support": [
        "accounts.view_user",
        "accounts.view_organization",
        "accounts.view_membership",
        "accounts.view_apikey",
        "accounts.view_invitation",
        "accounts.view_auditevent",
        "accounts.view_team",
        "billing.view_creditaccount",
        "billing.view_ledgerentry",
        "billing.view_usagerecord",
        "billing.view_payment",
        "billing.view_invoice",
        "billing.view_invoiceline",
        "providers.view_provider",
        "providers.view_catalogmodel",
        "providers.view_modelroute",
    ],
    "finance": [
        "accounts.view_organization",
        "accounts.view_auditevent",
        "billing.view_creditaccount",
        "billing.change_creditaccount",  # price plan, billing mode, invoice auto-charge
        "billing.view_ledgerentry",
        "billing.add_ledgerentry",
        "billing.view_modelrate",
        "billing.add_modelrate",
        "billing.change_modelrate",
        "billing.view_usagerecord",
        "billing.view_payment",
        "billing.view_stripeevent",
        "billing.view_autorecharge",
        "billing.change_autorecharge",
        "billing.view_invoice",
        "billing.add_invoice",
        "billing.change_invoice",
        "billing.view_invoiceline",
        "accounts.view_team",
        "providers.view_catalogmodel",
    ],
    "providers": [
        "accounts.view_auditevent",
        "providers.view_provider",
        "providers.add_provider",
        "providers.change_provider",
        "providers.delete_provider",
        "providers.view_credential",
        "providers.add_credential",
        "providers.change_credential",
        "providers.delete_credential",
        "providers.view_catalogmodel",
        "providers.add_catalogmodel",
        "providers.change_catalogmodel",
        "providers.delete_catalogmodel",
        "providers.view_modelroute",
        "providers.add_modelroute",
        "providers.change_modelroute",
        "providers.delete_modelroute",
        "billing.view_modelrate",
    ],
}


def sync_operator_groups(apps) -> None:
    """Create the operator groups and set their permissions exactly (idempotent).

    `apps` is a migration's app registry or django.apps.apps.
    """
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in OPERATOR_GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            wanted += list(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)
