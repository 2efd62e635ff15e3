"""Protocol V2: pure (sans-I/O) encoding and decoding. The normative spec is docs/protocol.md."""
