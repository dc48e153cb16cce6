"""The operator groups again, now that routes (providers) and payments (billing) exist."""

from django.db import migrations

from accounts.migrations import _operator_groups


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_operator_groups"),
        ("billing", "0004_server_error_status"),
        ("providers", "0003_routes"),
    ]

    operations = [migrations.RunPython(_operator_groups.forwards, migrations.RunPython.noop)]
