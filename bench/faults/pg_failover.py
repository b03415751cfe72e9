"""Fault bench: kill the PostgreSQL primary under C2B load (pg_auto_failover); nothing is lost.

The scenario is tests/support/failover_scenario.py (its docstring has the steps); this runs it
with more load and rounds than the test in tests/faults/ does, and prints the measurements:
failover time (kill to the monitor showing the standby writable; kill to the first 200), how
many requests were refused meanwhile, and the exactly-once checks. Exit status 1 if any check
failed in any round.

Needs Debian's pg-auto-failover-cli and postgresql-15-auto-failover (`make bench-failover`
installs them). Runs its own monitor and two nodes on free loopback ports in a temporary
directory, as the postgres user when run as root; the PostgreSQL on 5432 is not touched.

Usage:  .venv/bin/python bench/faults/pg_failover.py [--rounds 3] [--warmup 500] [--after 500]
        [--senders 16] [--workers 2 --threads 4] [--burst 100] [--json FILE]
        .venv/bin/python bench/faults/pg_failover.py --tiny   # 1 round, 10 + 10 confirmations
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))  # tests.support, when run as a script

from tests.support import pg_auto_failover  # noqa: E402
from tests.support.failover_scenario import failover_run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="formations built and failed over")
    parser.add_argument("--warmup", type=int, default=500, help="acknowledged before the kill")
    parser.add_argument("--after", type=int, default=500, help="acknowledged after the kill")
    parser.add_argument("--senders", type=int, default=16, help="concurrent HTTP senders")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--burst", type=int, default=100, help="fresh requests after failover")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="1 round, 10 acknowledged before and 10 after the kill, 4 senders, a burst of 8: "
        "checks the bench works (about 30 s, most of it building the formation)",
    )
    args = parser.parse_args()
    if args.tiny:
        args.rounds, args.warmup, args.after, args.senders, args.burst = 1, 10, 10, 4, 8

    reason = pg_auto_failover.missing()
    if reason:
        print(f"pg_failover bench: cannot run: {reason}", file=sys.stderr)
        return 2
    results = []
    failed = False
    for number in range(1, args.rounds + 1):
        work = Path(tempfile.mkdtemp(prefix="tuktuk-failover-bench-"))
        started = time.monotonic()
        report = failover_run(
            work=work,
            warmup=args.warmup,
            after=args.after,
            senders=args.senders,
            workers=args.workers,
            threads=args.threads,
            burst=args.burst,
            timeout=300,
        )
        summary = report.summary()
        summary["problems"] = report.problems()
        summary["round_seconds"] = round(time.monotonic() - started, 1)
        results.append(summary)
        failed = failed or bool(summary["problems"])
        print(f"round {number}: " + json.dumps(summary, indent=1))
        if summary["problems"]:
            print("monitor events:", file=sys.stderr)
            for when, what in report.events:
                print(f"  {when}  {what}", file=sys.stderr)
        if args.keep or summary["problems"]:
            print(f"logs: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    promotion = [r["failover_seconds_kill_to_promotion"] for r in results]
    outage = [r["outage_seconds_kill_to_first_200"] for r in results]
    print(
        f"\n{len(results)} round(s): kill -> standby promoted {min(promotion):.1f}-"
        f"{max(promotion):.1f} s (median {statistics.median(promotion):.1f}); kill -> first 200 "
        f"{min(outage):.1f}-{max(outage):.1f} s (median {statistics.median(outage):.1f}); "
        f"{sum(r['acknowledged'] for r in results)} confirmations acknowledged, "
        f"{sum(r['transactions'] for r in results)} transactions, "
        f"{sum(sum(r['refused_during_outage'].values()) for r in results)} refused attempts "
        f"retried; exactly-once {'FAILED' if failed else 'ok'}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
