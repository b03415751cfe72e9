"""bench/where_time_goes.py reads py-spy's raw output: samples by process and by owner."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.support.live_server import REPO_ROOT


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "where_time_goes", REPO_ROOT / "bench" / "where_time_goes.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["where_time_goes"] = module
    spec.loader.exec_module(module)
    return module


BENCH = 'process 10:"/x/.venv/bin/python bench/c2b_load.py --duration 20"'
WEB = 'process 11:"/x/.venv/bin/python -m granian tuktuk.wsgi:application --interface wsgi"'
ENGINE = 'process 12:"/x/.venv/bin/python -m tuktuk engine"'
# Files as py-spy names them: by module path (ours, Django's, psycopg's, granian's, the
# standard library's), or in full outside sys.path.
STORE = "callback_store (tuktuk/mpesa/callbacks.py:90)"
LANE = "__call__ (tuktuk/backoffice/confirmation_lane.py:120)"
EXECUTE = "execute (psycopg/cursor.py:100)"
QUERY = "as_sql (django/db/models/sql/compiler.py:1791)"
POST = "payments_post_batch (/x/src/tuktuk/ledger/batch_posting.py:321)"
RUNNER = "_runner (granian/wsgi.py:80)"
LOOP = "run (asyncio/base_events.py:600)"
RAW = "\n".join(
    [
        f"{BENCH};{WEB};{LANE};{STORE};{EXECUTE} 30",
        f"{BENCH};{WEB};{LANE} 6",
        f"{BENCH};{WEB};{RUNNER} 4",
        f"{BENCH};{ENGINE};{POST};{QUERY} 45",
        f"{BENCH};{ENGINE};{POST} 5",
        f"{BENCH};{LOOP} 8",
        # A set-up process whose command line holds a newline (python -c): one sample.
        f'{BENCH};process 13:"/x/.venv/bin/python -c import json\nprint(1)";{LOOP} 2',
    ]
)


def test_samples_are_counted_by_process_and_by_owner(tmp_path: Path) -> None:
    raw = tmp_path / "c2b.raw"
    raw.write_text(RAW + "\n")
    report = _script().where(raw, top=5)
    assert "100 samples of running Python threads" in report
    web = report.split("== web: ")[1].split("== ")[0]
    assert web.startswith("40 samples, 40 % of all")
    assert "75.0 %  psycopg" in web and "15.0 %  ours (src/tuktuk)" in web
    assert "10.0 %  other libraries (granian, ...)" in web
    assert "75.0 %  callback_store (callbacks.py)" in web  # inclusive: under the lane
    assert "90.0 %  __call__ (confirmation_lane.py)" in web
    engine = report.split("== engine: ")[1].split("== ")[0]
    assert engine.startswith("50 samples, 50 % of all") and "90.0 %  Django" in engine
    assert "== client: 8 samples" in report and "== other: 2 samples" in report
    client = report.split("== client: ")[1].split("== ")[0]
    assert "100.0 %  Python (standard library)" in client
