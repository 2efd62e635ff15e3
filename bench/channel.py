"""Channel elimination, measured end to end: messages built in Python, through a real relay process, to
a real subscriber process, by two publishing paths in the same run:

  queue:  encode -> asyncio.Queue -> writer task -> socket (the writer sends each message as it gets
          it, as the channel design does)
  direct: RelayOutput.send_event (encoded with its sequence straight into one buffer; one batch
          envelope per loop iteration)

Both start from what a venue parser hands over: a Trade value and the frame's receipt time.

A third path, queue_batched (the writer task drains the queue into one batch envelope per wake-up),
shows how much of the gap is the queue hop itself and how much is per-message writing.

    python3 bench/channel.py [--messages N] [--runs 5] [--json]

Throughput: messages per second from the first build to the subscriber holding the last message.
Latency: the same paths paced at a fixed 10k msg/s; per message, header timestamp_ns (set at build)
to decoded at the subscriber, P50 and P99 in µs (both clocks are this machine's time.time_ns()).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import uvloop

from relayproc import relay_process
from tickrelay.protocol.codec import Decoder, Source, encode_trade_message, make_sequence
from tickrelay.protocol.link import (
    Hello,
    HelloAck,
    Overflow,
    Role,
    decode_control,
    encode_batch,
    encode_control,
)
from tickrelay.protocol.messages import Trade
from tickrelay.protocol.symbols import asset_id_for
from tickrelay.transport.output import RelayOutput


ASSET = asset_id_for("BTC/USD")
LATENCY_RATE = 10_000
LATENCY_MESSAGES = 20_000
_STREAMS = itertools.count(1)


def build(i: int) -> Trade:
    """What a venue parser hands over per trade."""
    return Trade(ASSET, 6_000_000_000_000 + i, 1000, i, 102, 51, i & 1)


async def publish_queue(path: str, n: int, rate: float, batched: bool, stream: int) -> None:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(encode_control(Hello(Role.PUBLISHER, 1, Source.COINBASE_COLLECTOR, stream, name="queue")))
    decoder = Decoder()
    decoder.feed(await reader.read(4096))
    assert isinstance(decode_control(decoder.next_message()), HelloAck)  # type: ignore[arg-type]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    counter = itertools.count(1)

    def encode_and_enqueue(ts_ns: int, trade: Trade) -> None:
        seq = make_sequence(stream, next(counter))
        queue.put_nowait(encode_trade_message(Source.COINBASE_COLLECTOR, seq, ts_ns, trade))

    async def writer_task() -> None:
        done = 0
        while done < n:
            message = await queue.get()
            done += 1
            if not batched:
                writer.write(message)
            else:
                first, parts = message, [message]
                while not queue.empty():
                    parts.append(queue.get_nowait())
                done += len(parts) - 1
                body = b"".join(parts)
                first_seq = int.from_bytes(first[8:16], "little")
                writer.write(encode_batch(1, Source.COINBASE_COLLECTOR, first_seq, len(parts), 0, body))
            if writer.transport.get_write_buffer_size() > 1 << 20:
                await writer.drain()
        await writer.drain()

    task = asyncio.create_task(writer_task())
    await _produce(n, rate, encode_and_enqueue)
    await task
    writer.close()
    await writer.wait_closed()


async def publish_direct(path: str, n: int, rate: float, stream: int) -> None:
    out = RelayOutput(path, source=Source.COINBASE_COLLECTOR, stream_id=stream, name="direct")
    out.start()
    await out.wait_connected(5)
    await _produce(n, rate, out.send_event)
    await out.sync()
    await out.close()


async def _produce(n: int, rate: float, sink: Callable[[int, Trade], None]) -> None:
    """Hand n trades over, each stamped with its receipt time, yielding to the loop every 512 (as a
    WebSocket loop does between frames) or pacing at ``rate`` msg/s."""
    start = time.perf_counter()
    for i in range(n):
        sink(time.time_ns(), build(i))
        if rate:
            delay = start + (i + 1) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        elif i % 512 == 511:
            await asyncio.sleep(0)


def subscriber(path: str, n: int, latency: bool) -> None:
    """Subscriber process: read until n messages; print timing (and latencies) as JSON."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(encode_control(Hello(Role.SUBSCRIBER, 1, 0, 0, Overflow.DROP, 512 << 20, "bench")))
    decoder = Decoder(max_payload=8 << 20)
    while (m := decoder.next_message()) is None:
        decoder.feed(sock.recv(4096))
    decode_control(m)
    print("ready", flush=True)
    got, received, lat = 0, 0, []
    sock.settimeout(60)
    while got < n:
        data = sock.recv(1 << 20)
        if not data:
            break
        if latency:
            now = time.time_ns()
            decoder.feed(data)
            for message in decoder:
                lat.append(now - message.header.timestamp_ns)
                got += 1
        else:
            received += len(data)
            got = received // 74
    print(json.dumps({"got": got, "last": time.time(), "latency_ns": lat}), flush=True)


def _run_path(path: str, mode: str, n: int, rate: float) -> dict[str, float]:
    sub = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--role",
            "subscriber",
            "--socket",
            path,
            "--messages",
            str(n),
            *(["--latency"] if rate else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sub.stdout is not None
    assert sub.stdout.readline().strip() == "ready"
    start = time.time()
    stream = next(_STREAMS)  # a fresh stream id per run: the relay may not have seen the last one close yet
    if mode == "direct":
        coro = publish_direct(path, n, rate, stream)
    else:
        coro = publish_queue(path, n, rate, mode == "queue_batched", stream)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)
    result = json.loads(sub.communicate(timeout=120)[0])
    assert result["got"] == n, (mode, result["got"], n)
    out = {"msgs_per_s": n / (result["last"] - start)}
    if rate:
        lat = sorted(result["latency_ns"])
        out["p50_us"] = lat[len(lat) // 2] / 1000
        out["p99_us"] = lat[int(len(lat) * 0.99)] / 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--role", choices=["subscriber"], help=argparse.SUPPRESS)
    parser.add_argument("--socket", help=argparse.SUPPRESS)
    parser.add_argument("--latency", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        return subscriber(args.socket, args.messages, args.latency)
    modes = ("queue", "queue_batched", "direct")
    with relay_process() as path:
        for mode in modes:  # warm-up
            _run_path(path, mode, args.messages // 10, 0)
        rates: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(args.runs):  # interleaved, so drift in the machine hits every path alike
            for mode in modes:
                rates[mode].append(_run_path(path, mode, args.messages, 0)["msgs_per_s"])
        latency = {m: _run_path(path, m, LATENCY_MESSAGES, LATENCY_RATE) for m in ("queue", "direct")}
    med = {m: statistics.median(v) for m, v in rates.items()}
    report = {
        "messages_per_run": args.messages,
        "runs": args.runs,
        "python": platform.python_version(),
        "queue_msgs_per_s": med["queue"],
        "queue_batched_msgs_per_s": med["queue_batched"],
        "direct_msgs_per_s": med["direct"],
        "ratio": med["direct"] / med["queue"],
        "ratio_vs_queue_batched": med["direct"] / med["queue_batched"],
        "spread": {m: [min(v), max(v)] for m, v in rates.items()},
        "latency_at_10k_msgs_per_s": {
            m: {k: v for k, v in r.items() if k != "msgs_per_s"} for m, r in latency.items()
        },
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
