"""manage.py seed_demo: demo data for the Flagged Products domain (see demo/flagged_data.py).

Refuses to touch a database that already has outlets or products (exit 1); --if-empty turns
that into a quiet skip (exit 0, for bin/demo), --flush deletes the domain data first."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo import flagged_data


class Command(BaseCommand):
    help = "Create deterministic demo outlets, products, stock, sales, staff and count history."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--outlets", type=int, default=20)
        parser.add_argument("--products", type=int, default=8000)
        parser.add_argument("--staff", type=int, default=150)
        parser.add_argument("--days", type=int, default=90, help="days of sales and counts")
        parser.add_argument("--seed", type=int, default=42, help="same seed, same data")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--if-empty", action="store_true", help="skip an already seeded DB")
        group.add_argument("--flush", action="store_true", help="delete domain data first")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("outlets", "products", "staff", "days"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1")
        if options["products"] < 20:
            raise CommandError("--products must be at least 20 (20 are flagged per day)")
        if options["flush"]:
            started = time.monotonic()
            flagged_data.flush()
            self.stdout.write(f"flushed the domain data ({time.monotonic() - started:.1f} s)")
        opts = flagged_data.SeedOptions(
            outlets=options["outlets"],
            products=options["products"],
            staff=options["staff"],
            days=options["days"],
            seed=options["seed"],
        )
        try:
            counts = flagged_data.seed(opts, progress=self.stdout.write)
        except flagged_data.AlreadySeeded as exc:
            found = ", ".join(f"{n} {what}" for what, n in exc.args[0].items())
            if options["if_empty"]:
                self.stdout.write(f"already seeded ({found}): skipped")
                return
            raise CommandError(
                f"refusing to seed: the database already has demo data ({found}). "
                "Use --flush to replace it, or --if-empty to skip."
            ) from None
        self.stdout.write(f"seeded: {sum(counts.values())} rows")
