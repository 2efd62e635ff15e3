"""Venue adapters. Pure: no I/O. One module per venue; ``VENUES`` is the explicit registry."""
