"""The fault campaign's view of a database other than the test database (the private
PostgreSQL cluster it crashes): `python -m tests.support.faults_db setup|check`.

- `setup`: the fleet of tests/support/factories.make_fleet (7 drivers, TUK001...).
- `check`: reads {"sent": [...], "acknowledged": [...]} on stdin, asserts the invariants
  (tests/support/invariants.py) and prints the campaign's counts as JSON.

TUKTUK_DATABASE_URL says which database.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tuktuk.settings")
    import django

    django.setup()
    from tests.support.factories import make_fleet
    from tests.support.faults import money_counts
    from tests.support.invariants import assert_invariants

    command = sys.argv[1]
    if command == "setup":
        drivers = make_fleet()
        print(json.dumps({"drivers": len(drivers)}))
        return 0
    if command == "check":
        given = json.loads(sys.stdin.read())
        sent, acknowledged = set(given["sent"]), set(given["acknowledged"])
        assert_invariants()
        print(json.dumps(money_counts(sent=sent, acknowledged=acknowledged)))
        return 0
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    sys.exit(main())
