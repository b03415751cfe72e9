"""The fault campaign at scale: the scenarios of tests/faults/ (one harness,
tests/support/faults.py) run with large counts, and their counts printed as a table.

    .venv/bin/python bench/faults/run.py --scenario all --scale large
    .venv/bin/python bench/faults/run.py --scenario storm,web-kill --backends postgresql
    make bench-faults                       # all scenarios, large, every database
    .venv/bin/python bench/faults/run.py --tiny --backends sqlite   # fuzz, small: still works?

It runs pytest through tools/run_tests.py (so each database gets its own fresh test database,
as in `make test`) with TUKTUK_FAULTS_SCALE and TUKTUK_FAULTS_REPORT set; each scenario
appends one JSON line of counts to the report, printed here at the end:

    sent          distinct TransIDs (payouts, bodies) sent
    acknowledged  answered 200 at least once (M-Pesa stops retrying those)
    credited      with a transaction in the ledger (payouts: completed)
    doubled       credited more than once (must be 0)
    lost          acknowledged but not credited (must be 0)
    double-paid   payments with two payouts, or paid twice by M-Pesa (must be 0)

The exit status is pytest's: non-zero when any scenario's checks failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {
    "storm": "tests/faults/test_duplicate_storm.py",
    "web-kill": "tests/faults/test_web_kill.py",
    "worker-kill": "tests/faults/test_worker_kill.py",
    "db-crash": "tests/faults/test_database_crash.py",
    "midnight": "tests/faults/test_midnight_burst.py",
    "fuzz": "tests/faults/test_fuzzed_bodies.py",
    "roles": "tests/faults/test_api_writes_refused.py",
}
COLUMNS = ["sent", "acknowledged", "credited", "doubled", "lost", "double_paid"]
SHOWN = {"scenario", "backend", "scale", "credited_unsent", *COLUMNS}


def table(rows: list[dict]) -> str:
    header = ["scenario", "backend", *[c.replace("_", "-") for c in COLUMNS], "also"]
    lines = [header]
    for row in rows:
        also = ", ".join(f"{k}={v}" for k, v in row.items() if k not in SHOWN)
        lines.append(
            [row["scenario"], row["backend"], *[str(row.get(c, "")) for c in COLUMNS], also]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  "
        + line[-1]
        for line in lines
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", help=f"all (the default), or some of {list(SCENARIOS)}")
    parser.add_argument("--scale", default="large", choices=["small", "large"])
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="--scale small and, unless --scenario says otherwise, only fuzz (about 10 s per "
        "database): checks the campaign still runs",
    )
    parser.add_argument("--backends", default="sqlite,postgresql,mariadb")
    parser.add_argument("--json", help="also write the rows to this file")
    args, pytest_args = parser.parse_known_args()
    if args.tiny:
        args.scale = "small"
        args.scenario = args.scenario or "fuzz"
    args.scenario = args.scenario or "all"
    names = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    with tempfile.NamedTemporaryFile(prefix="tuktuk-faults-", suffix=".jsonl") as report:
        env = dict(os.environ, TUKTUK_FAULTS_SCALE=args.scale, TUKTUK_FAULTS_REPORT=report.name)
        command = [
            sys.executable,
            str(REPO_ROOT / "tools" / "run_tests.py"),
            "--backends",
            args.backends,
            *[SCENARIOS[n] for n in names],
            "-p",
            "no:logging",
            "-o",
            "timeout=7200",
            "-rfEx",
            *pytest_args,
        ]
        started = time.monotonic()
        code = subprocess.call(command, env=env, cwd=REPO_ROOT)
        elapsed = time.monotonic() - started
        rows = [json.loads(line) for line in Path(report.name).read_text().splitlines() if line]
    print(f"\n===== fault campaign, scale {args.scale}, {elapsed:.0f} s =====")
    print(table(rows))
    if not rows:
        print("(no scenario reported its counts: see pytest's output above)")
    bad = [r for r in rows if any(r.get(k) for k in ("doubled", "lost", "double_paid"))]
    print("exactly-once: " + ("VIOLATED in " + str(len(bad)) + " row(s)" if bad else "ok"))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return code or (1 if bad else 0)


if __name__ == "__main__":
    sys.exit(main())
