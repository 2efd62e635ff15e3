"""Every exception tickrelay raises on purpose, grouped by what the caller does next.

* TickrelayError            root; never raised directly
    * ProtocolError         close the stream: its bytes can't be trusted any more
        * BadMagic, UnsupportedVersion, BadDomain, PayloadTooLarge, ChecksumMismatch, MalformedTlv
    * FixedPointError       the decimal text is not a number we can represent exactly (bad syntax,
                            out of int64 range after scaling by 10^8)
    * SymbolError           a symbol that cannot be normalized or given an asset_id
    * VenueMessageError     count it, keep a sample, drop the frame, keep streaming
    * ConfigError           refuse to start (exit status 2); the message names the key and its source
    * RelayError            the relay refused us (handshake, validation); the message says why
    * NatsRefused           NATS refused a bridge (credentials, permissions, TLS): stop, say what to fix
Any other exception escaping ``protocol/`` or ``venues/`` is a bug (h11's contract).
"""

from __future__ import annotations


class TickrelayError(Exception):
    """Root of the tree; never raised directly."""


class ProtocolError(TickrelayError):
    """The byte stream violates Protocol V2 (docs/protocol.md)."""


class BadMagic(ProtocolError):
    """The 4 bytes where a header starts are not 0xDEADBEEF."""


class UnsupportedVersion(ProtocolError):
    """The header's version byte is not one this build speaks."""


class BadDomain(ProtocolError):
    """The relay_domain byte is 0 or unknown, or not the domain this stream carries."""


class PayloadTooLarge(ProtocolError):
    """payload_size exceeds the configured limit."""


class ChecksumMismatch(ProtocolError):
    """The CRC-32 in the header does not match header bytes 0..27 + payload."""


class MalformedTlv(ProtocolError):
    """A TLV's length runs past the payload, or a known TLV has the wrong length."""


class FixedPointError(TickrelayError):
    """A decimal string that is not a number, or out of the int64 x 10^8 range."""


class SymbolError(TickrelayError):
    """A symbol that cannot be normalized or mapped to an asset_id."""


class VenueMessageError(TickrelayError):
    """An exchange frame we could not use: counted, sampled, dropped."""

    def __init__(self, venue: str, raw: bytes, reason: str) -> None:
        super().__init__(f"{venue}: {reason}")
        self.venue = venue
        self.raw = raw
        self.reason = reason


class ConfigError(TickrelayError):
    """Invalid configuration: names the key, where the value came from and what is allowed."""


class RelayError(TickrelayError):
    """The relay refused or cut off this client; the message says why."""


class UnsafeSocket(TickrelayError):
    """A socket whose directory another user could write or owns, a file in the way, or a peer of an
    untrusted user: refuse to bind or connect; the message says what to fix."""


class NatsRefused(TickrelayError):
    """The NATS server refused the bridge (credentials, permissions, TLS); the message says what to fix."""
