"""Rows appended without the ORM's per-row work, for the metering writer's hot path.

`bulk_create` builds a model instance per row and prepares every field of it
through the compiler; in the serving process that work holds the GIL the event
loop needs (a py-spy recording of the bench's worker put the metering writer
at about a fifth of its CPU). Here a row is a tuple in `fields` order, turned
into one multi-row INSERT. On PostgreSQL the values go to psycopg as they are
(it adapts text, numbers, Decimal and aware datetimes itself, and Django's
backend passes these fields' values through); on other backends, and for
fields of their own (money), each value is prepared by its field, as
bulk_create would. Needs INSERT ... RETURNING and ON CONFLICT: PostgreSQL,
and SQLite from 3.35.
"""

from collections.abc import Sequence

from django.db import connections, models

# Fields whose prepared value is the Python value itself on PostgreSQL (Django's backend passes these through).
# Exact types: a subclass (billing.money.MoneyField is a BigIntegerField) may prepare its values otherwise.
_AS_IS = {
    models.CharField,
    models.IntegerField,
    models.PositiveIntegerField,
    models.PositiveSmallIntegerField,
    models.SmallIntegerField,
    models.BigIntegerField,
    models.BooleanField,
    models.DecimalField,
    models.DateTimeField,
    models.ForeignKey,
    models.OneToOneField,
}
_MAX_PARAMS = 65535  # a PostgreSQL statement's (psycopg's) limit on parameters


class Insert:
    """INSERT INTO model (fields) VALUES (...), (...) [ON CONFLICT (unique) DO NOTHING] [RETURNING pk, ...]."""

    def __init__(
        self,
        model: type[models.Model],
        fields: Sequence[str],
        *,
        skip_conflicts_on: str = "",
        returning: Sequence[str] = (),
    ):
        meta = model._meta
        self.fields = [meta.get_field(name) for name in fields]
        self.table = meta.db_table
        self.skip_conflicts_on = meta.get_field(skip_conflicts_on).column if skip_conflicts_on else ""
        self.returning = [meta.get_field(name).column for name in returning]

    def __call__(self, rows: Sequence[tuple], using: str = "default") -> list[tuple]:
        """Insert `rows`; the `returning` columns of each row inserted (those skipped for a conflict are not)."""
        connection = connections[using]
        quote = connection.ops.quote_name
        head = f"INSERT INTO {quote(self.table)} ({', '.join(quote(f.column) for f in self.fields)}) VALUES "  # noqa: S608  # names from the model, quoted; values are parameters
        tail = f" ON CONFLICT ({quote(self.skip_conflicts_on)}) DO NOTHING" if self.skip_conflicts_on else ""
        if self.returning:
            tail += f" RETURNING {', '.join(quote(c) for c in self.returning)}"
        # Each value prepared as bulk_create would, but for the fields PostgreSQL takes as they are.
        prepare = [i for i, f in enumerate(self.fields) if connection.vendor != "postgresql" or type(f) not in _AS_IS]
        if prepare:
            prepared = []
            for row in rows:
                values = list(row)
                for i in prepare:
                    values[i] = self.fields[i].get_db_prep_save(values[i], connection)
                prepared.append(values)
        else:
            prepared = list(rows)
        limit = min(_MAX_PARAMS, connection.features.max_query_params or _MAX_PARAMS)
        per_statement = max(1, limit // max(1, len(self.fields)))
        one = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
        returned: list[tuple] = []
        with connection.cursor() as cursor:
            for start in range(0, len(prepared), per_statement):
                batch = prepared[start : start + per_statement]
                sql = head + ", ".join([one] * len(batch)) + tail
                cursor.execute(sql, [v for row in batch for v in row])
                if self.returning:
                    returned.extend(cursor.fetchall())
        return returned
