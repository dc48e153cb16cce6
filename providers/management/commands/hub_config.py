from django.core.management.base import BaseCommand, CommandError

from providers.config import ConfigError, apply_config, load_file


class Command(BaseCommand):
    help = "Apply a YAML file of providers, credentials, models and rates (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["apply"])
        parser.add_argument("file")

    def handle(self, *args, action, file, **options):
        try:
            changes = apply_config(load_file(file))
        except (ConfigError, OSError) as exc:
            raise CommandError(str(exc)) from None
        for line in changes:
            self.stdout.write(line)
        self.stdout.write(f"{len(changes)} change(s) applied from {file}" if changes else "already up to date")
