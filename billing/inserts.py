"""Rows appended without the ORM's per-row work, for the metering writer's hot path.

`bulk_create` builds a model instance per row and prepares every field of it
through the compiler; in the serving process that work holds the GIL the event
loop needs (a py-spy recording of the bench's worker put the metering writer
at about a fifth of its CPU). Here a row is a tuple in `fields` order. On
PostgreSQL the rows go as one array per column (INSERT ... SELECT FROM unnest),
their values to psycopg as they are (it adapts text, numbers, Decimal and aware
datetimes itself, and Django's backend passes these fields' values through);
on SQLite as a VALUES list. Fields of their own (money), and every field on
SQLite, prepare their values as bulk_create would. Needs INSERT ... RETURNING
and ON CONFLICT: PostgreSQL, and SQLite from 3.35.
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

        def column(name: str) -> models.Field:
            field = meta.get_field(name)
            if not isinstance(field, models.Field) or not field.column:
                raise TypeError(f"{meta.label}.{name} is not a column")
            return field

        self.fields = [column(name) for name in fields]
        self.columns = [str(f.column) for f in self.fields]
        self.table = meta.db_table
        self.skip_conflicts_on = str(column(skip_conflicts_on).column) if skip_conflicts_on else ""
        self.returning = [str(column(name).column) for name in returning]

    def __call__(self, rows: Sequence[tuple], using: str = "default") -> list[tuple]:
        """Insert `rows`; the `returning` columns of each row inserted (those skipped for a conflict are not),
        in the order of `rows`."""
        if not rows:
            return []
        connection = connections[using]
        quote = connection.ops.quote_name
        head = f"INSERT INTO {quote(self.table)} ({', '.join(quote(c) for c in self.columns)}) "
        tail = f" ON CONFLICT ({quote(self.skip_conflicts_on)}) DO NOTHING" if self.skip_conflicts_on else ""
        if self.returning:
            tail += f" RETURNING {', '.join(quote(c) for c in self.returning)}"
        returned: list[tuple] = []
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # One array per column: the statement's text is the same for any number of rows, so psycopg
                # parses it once (a VALUES list of N rows is new text, parsed in Python placeholder by
                # placeholder: measured 9x the CPU of this for 500 rows).
                columns = [list(column) for column in zip(*rows, strict=True)]
                for i, f in enumerate(self.fields):
                    if type(f) not in _AS_IS:
                        columns[i] = [f.get_db_prep_save(v, connection) for v in columns[i]]
                arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in self.fields)
                cursor.execute(f"{head}SELECT * FROM unnest({arrays}){tail}", columns)  # noqa: S608  # names from the model, quoted; values are parameters
                return cursor.fetchall() if self.returning else []
            # Elsewhere (SQLite) the driver binds each value itself: a VALUES list, as many rows as it takes.
            prepared = [
                [f.get_db_prep_save(v, connection) for f, v in zip(self.fields, row, strict=True)] for row in rows
            ]
            per_statement = max(1, (connection.features.max_query_params or 999) // len(self.fields))
            one = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
            for start in range(0, len(prepared), per_statement):
                batch = prepared[start : start + per_statement]
                sql = f"{head}VALUES {', '.join([one] * len(batch))}{tail}"  # as above
                cursor.execute(sql, [v for row in batch for v in row])
                if self.returning:
                    returned.extend(cursor.fetchall())
        return returned
