from tests.relay.conftest import relay  # noqa: F401 - the real-relay fixture, shared
