"""Reads on the fleet: finding a driver the way operators and programs name one."""

from __future__ import annotations

from tuktuk.core.errors import NotFound
from tuktuk.fleet.models import Driver


def driver_id_canonical(ref: str) -> str:
    return ref.strip().upper()


def driver_get(*, ref: str, by_name: bool = False) -> Driver:
    """The driver with id `ref` (DRV-112001, any case, spaces around ignored).

    With `by_name`, a name that matches exactly one driver (case-insensitively) also works, as
    in the legacy reconciliation tools. URLs and statements use ids only: a reference that
    names a resource must not match two ways.
    """
    driver = Driver.objects.filter(driver_id=driver_id_canonical(ref)).first()
    if driver is None and by_name:
        matches = list(Driver.objects.filter(name__iexact=ref.strip())[:2])
        driver = matches[0] if len(matches) == 1 else None
    if driver is None:
        raise NotFound(f"no driver {ref!r}")
    return driver
