"""Shared by the migrations that (re)apply accounts.permissions.OPERATOR_GROUPS."""

from django.contrib.auth.management import create_permissions


def forwards(apps, schema_editor):
    from accounts.permissions import sync_operator_groups

    # Permissions are normally created after all migrations (post_migrate):
    # create them now for the models that exist at this point.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_operator_groups(apps)
