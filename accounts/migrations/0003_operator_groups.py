"""The operators' groups (support, finance, providers), from accounts.permissions.OPERATOR_GROUPS.

Permissions are normally created after all migrations (post_migrate), so
they are created here first for the models that exist at this point. A later
migration that adds models an operator group should see (billing's invoices)
calls accounts.permissions.sync_operator_groups again.
"""

from django.db import migrations

from accounts.migrations._operator_groups import forwards


def backwards(apps, schema_editor):
    from accounts.permissions import OPERATOR_GROUPS

    apps.get_model("auth", "Group").objects.filter(name__in=OPERATOR_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_roles_invitations_audit"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("billing", "0002_cache_tokens"),
        ("providers", "0002_capabilities_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
