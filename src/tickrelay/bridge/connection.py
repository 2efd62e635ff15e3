"""The NATS side shared by both bridges: connecting with reconnects counted, and the JetStream streams.

nats-py reconnects by itself (``allow_reconnect``, every ``reconnect_time_wait``, for ever) and
re-subscribes; while disconnected a publish goes to its pending buffer (``pending_size``) and raises
OutboundBufferLimitError beyond it. The first connect is retried too, until ``stop`` is set, so a
bridge may start before its server. A refusal that retrying cannot cure (credentials, permissions, an
untrusted certificate, a server without TLS when TLS is on) is not retried: the bridge stops and says
why in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from typing import Any

from nats.aio.client import Client
from nats.errors import AuthorizationError, Error as NatsError, SlowConsumerError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from tickrelay.bridge.auth import NatsAccess
from tickrelay.bridge.subjects import LAST_PREFIX, PREFIX
from tickrelay.errors import NatsRefused


STREAM = "TICKRELAY"  # every message, kept max_age (replay)
LAST_STREAM = "TICKRELAY_LAST"  # one message per subject: each instrument's current book and its meta
FLUSH_HEADER = "Tickrelay-Flush"
UPTO_HEADER = "Tickrelay-Upto"  # on a last-value book: source.stream_id.counter of the last change


@dataclasses.dataclass
class NatsStats:
    disconnects: int = 0
    reconnects: int = 0
    slow_consumer: int = 0  # nats-py dropped a message: the subscription's pending limit was reached
    errors: int = 0
    last_error: str = ""
    refused: str = ""  # why the server refused us (credentials, permissions, TLS): the bridge stops


class _TlsNotOffered(NatsError):
    def __str__(self) -> str:
        return "the server does not offer TLS (its INFO has no tls_required)"


class _Client(Client):
    """nats-py's client, refusing to send credentials in clear: nats-py skips the TLS handshake when the
    server's INFO does not ask for TLS, even with a TLS context given, so a server (or anyone in the
    path) that leaves ``tls_required`` out would get the CONNECT line, password and all, in clear.
    ``_connect_command`` is the one point between reading INFO and sending CONNECT."""

    def __init__(self, *, tls: bool) -> None:
        super().__init__()
        self._tickrelay_tls = tls

    def _connect_command(self) -> bytes:
        if self._tickrelay_tls and not self._server_info.get("tls_required"):
            raise _TlsNotOffered()
        command: bytes = super()._connect_command()
        return command


_CREDENTIALS = "nats.user/password, token, creds or nkey_seed"
_HINTS = (
    ("authorization violation", f"the server does not accept these credentials ({_CREDENTIALS})"),
    ("permissions violation", "the NATS user lacks this permission (docs/nats.md: what each bridge needs)"),
    ("authentication expired", "the credentials have expired"),
)  # fmt: skip


class _NoSslEofNoise(logging.Filter):
    """nats-py's transport answers EOF with True, which asyncio (and uvloop) log as a warning on every
    TLS connection that closes: noise on the bridge's stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received() has no effect when using ssl" not in record.getMessage()


_EOF_NOISE = _NoSslEofNoise()


def refusal(exc: BaseException, access: NatsAccess) -> str | None:
    """Why the server refused us for good (credentials, permissions, TLS), or None for a failure that
    retrying may cure (the server down or restarting)."""
    text = str(exc).replace("nats: ", "").strip("'")  # (nats-py lower-cases asynchronous -ERR lines)
    if isinstance(exc, AuthorizationError):
        text = "authorization violation"
    for marker, hint in _HINTS:
        if marker in text.lower():
            if marker == "authorization violation" and not access.credentials:
                hint = f"the server wants credentials ({_CREDENTIALS})"
            return f"NATS refused us: {text}: {hint}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"NATS server certificate not trusted: {exc.verify_message} (nats.tls_ca: the CA to trust)"
    if isinstance(exc, ssl.SSLError):
        return (
            f"NATS TLS handshake failed: {exc.reason or exc} (a server verifying clients needs nats.tls_cert)"
        )
    if isinstance(exc, _TlsNotOffered):
        return f"NATS: {exc}; refusing to connect without it (TLS is on: a tls:// URL or nats.tls_*)"
    return None


