"""Client side of the relay link: RelayOutput (publishers) and subscribe() (consumers)."""
