"""Collectors: one venue connection each, straight into the relay."""
