"""tickrelay: normalized, gap-checked exchange market data over Protocol V2 and a Unix-socket relay."""

__version__ = "0.1.0"
