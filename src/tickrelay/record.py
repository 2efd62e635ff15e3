"""Recorded relay streams: zstd-compressed segments of Protocol V2 messages, with an index.

A recording named ``OUT`` is a set of segment files ``OUT.<n>.zst`` (n from 1) and an index ``OUT.index``
(JSON lines). A segment is a sequence of independent zstd frames; each frame holds whole messages
back to back (relay output is self-delimiting: ``protocol.codec.Decoder`` reads it unchanged). The
index has one line per frame: segment, compressed offset and size, message count, first and last
header ``timestamp_ns``, so a reader can seek to a time without decompressing what comes before.
A new segment starts when the current one reaches ``rotate_bytes`` (compressed) or ``rotate_s``; with
``keep_bytes`` the oldest segments are then deleted while the recording is larger (their index lines
stay; readers skip them). A writer opened on an existing recording continues it with new segments.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

from tickrelay.protocol.codec import HEADER, Decoder, Message


@dataclasses.dataclass(frozen=True)
class Chunk:
    segment: int
    offset: int
    size: int
    messages: int
    first_ts_ns: int
    last_ts_ns: int


class RecordWriter:
    """Append messages; ``flush`` (the caller's timer, or ``chunk_bytes`` pending) writes them as one
    zstd frame and one index line."""

    def __init__(
        self,
        out: Path,
        *,
        rotate_bytes: int = 256 << 20,
        rotate_s: float = 3600.0,
        level: int = 3,
        chunk_bytes: int = 1 << 20,
        keep_bytes: int = 0,
    ) -> None:
        self.out = out
        self.keep_bytes = keep_bytes  # after a rotation, delete the oldest segments beyond this (0: keep all)
        self.chunk_bytes = chunk_bytes  # a chunk is written once this much is pending (bounded memory)
        self.rotate_bytes = rotate_bytes
        self.rotate_s = rotate_s
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._pending = bytearray()
        self._count = 0
        self._first_ts = self._last_ts = 0
        index = out.with_name(out.name + ".index")
        # a restarted recorder continues the recording: new segments after the last one indexed
        self.segment = max((c.segment for c in read_index(out)), default=0) if index.exists() else 0
        self._segment_size = 0
        self._segment_started = 0.0
        self._file: BinaryIO | None = None
        self._index = index.open("a")
        self.deleted = 0  # segments deleted by the retention limit
        self.messages = 0
        self.chunks = 0

    def segment_path(self, n: int) -> Path:
        return self.out.with_name(f"{self.out.name}.{n}.zst")

    def append(self, raw: bytes) -> None:
        """One whole message, as received."""
        ts = HEADER.unpack_from(raw)[6]
        if not self._count:
            self._first_ts = ts
        self._last_ts = ts
        self._pending += raw
        self._count += 1
        if len(self._pending) >= self.chunk_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._count:
            return
        if (
            self._file is None
            or self._segment_size >= self.rotate_bytes
            or (time.monotonic() - self._segment_started >= self.rotate_s)
        ):
            self._rotate()
        assert self._file is not None
        frame = self._compressor.compress(bytes(self._pending))
        offset = self._segment_size
        self._file.write(frame)
        self._file.flush()
        chunk = Chunk(self.segment, offset, len(frame), self._count, self._first_ts, self._last_ts)
        self._index.write(json.dumps(dataclasses.asdict(chunk)) + "\n")
        self._index.flush()
        self._segment_size += len(frame)
        self.messages += self._count
        self.chunks += 1
        self._pending.clear()
        self._count = 0

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        self.segment += 1
        self._file = self.segment_path(self.segment).open("wb")
        self._segment_size = 0
        self._segment_started = time.monotonic()
        if self.keep_bytes:
            self._expire()

    def _expire(self) -> None:
        """Delete the oldest closed segments while the recording is over ``keep_bytes``."""
        prefix = self.out.name + "."  # OUT.<n>.zst; another recording named OUT.x shares the glob
        numbers = ((p.name[len(prefix) : -len(".zst")], p) for p in self.out.parent.glob(f"{prefix}*.zst"))
        segments = sorted((int(n), p) for n, p in numbers if n.isdigit())
        total = sum(p.stat().st_size for _, p in segments)
        for n, path in segments:
            if total <= self.keep_bytes or n >= self.segment:
                break
            total -= path.stat().st_size
            path.unlink()
            self.deleted += 1

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
        self._index.close()


def read_index(out: Path) -> list[Chunk]:
    index = out.with_name(out.name + ".index")
    return [Chunk(**json.loads(line)) for line in index.read_text().splitlines() if line.strip()]


def iter_messages(out: Path, *, since_ns: int = 0) -> Iterator[Message]:
    """Every recorded message in order (from the first chunk that may hold ``since_ns`` on); chunks of
    segments the retention limit deleted are skipped (the index keeps them: see ``read_index``)."""
    decompressor = zstandard.ZstdDecompressor()
    for chunk in read_index(out):
        path = out.with_name(f"{out.name}.{chunk.segment}.zst")
        if chunk.last_ts_ns < since_ns or not path.exists():
            continue
        with path.open("rb") as f:
            f.seek(chunk.offset)
            data = decompressor.decompress(f.read(chunk.size))
        decoder = Decoder(max_payload=8 << 20)
        decoder.feed(data)
        yield from decoder
