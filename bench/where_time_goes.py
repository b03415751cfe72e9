"""Where the CPU goes under the C2B load: py-spy's samples of bench/c2b_load.py, by process
(web server, posting engines, load generator) and by what the sampled code belongs to.

    .venv/bin/py-spy record --subprocesses --rate 200 --format raw -o /tmp/c2b.raw -- \\
        .venv/bin/python bench/c2b_load.py --scenarios hot --concurrency 32 --engines 2 \\
        --skip-pgbench --no-query-count --duration 20
    .venv/bin/python bench/where_time_goes.py /tmp/c2b.raw [--top 12]

py-spy (a sampling profiler that reads another process's Python stacks; a dev dependency)
samples only threads that are running, not those waiting for the database or the network, so
the shares are of CPU, not of wall time. Each sample is counted for the innermost process in
its stack (the granian worker, a `tuktuk engine`, the load generator; the set-up's short-lived
processes under "other"), then by the file of its innermost frame: our code (src/tuktuk),
Django, psycopg, the rest of the libraries, or the Python standard library. PostgreSQL is not
Python and is not sampled: c2b_load's own table gives its share.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

_SAMPLE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$", re.DOTALL)
_PROCESS = re.compile(r'^process \d+:"(?P<command>.*)"$', re.DOTALL)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*):\d+\)$", re.DOTALL)
ROLES = ("web", "engine", "client", "other")


def samples(text: str) -> Iterator[tuple[list[str], int]]:
    """(frames outermost first, count) per line of py-spy's raw output; a command line with a
    newline in it (python -c) continues on the next line."""
    pending = ""
    for line in text.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        match = _SAMPLE.match(pending)
        if match:
            yield match["stack"].split(";"), int(match["count"])
            pending = ""


def role(frames: Iterable[str]) -> str:
    command = ""
    for frame in frames:
        process = _PROCESS.match(frame)
        if process:
            command = process["command"]
    if "granian" in command or "gunicorn" in command:
        return "web"
    if re.search(r"\btuktuk\b.* engine\b|-m tuktuk engine", command):
        return "engine"
    if "c2b_load.py" in command and "--seed-drivers" not in command:
        return "client"
    return "other"


def owner(path: str) -> str:
    """Who a frame's file belongs to. py-spy names a file by its module's path (tuktuk/mpesa/
    callbacks.py, django/db/..., threading.py), or by its full path outside sys.path."""
    parts = Path(path).parts
    top = parts[-1].removesuffix(".py") if len(parts) == 1 else parts[0]
    if path.startswith("/"):
        top = next((p for p in ("tuktuk", "django", "psycopg") if f"/{p}/" in path), "")
    if top == "tuktuk":
        return "ours (src/tuktuk)"
    if top == "django":
        return "Django"
    if top.startswith("psycopg"):
        return "psycopg"
    if top in sys.stdlib_module_names or top.startswith("<frozen") or top == "<string>":
        return "Python (standard library)"
    return "other libraries (granian, ...)"


def where(path: Path, top: int) -> str:
    by_role: Counter[str] = Counter()
    owners: dict[str, Counter[str]] = defaultdict(Counter)
    leaves: dict[str, Counter[str]] = defaultdict(Counter)
    ours: dict[str, Counter[str]] = defaultdict(Counter)  # inclusive, once per sample
    for frames, count in samples(path.read_text(errors="replace")):
        who = role(frames)
        by_role[who] += count
        code = [m for m in map(_FRAME.match, frames) if m]
        if not code:
            continue
        leaf = code[-1]
        owners[who][owner(leaf["file"])] += count
        leaves[who][f"{leaf['function']} ({Path(leaf['file']).name})"] += count
        for name in {
            f"{m['function']} ({Path(m['file']).name})"
            for m in code
            if owner(m["file"]) == "ours (src/tuktuk)"
        }:
            ours[who][name] += count
    total = sum(by_role.values()) or 1
    lines = [f"{path}: {total} samples of running Python threads"]
    for who in ROLES:
        n = by_role[who]
        if not n:
            continue
        lines.append("")
        lines.append(f"== {who}: {n} samples, {100 * n / total:.0f} % of all")
        lines.append("  by the code the sample was in:")
        for name, k in owners[who].most_common():
            lines.append(f"    {100 * k / n:5.1f} %  {name}")
        lines.append(f"  top {top} functions (self):")
        for name, k in leaves[who].most_common(top):
            lines.append(f"    {100 * k / n:5.1f} %  {name}")
        if ours[who]:
            lines.append(f"  top {top} of our functions (inclusive):")
            for name, k in ours[who].most_common(top):
                lines.append(f"    {100 * k / n:5.1f} %  {name}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path, help="py-spy record --format raw output")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    print(where(args.raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
