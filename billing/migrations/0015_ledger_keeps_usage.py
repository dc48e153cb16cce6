"""Usage ledger entries keep their request id, model and time on their own row, so that retention can
archive and delete the usage records they charged (billing/rollups.py); the link becomes SET_NULL.

The backfill is one UPDATE over the whole table (a join on PostgreSQL, correlated subqueries on the
primary key elsewhere), not a loop over rows. The link's on_delete lives in Django, not in the schema:
that change alters no column.
"""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def backfill(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE billing_ledgerentry AS e SET request_id = u.request_id, model_name = u.model_name, "
                "usage_at = u.created_at FROM billing_usagerecord AS u WHERE e.usage_record_id = u.id"
            )
        return
    LedgerEntry = apps.get_model("billing", "LedgerEntry")
    UsageRecord = apps.get_model("billing", "UsageRecord")
    record = UsageRecord.objects.filter(pk=OuterRef("usage_record_id"))
    LedgerEntry.objects.filter(usage_record__isnull=False).update(
        request_id=Subquery(record.values("request_id")[:1]),
        model_name=Subquery(record.values("model_name")[:1]),
        usage_at=Subquery(record.values("created_at")[:1]),
    )


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0014_image_input_tokens"),
    ]

    operations = [
        migrations.AddField(
            model_name="ledgerentry",
            name="model_name",
            field=models.CharField(blank=True, help_text="The model it asked for (usage only)", max_length=200),
        ),
        migrations.AddField(
            model_name="ledgerentry",
            name="request_id",
            field=models.CharField(blank=True, help_text="The charged request's (usage only)", max_length=64),
        ),
        migrations.AddField(
            model_name="ledgerentry",
            name="usage_at",
            field=models.DateTimeField(blank=True, help_text="When the charged request ran: its usage record's created_at", null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="ledgerentry",
            name="usage_record",
            field=models.OneToOneField(blank=True, help_text="Empty once retention archived the record (HUB_USAGE_RETENTION_DAYS)", null=True, on_delete=models.deletion.SET_NULL, related_name="ledger_entry", to="billing.usagerecord"),
        ),
    ]
