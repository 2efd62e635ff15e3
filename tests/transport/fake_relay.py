"""A process that listens on a relay path and is no relay: ``python -m tests.transport.fake_relay PATH
[UID]``. It binds PATH, then (as root, given UID) becomes that user before it listens, as another user's
process would be. It answers a client's Hello with a HelloAck and a trade in the same write, then keeps
the connection open and silent until the client leaves; then the next client. It prints "listening"
once clients may connect."""

from __future__ import annotations

import contextlib
import os
import socket
import sys

from tickrelay.protocol.codec import encode_trade_message, make_sequence
from tickrelay.protocol.link import HelloAck, encode_control
from tickrelay.protocol.messages import Trade
from tickrelay.protocol.symbols import asset_id_for


FAKE_TRADE = Trade(asset_id_for("BTC/USD"), 1_00000000, 5_00000000, 1, 100, 51, 0)  # BTC at 1 USD


def main(path: str, uid: int | None) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    if uid is not None:
        os.setuid(uid)  # SO_PEERCRED reports who called listen()
    server.listen()
    print("listening", flush=True)
    while True:  # one client at a time
        conn, _ = server.accept()
        with conn, contextlib.suppress(OSError):
            if conn.recv(1 << 16):  # the Hello (a client that refused us has left)
                conn.sendall(
                    encode_control(HelloAck(1, 0, 1 << 20))
                    + encode_trade_message(3, make_sequence(1, 1), 1_700_000_000_000_000_000, FAKE_TRADE)
                )
                conn.recv(1)  # until the client leaves


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
