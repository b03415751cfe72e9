"""The Django admin for every layer, registered here (the back office is the only layer that
knows about all the others). Django's autodiscovery imports this package."""

from tuktuk.backoffice.admin import core, fleet, ledger, mpesa, payouts  # noqa: F401 - registers
