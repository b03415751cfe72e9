"""A Daraja simulator (docs/daraja-simulator.md) and the C2B load generator behind `simulate`.

Neither part imports Django models, so the simulator can run without a database.
"""

from tuktuk.mpesa.simulator.server import OUTCOMES, DarajaService, DarajaSimulator, SimConfig

__all__ = ["OUTCOMES", "DarajaService", "DarajaSimulator", "SimConfig"]
