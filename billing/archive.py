"""The archive of pruned usage records: gzip-compressed JSON lines, one part per pruned day, per month.

Retention (billing/rollups.py) writes a day's raw records here before it
deletes them. The storage is STORAGES["usage_archive"] (a FileSystemStorage
under var/archive by default; any Django storage, S3 included, will do).
A month is the parts `usage/<YYYY-MM>.part-<YYYY-MM-DD>.jsonl.gz` (and
`…-kept.jsonl.gz`: the charged records an older rule kept, archived later,
billing/rollups.py), read in name order: no part is ever appended to, since object stores cannot append.
Each line is one record with every field of it (the foreign keys as their
ids, Decimals as strings, times in ISO 8601), in id order.

A day is archived once: its prune writes the part, deletes exactly the
records written to it and seals the day, all under the rollups' lock. A run
interrupted after the part was written but before its deletes committed
left the records in the table and the day unsealed; the next run writes the
same day's part again, in place of the old one, so nothing is lost or
archived twice.
"""

import gzip
import io
import json
import tempfile
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal

from django.core.files import File
from django.core.files.storage import storages

from .models import UsageRecord

FOLDER = "usage"
STORAGE = "usage_archive"


class ArchiveIncomplete(Exception):
    """The storage did not keep the part whole; nothing may be deleted."""


def storage():
    return storages[STORAGE]


def part_name(day: datetime, suffix: str = "") -> str:
    return f"{FOLDER}/{day:%Y-%m}.part-{day:%Y-%m-%d}{suffix}.jsonl.gz"


def fields() -> list[str]:
    return [f.attname for f in UsageRecord._meta.concrete_fields]


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def write_day(day: datetime, records, suffix: str = "") -> list[int]:
    """Write `records` (a queryset, in id order) as the part of `day`; returns the ids written.

    The part is complete when this returns: written to a local file first,
    then stored and closed, and its stored size checked.
    """
    names = fields()
    ids = []
    with tempfile.TemporaryFile() as raw:
        # mtime=0: the same records make the same bytes, whichever run writes them.
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
            text = io.TextIOWrapper(packed, encoding="utf-8", newline="\n")
            for row in records.values_list(*names).iterator(chunk_size=2000):
                line = dict(zip(names, map(_plain, row), strict=True))
                text.write(json.dumps(line, separators=(",", ":")) + "\n")
                ids.append(line["id"])
            text.flush()
            text.detach()
        size = raw.tell()
        raw.seek(0)
        name = part_name(day, suffix)
        store = storage()
        if store.exists(name):
            store.delete(name)  # an interrupted run's part of the same day: these records again
        saved = store.save(name, File(raw, name=name))
    if saved != name:
        store.delete(saved)
        raise ArchiveIncomplete(f"the archive stored {name} as {saved}")
    if store.size(saved) != size:
        raise ArchiveIncomplete(f"the archive kept {store.size(saved)} of the {size} bytes of {name}")
    return ids


def discard_day(day: datetime, suffix: str = "") -> None:
    """Remove the part of a day whose prune was rolled back (its records are still in the table)."""
    name = part_name(day, suffix)
    if storage().exists(name):
        storage().delete(name)


def parts(month: datetime) -> list[str]:
    try:
        _, files = storage().listdir(FOLDER)
    except FileNotFoundError:
        return []
    prefix = f"{month:%Y-%m}.part-"
    return sorted(f"{FOLDER}/{name}" for name in files if name.startswith(prefix) and name.endswith(".jsonl.gz"))


def read_month(month: datetime) -> Iterator[dict]:
    """Every archived record of a month, as written (values as JSON has them)."""
    for name in parts(month):
        with storage().open(name, "rb") as stored, gzip.GzipFile(fileobj=stored) as packed:
            for line in io.TextIOWrapper(packed, encoding="utf-8"):
                yield json.loads(line)
