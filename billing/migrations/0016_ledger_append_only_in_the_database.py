"""On PostgreSQL the database itself keeps the ledger append-only.

LedgerEntry.save() and delete() refuse to edit or delete an entry, but a
queryset's update() or delete(), raw SQL, and Django's own SET_NULL on the
deletion of a related row never pass through them. This trigger refuses every
UPDATE and DELETE of an entry except the two that the schema asks for: its
usage record's link becoming NULL when retention deletes the record
(billing/rollups.py), and its author's link becoming NULL when that user is
deleted. Every other column must stay as it was.

PostgreSQL only: SQLite rebuilds a table to alter it and would drop the
trigger silently; there the model's guard is the rule. Emptying the table
whole (TRUNCATE, as test teardown does) fires no row trigger.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION billing_ledgerentry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (NEW.usage_record_id IS NULL OR NEW.usage_record_id = OLD.usage_record_id)
       AND (NEW.created_by_id IS NULL OR NEW.created_by_id = OLD.created_by_id)
       AND (to_jsonb(NEW) - 'usage_record_id' - 'created_by_id') = (to_jsonb(OLD) - 'usage_record_id' - 'created_by_id')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'ledger entries are append-only: % of entry % refused', TG_OP, OLD.id
        USING ERRCODE = 'restrict_violation',
              HINT = 'Only a deleted usage record''s or user''s link may become NULL.';
END
$$;
CREATE TRIGGER billing_ledgerentry_append_only BEFORE UPDATE OR DELETE ON billing_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION billing_ledgerentry_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS billing_ledgerentry_append_only ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledgerentry_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0015_ledger_keeps_usage"),
    ]

    operations = [
        migrations.RunPython(forward, backward, elidable=False),
    ]
