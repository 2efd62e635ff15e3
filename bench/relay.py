"""Relay throughput, end to end through a real relay process: one publisher process, N subscriber
processes, 74-byte Trade messages, the relay's default validation on (batch CRC + framing checks).

    python3 bench/relay.py [--subscribers N] [--filtered] [--messages M] [--runs 5]
                           [--cores native python] [--json]

The publisher sends pre-encoded batch envelopes (1 MiB, the size RelayOutput cuts them at) with plain
blocking socket writes, so the figure is the relay's capacity, not the cost of building messages in
Python (bench/channel.py measures RelayOutput). Each envelope is re-sent as is, so sequences repeat
across envelopes; the relay does not look at them. Subscribers read with plain recv_into and count
bytes. --filtered makes every subscriber ask for one venue of three: the relay then walks every
message. msgs_per_s_in: messages the relay took per second (publisher's first write to the relay's
Sync answer); deliveries_per_s: messages delivered to all subscribers per second (first byte to last).
Each core (the relay's data path compiled, or pure Python: TICKRELAY_NO_EXTENSIONS=1) gets its own relay
process, measured in the same invocation with the runs interleaved; the top-level figures are the first
core's, and ``cores`` holds each one's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack

from relayproc import relay_process
from tickrelay.native import CORE
from tickrelay.protocol.codec import Decoder, encode_trade_message, make_sequence
from tickrelay.protocol.link import Hello, Overflow, Role, Sync, decode_control, encode_batch, encode_control
from tickrelay.protocol.messages import Trade
from tickrelay.protocol.symbols import asset_id_for


MESSAGE_SIZE = 74
BATCH_MESSAGES = (1 << 20) // MESSAGE_SIZE
VENUES = (100, 101, 102)


def _batch(stream_id: int) -> bytes:
    asset = asset_id_for("BTC/USD")
    body = b"".join(
        encode_trade_message(
            3,
            make_sequence(stream_id, i + 1),
            i,
            Trade(asset, 6_000_000_000_000 + i, 1000, i, VENUES[i % 3], 51, i & 1),
        )
        for i in range(BATCH_MESSAGES)
    )
    return encode_batch(1, 3, make_sequence(stream_id, 1), BATCH_MESSAGES, 0, body)


def _handshake(path: str, hello: Hello) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(encode_control(hello))
    decoder = Decoder()
    while (m := decoder.next_message()) is None:
        decoder.feed(sock.recv(4096))
    decode_control(m)
    return sock


def publisher(path: str, batches: int) -> None:
    batch = _batch(stream_id=os.getpid() & 0xFFFF)
    sock = _handshake(path, Hello(Role.PUBLISHER, 1, 3, os.getpid() & 0xFFFF, name="bench"))
    start = time.perf_counter()
    for _ in range(batches):
        sock.sendall(batch)
    sock.sendall(encode_control(Sync(1)))
    decoder = Decoder()
    while (m := decoder.next_message()) is None:
        decoder.feed(sock.recv(4096))
    elapsed = time.perf_counter() - start
    answer = decode_control(m)
    assert isinstance(answer, Sync)
    print(json.dumps({"messages": answer.messages, "seconds": elapsed}), flush=True)


def subscriber(path: str, expect_bytes: int, venue: int | None) -> None:
    hello = Hello(
        Role.SUBSCRIBER, 1, 0, 0, Overflow.DROP, 256 << 20, "bench", venues=(venue,) if venue else ()
    )
    sock = _handshake(path, hello)
    print("ready", flush=True)
    buf = bytearray(4 << 20)
    got, first = 0, 0.0
    sock.settimeout(30)
    while got < expect_bytes:
        n = sock.recv_into(buf)
        if not n:
            break
        if not got:
            first = time.perf_counter()
        got += n
    print(json.dumps({"bytes": got, "first": first, "last": time.perf_counter()}), flush=True)


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)


def one_run(path: str, subscribers: int, filtered: bool, batches: int) -> dict[str, float]:
    total = batches * BATCH_MESSAGES
    per_sub = total // 3 if filtered else total
    subs = [
        _spawn(
            "--role",
            "subscriber",
            "--socket",
            path,
            "--expect",
            str(per_sub * MESSAGE_SIZE),
            "--venue",
            str(VENUES[k % 3] if filtered else 0),
        )
        for k in range(subscribers)
    ]
    for s in subs:
        assert s.stdout is not None
        assert s.stdout.readline().strip() == "ready"
    pub = _spawn("--role", "publisher", "--socket", path, "--batches", str(batches))
    pub_out, _ = pub.communicate(timeout=600)
    sent = json.loads(pub_out)
    results = [json.loads(s.communicate(timeout=600)[0]) for s in subs]
    delivered = sum(r["bytes"] for r in results) // MESSAGE_SIZE
    span = max(r["last"] for r in results) - min(r["first"] for r in results)
    assert sent["messages"] == total, sent
    return {
        "msgs_per_s_in": total / sent["seconds"],
        "deliveries_per_s": delivered / span,
        "delivered": delivered,
        "expected": per_sub * subscribers,
    }


CORE_ENV = {"native": {}, "python": {"TICKRELAY_NO_EXTENSIONS": "1"}}


def _summary(runs: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in ("msgs_per_s_in", "deliveries_per_s"):
        values = [r[key] for r in runs]
        out[key] = statistics.median(values)
        out[f"{key}_min"], out[f"{key}_max"] = min(values), max(values)
    out["delivered_fraction"] = min(r["delivered"] / r["expected"] for r in runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--filtered", action="store_true")
    parser.add_argument("--messages", type=int, default=3_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cores", nargs="+", choices=list(CORE_ENV), default=list(CORE_ENV))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--role", choices=["publisher", "subscriber"], help=argparse.SUPPRESS)
    parser.add_argument("--socket", help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--venue", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "publisher":
        return publisher(args.socket, args.batches)
    if args.role == "subscriber":
        return subscriber(args.socket, args.expect, args.venue or None)
    if "native" in args.cores and CORE != "native":
        parser.error("the compiled core is not built or is turned off (README: The compiled core)")
    batches = max(1, args.messages // BATCH_MESSAGES)
    runs: dict[str, list[dict[str, float]]] = {core: [] for core in args.cores}
    with ExitStack() as stack:
        paths = {core: stack.enter_context(relay_process(env=CORE_ENV[core])) for core in args.cores}
        for path in paths.values():
            one_run(path, args.subscribers, args.filtered, max(1, batches // 4))  # warm-up
        for i in range(args.runs):  # interleaved, so a slow spell of the machine hits every core
            for core, path in paths.items():
                print(f"relay: run {i + 1}/{args.runs}, {core} core", file=sys.stderr, flush=True)
                runs[core].append(one_run(path, args.subscribers, args.filtered, batches))
    report: dict[str, object] = {
        "subscribers": args.subscribers,
        "filtered": args.filtered,
        "messages_per_run": batches * BATCH_MESSAGES,
        "message_bytes": MESSAGE_SIZE,
        "runs": args.runs,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "core": args.cores[0],
    }
    cores = {core: _summary(done) for core, done in runs.items()}
    report |= cores[args.cores[0]]
    report["cores"] = cores
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(
                f"{key:26} {value:,.0f}" if isinstance(value, float) and value > 10 else f"{key:26} {value}"
            )


if __name__ == "__main__":
    main()
