"""`tuktuk roster …`: the roster and days off (tuktuk.ledger.duty). A driver off on the roster
is paused that day: the close records no miss and adds no debt (docs/who-drives.md).

tuktuk roster generate --from DAY --to DAY      (each driver's preferred weekday off)
tuktuk roster off DRIVER DAY [--reason TEXT]     (a day off)
tuktuk roster on DRIVER DAY                      (working after all)
tuktuk roster preferred DRIVER mon|tue|wed|thu|fri|sat|sun|none
tuktuk roster show [--from DAY] [--to DAY] [--json]   (default: two weeks from today)

Writes take --user (a fleet manager: fleet.change_driver).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tuktuk.backoffice import selectors
from tuktuk.backoffice.duty_edges import (
    NO_WEEKDAY,
    WEEKDAY_KEYS,
    day_off_reason_arg,
    weekday_name,
    weekday_parse,
)
from tuktuk.backoffice.operator_command import OperatorCommand
from tuktuk.backoffice.roles import MANAGE_ROSTER
from tuktuk.core import jsonutil
from tuktuk.core.dates import day_parse
from tuktuk.ledger.duty import day_off_set_by, preferred_day_off_set_by, roster_generate_by

WRITES = {"generate", "off", "on", "preferred"}


class Command(OperatorCommand):
    help = "The roster: generate it from preferred days off, set days off, show it."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        generate = sub.add_parser("generate", help="days off on each driver's preferred weekday")
        generate.add_argument("--from", dest="date_from", required=True, metavar="YYYY-MM-DD")
        generate.add_argument("--to", dest="date_to", required=True, metavar="YYYY-MM-DD")
        self.add_user_argument(generate)
        off = sub.add_parser("off", help="the driver is off that day (no miss, no new debt)")
        off.add_argument("driver")
        off.add_argument("day", metavar="YYYY-MM-DD")
        off.add_argument("--reason", default="", help="why (kept with the day off)")
        self.add_user_argument(off)
        on = sub.add_parser("on", help="the driver works that day after all")
        on.add_argument("driver")
        on.add_argument("day", metavar="YYYY-MM-DD")
        self.add_user_argument(on)
        preferred = sub.add_parser("preferred", help="the weekday the roster gives the driver off")
        preferred.add_argument("driver")
        preferred.add_argument("weekday", metavar="|".join([*WEEKDAY_KEYS, NO_WEEKDAY]))
        self.add_user_argument(preferred)
        show = sub.add_parser("show", help="days off and roster periods")
        show.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
        show.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
        show.add_argument("--json", action="store_true", help="print the JSON answer")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        actor = self.acting(options, MANAGE_ROSTER) if action in WRITES else ""
        if action == "generate":
            period = roster_generate_by(
                date_from=options["date_from"], date_to=options["date_to"], actor=actor
            )
            self.stdout.write(
                f"Roster {period.starts_on}..{period.ends_on} (period {period.pk}): "
                f"{period.days_off.count()} preferred day(s) off."
            )
        elif action in ("off", "on"):
            day_off = day_off_set_by(
                driver_id=options["driver"],
                day=options["day"],
                off=action == "off",
                actor=actor,
                reason=day_off_reason_arg(options.get("reason", "")),
            )
            driver = options["driver"].strip().upper()
            day = day_parse(options["day"], name="day")
            self.stdout.write(
                f"{driver} is off on {day}." if day_off else f"{driver} works on {day}."
            )
        elif action == "preferred":
            driver = preferred_day_off_set_by(
                driver_id=options["driver"], weekday=weekday_parse(options["weekday"]), actor=actor
            )
            self.stdout.write(
                f"{driver.driver_id} preferred day off: {weekday_name(driver.preferred_day_off)}."
            )
        else:
            self._show(options)

    def _show(self, options: dict[str, Any]) -> None:
        roster = selectors.roster_show(
            date_from=day_parse(options["date_from"], name="from"),
            date_to=day_parse(options["date_to"], name="to"),
        )
        if options["json"]:
            self.stdout.write(jsonutil.dumps(roster, indent=2))
            return
        write = self.stdout.write
        write(f"Roster {roster['from']}..{roster['to']}:")
        for period in roster["periods"]:
            write(
                f"  period {period['id']}: {period['from']}..{period['to']} "
                f"by {period['created_by']}"
            )
        if not roster["days_off"]:
            write("No days off.")
        for day_off in roster["days_off"]:
            reason = f": {day_off['reason']}" if day_off["reason"] else ""
            weekday = weekday_name(day_off["day"].weekday())[:3]
            write(
                f"{day_off['day']} {weekday}  {day_off['driver_id']} {day_off['driver_name']} "
                f"off{reason}"
            )
