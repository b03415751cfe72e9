"""One mapping of operator errors: HTTP status, CLI exit code, admin message level."""

from __future__ import annotations

import pytest
from django.contrib import messages
from django.core.management import CommandError, call_command

from tests.support.factories import make_driver
from tuktuk.backoffice.errors import error_shape
from tuktuk.core.errors import Conflict, InvalidInput, NotAllowed, NotFound, OperatorError


@pytest.mark.parametrize(
    ("error", "status", "exit_code"),
    [
        (InvalidInput("x"), 400, 2),
        (NotFound("x"), 404, 3),
        (NotAllowed("x"), 403, 4),
        (Conflict("x"), 409, 5),
        (OperatorError("x"), 400, 2),
    ],
)
def test_each_kind_has_one_shape(error: OperatorError, status: int, exit_code: int) -> None:
    shape = error_shape(error)
    assert (shape.http_status, shape.cli_exit) == (status, exit_code)
    assert shape.admin_level in (messages.ERROR, messages.WARNING)


@pytest.mark.django_db
def test_the_cli_exits_with_the_mapped_code(people: dict[str, object]) -> None:
    make_driver(1)
    with pytest.raises(CommandError) as not_found:
        call_command("statement", "DRV-999999")
    assert not_found.value.returncode == 3 and "no driver" in str(not_found.value)
    with pytest.raises(CommandError) as invalid:
        call_command("statement", "DRV-112001", "--from", "10/03/2026")
    assert invalid.value.returncode == 2 and "YYYY-MM-DD" in str(invalid.value)
    with pytest.raises(CommandError) as refused:
        call_command(
            "adjustment", "add", "DRV-112001", "100", "--reason", "x", "--user", "accountant"
        )
    assert refused.value.returncode == 4
    with pytest.raises(CommandError) as missing:
        call_command("payouts", "retry", "999", "--reason", "x", "--user", "manager")
    assert missing.value.returncode == 3 and "no payout 999" in str(missing.value)
    with pytest.raises(CommandError) as still_open:
        call_command("close_day", "--date", "2099-01-01", "--user", "manager")
    assert still_open.value.returncode == 2 and "still open" in str(still_open.value)
