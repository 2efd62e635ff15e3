"""The relay: one Unix socket per domain, publishers in, filtered fan-out to subscribers."""
