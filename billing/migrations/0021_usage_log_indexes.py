# The request log's indexes (billing/requestlog.py): an organisation's records newest first by keyset on
# (created_at, id), alone or by key, model, status or endpoint. The new (organization, created_at, id) index
# is made before the old (organization, created_at) one it covers is dropped.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0020_usage_rollup_provider"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="usagerecord",
            index=models.Index(fields=["organization", "created_at", "id"], name="usage_log_org_idx"),
        ),
        migrations.AddIndex(
            model_name="usagerecord",
            index=models.Index(fields=["organization", "api_key", "created_at", "id"], name="usage_log_key_idx"),
        ),
        migrations.AddIndex(
            model_name="usagerecord",
            index=models.Index(fields=["organization", "served_model", "created_at", "id"], name="usage_log_model_idx"),
        ),
        migrations.AddIndex(
            model_name="usagerecord",
            index=models.Index(fields=["organization", "status", "created_at", "id"], name="usage_log_status_idx"),
        ),
        migrations.AddIndex(
            model_name="usagerecord",
            index=models.Index(fields=["organization", "endpoint", "created_at", "id"], name="usage_log_endpoint_idx"),
        ),
        migrations.RemoveIndex(
            model_name="usagerecord",
            name="billing_usa_organiz_56fd89_idx",
        ),
    ]
