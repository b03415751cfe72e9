"""TukTuk Ledger: M-Pesa payments and balance ledger for electric-tuktuk fleets."""

__version__ = "0.1.0"
