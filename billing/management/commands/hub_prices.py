"""Prices in bulk: `hub_prices margin --margin 0.25 [--provider NAME] [--model PATTERN] [--dry-run]`,
`hub_prices below-cost`. Every change is kept in the price history (billing.pricing)."""

from django.core.management.base import BaseCommand, CommandError

from billing import pricing


class Command(BaseCommand):
    help = "Apply a margin over cost to model rates, or list the prices below cost."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        margin = sub.add_parser("margin", help="Set price = cost × (1 + margin) on the matching rates")
        margin.add_argument("--margin", required=True, help="0.25 = 25%% over cost")
        margin.add_argument("--provider", help="Only models routed to this provider (its name)")
        margin.add_argument(
            "--model",
            dest="model_pattern",
            help="Only models whose public id or alias matches this glob, e.g. 'openai/*'",
        )
        margin.add_argument("--dry-run", action="store_true", help="Show the changes, save nothing")
        sub.add_parser("below-cost", help="List the models whose input or output price is under its cost")

    def handle(self, *args, action, **options):
        if action == "below-cost":
            return self._below_cost()
        try:
            changes = pricing.margin_apply(
                margin=options["margin"],
                provider=options["provider"],
                model_pattern=options["model_pattern"],
                dry_run=options["dry_run"],
                source="hub_prices margin",
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        for change in changes:
            old, new = change["old"], change["new"]
            self.stdout.write(
                f"{change['model']}: margin {old['margin']} → {new['margin']}, input price "
                f"{old['input_price']} → {new['input_price']}, output price {old['output_price']} → "
                f"{new['output_price']}"
            )
        verb = "would change" if options["dry_run"] else "changed"
        self.stdout.write(self.style.SUCCESS(f"{verb} {len(changes)} rate(s)"))

    def _below_cost(self):
        rows = pricing.prices_below_cost()
        for row in rows:
            self.stdout.write(
                f"{row['model']}: {' and '.join(row['below'])} below cost (input {row['input_price']}"
                f" < {row['input_cost']}? output {row['output_price']} < {row['output_cost']}?)"
            )
        self.stdout.write(f"{len(rows)} model(s) priced below cost")
