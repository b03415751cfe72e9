"""Archive files: rows of one table written as JSON lines into a gzip file, made durable and
read back before any of those rows may be deleted (docs/design.md, "Retention").

Each line is one row in Django's serialization shape, `{"model": "mpesa.callback", "pk": 17,
"fields": {...}}`, with datetimes in full ISO 8601 (microseconds kept), so a file can be put back
with `tuktuk loaddata FILE.jsonl.gz`.

The archive is at-least-once: rows are written, the file is fsynced, renamed into place and
verified, and only then deleted; a crash after the file is in place but before (or during) the
delete leaves the rows in the database, and the next run archives them again into a new file.
Every line carries its primary key, so duplicates across files are plain to see.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core import serializers
from django.db import models
from django.utils import timezone

SUFFIX = ".jsonl.gz"


class ArchiveError(RuntimeError):
    """The archive file could not be written or read back whole: nothing was deleted."""


@dataclass(frozen=True)
class ArchiveRun:
    """What one table's archiving did: `archived` rows are in `path` (None when there were none
    or on a dry run), `deleted` of them left the database (fewer when a row became needed again
    between the write and the delete: it stays, and is in the file as well)."""

    name: str
    archived: int
    deleted: int
    path: Path | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "archived": self.archived,
            "deleted": self.deleted,
            "file": str(self.path) if self.path else None,
        }


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()  # full precision, unlike DjangoJSONEncoder's milliseconds
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def row_line(row: models.Model) -> bytes:
    (serialized,) = serializers.serialize("python", [row])
    return json.dumps(serialized, default=_default, ensure_ascii=False).encode("utf-8") + b"\n"


def archive_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of an archive file, one dict per line (as written by `archive_write`)."""
    with gzip.open(path, "rb") as handle:
        for line in handle:
            yield json.loads(line)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _final_path(directory: Path, name: str) -> Path:
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    return directory / f"{name}-{stamp}{SUFFIX}"


def _place(partial: Path, final: Path) -> Path:
    """Give the finished file its name without ever overwriting another run's file (two runs
    in the same second: the second gets `-2`)."""
    stem = final.name.removesuffix(SUFFIX)
    for n in range(1, 1000):
        candidate = final if n == 1 else final.with_name(f"{stem}-{n}{SUFFIX}")
        try:
            os.link(partial, candidate)  # fails if it exists, unlike rename
        except FileExistsError:
            continue
        partial.unlink()
        return candidate
    raise ArchiveError(f"no free file name for {final}")


def archive_write(
    *, directory: Path, name: str, batches: Iterable[Sequence[models.Model]]
) -> tuple[Path | None, int]:
    """Write every row of `batches` into a new archive file named `<name>-<local time>` in
    `directory`, make it durable (fsync of the file and of the directory) and read it back: the
    line count and a digest of the bytes must match what was written. Returns (path, rows);
    (None, 0) when there were no rows. Raises ArchiveError, leaving no file, if any step fails.
    Memory: one batch at a time."""
    rows = (row for batch in batches for row in batch)
    first = next(rows, None)
    if first is None:
        return None, 0  # nothing to archive: no file, not even the directory
    final = _final_path(directory, name)
    partial = directory / f".{final.name}.{os.getpid()}.partial"
    digest = hashlib.sha256()
    count = 0
    placed = False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(partial, "xb") as raw:
            # mtime=0: the same rows give the same bytes; the name carries the time.
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as compressed:
                for row in itertools.chain([first], rows):
                    line = row_line(row)
                    compressed.write(line)
                    digest.update(line)
                    count += 1
            raw.flush()
            os.fsync(raw.fileno())
        path = _place(partial, final)
        placed = True
        _fsync_dir(directory)
    except OSError as exc:
        raise ArchiveError(
            f"cannot write the {name} archive in {directory}: {exc.strerror or exc}; "
            "nothing was deleted"
        ) from exc
    finally:
        if not placed:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
    _verify(path, count=count, sha256=digest.hexdigest())
    return path, count


def _verify(path: Path, *, count: int, sha256: str) -> None:
    digest = hashlib.sha256()
    read = 0
    try:
        with gzip.open(path, "rb") as handle:
            for line in handle:
                json.loads(line)
                digest.update(line)
                read += 1
    except (OSError, EOFError, ValueError) as exc:
        raise ArchiveError(
            f"the archive {path} cannot be read back ({exc}); nothing was deleted"
        ) from exc
    if read != count or digest.hexdigest() != sha256:
        raise ArchiveError(
            f"the archive {path} reads back {read} rows, {count} were written; nothing was deleted"
        )


def archive_pks(path: Path, *, chunk: int) -> Iterator[list[int]]:
    """The primary keys in an archive file, `chunk` at a time."""
    pks: list[int] = []
    for row in archive_lines(path):
        pks.append(int(row["pk"]))
        if len(pks) >= chunk:
            yield pks
            pks = []
    if pks:
        yield pks


def table_archive(
    *,
    name: str,
    directory: Path,
    select: Callable[[int, int], Sequence[models.Model]],
    delete: Callable[[list[int]], int],
    batch_size: int,
    dry_run: bool = False,
) -> ArchiveRun:
    """Archive one table: `select(after_pk, limit)` gives the next archivable rows in primary
    key order; `delete(pks)` deletes those of `pks` that are still archivable (it re-checks) and
    returns how many. On a dry run, only counts."""

    def batches() -> Iterator[Sequence[models.Model]]:
        after = 0
        while True:
            rows = select(after, batch_size)
            if not rows:
                return
            yield rows
            after = int(rows[-1].pk)

    if dry_run:
        return ArchiveRun(name=name, archived=sum(len(b) for b in batches()), deleted=0, path=None)
    path, count = archive_write(directory=directory, name=name, batches=batches())
    deleted = 0
    if path is not None:
        for pks in archive_pks(path, chunk=batch_size):
            deleted += delete(pks)
    return ArchiveRun(name=name, archived=count, deleted=deleted, path=path)
