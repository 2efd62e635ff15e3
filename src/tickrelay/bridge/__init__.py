"""The NATS JetStream bridge: relay <-> NATS subjects (docs/nats.md)."""
