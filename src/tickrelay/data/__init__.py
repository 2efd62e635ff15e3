"""Package data: embedded recordings (see recordings/README.md for sources and licences)."""
