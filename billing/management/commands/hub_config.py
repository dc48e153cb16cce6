from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError

from billing.config import ConfigError, apply_config, load_file


class Command(BaseCommand):
    help = "Apply a YAML file of providers, credentials, models and rates (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["apply"])
        parser.add_argument(
            "files",
            nargs="+",
            metavar="FILE",
            help="YAML files; providers/catalogue/*.yaml ship each provider's common models",
        )
        parser.add_argument(
            "--margin",
            type=Decimal,
            default=None,
            help="margin over cost (0.25 = 25%%) for rates that set neither prices nor a margin",
        )

    def handle(self, *args, action, files, margin, **options):
        changes = []
        for file in files:
            try:
                changes += apply_config(load_file(file), margin=margin)
            except (ConfigError, OSError) as exc:
                raise CommandError(f"{file}: {exc}") from None
        for line in changes:
            self.stdout.write(line)
        self.stdout.write(f"{len(changes)} change(s) applied" if changes else "already up to date")