async def connect(
    servers: list[str],
    name: str,
    stats: NatsStats,
    stop: asyncio.Event,
    access: NatsAccess,
    *,
    pending_size: int = 64 << 20,
) -> Client | None:
    """A connected client, or None if ``stop`` was set first.

    Raises:
        NatsRefused: the server refused the credentials or the TLS setup at the first connect. Later
            (a reconnect, a permission denied) the refusal goes to ``stats.refused`` and sets ``stop``.
    """
    client = _Client(tls=access.tls is not None)
    if access.tls is not None:
        logging.getLogger("asyncio").addFilter(_EOF_NOISE)

    async def on_disconnect() -> None:
        stats.disconnects += 1

    async def on_reconnect() -> None:
        stats.reconnects += 1

    async def on_error(exc: Exception) -> None:
        if isinstance(exc, SlowConsumerError):
            stats.slow_consumer += 1
        else:
            stats.errors += 1
        stats.last_error = f"{type(exc).__name__}: {exc}"
        why = refusal(exc, access)
        if why is None or stats.refused:
            return
        stats.refused = why
        if not client.is_connected and not client.is_reconnecting:  # the first connect: end its loop
            raise NatsRefused(why)
        stop.set()

    async def on_closed() -> None:  # nats-py closes for good only on an error it will not retry
        if not stop.is_set() and not stats.refused:
            error = client.last_error
            why = refusal(error, access) if error else None
            stats.refused = why or f"NATS closed the connection: {error}"
            stop.set()

    options: dict[str, Any] = {
        "servers": servers, "name": name, "allow_reconnect": True, "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.2, "connect_timeout": 2, "ping_interval": 5, "max_outstanding_pings": 2,
        "pending_size": pending_size, "disconnected_cb": on_disconnect, "reconnected_cb": on_reconnect,
        "error_cb": on_error, "closed_cb": on_closed, "tls": access.tls, **access.credentials,
    }  # fmt: skip
    # nats-py retries the first connect itself (max_reconnect_attempts -1), so it returns connected,
    # raises what on_error raised, or is cancelled here when stop is set first.
    connecting = asyncio.ensure_future(client.connect(**options))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((connecting, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        connecting.cancel()  # (no-op once it is done)
    try:
        await connecting
    except (NatsRefused, asyncio.CancelledError):
        # (closing after a failed TLS handshake waits for ever on the half-open transport)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.close(), 1.0)
        if stats.refused:
            raise NatsRefused(stats.refused) from None
        return None
    return client


def stream_configs(max_age_s: float, replicas: int, max_bytes: int = -1) -> list[StreamConfig]:
    """The replay stream (``tickrelay.>``, ``max_age_s``) and the last-value stream (``tickrelay-last.>``,
    one message per subject), file storage, ``replicas`` copies in a cluster."""
    return [
        StreamConfig(name=STREAM, subjects=[f"{PREFIX}.>"], max_age=max_age_s, max_bytes=max_bytes,
                     storage=StorageType.FILE, discard=DiscardPolicy.OLD, num_replicas=replicas),
        StreamConfig(name=LAST_STREAM, subjects=[f"{LAST_PREFIX}.>"], max_msgs_per_subject=1,
                     storage=StorageType.FILE, discard=DiscardPolicy.OLD, num_replicas=replicas),
    ]  # fmt: skip


async def ensure_streams(js: JetStreamContext, configs: list[StreamConfig]) -> None:
    """Create the streams, or bring existing ones to ``configs``."""
    for config in configs:
        try:
            await js.add_stream(config)
        except BadRequestError:  # exists with another configuration
            await js.update_stream(config)
