"""The operator groups again, now that teams (accounts) and invoices (billing) exist."""

from django.db import migrations

from accounts.migrations import _operator_groups


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_teams"),
        ("billing", "0011_billing_modes_invoices"),
    ]

    operations = [migrations.RunPython(_operator_groups.forwards, migrations.RunPython.noop)]
