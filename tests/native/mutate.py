"""Hypothesis strategies: sequences of real frames, mutated the ways a hostile or broken exchange would.

A plan is a window of one recording (optionally behind the session's opening snapshots), then edits:
frames dropped, duplicated, swapped with the next or moved; disconnects and REST snapshots (good,
another symbol's, mutated, unknown key) put in; and single frames truncated, a number rewritten (huge,
negative, exponent, many decimals, the i64 and fixed-point limits, not a number, Python-only number
syntax), a value swapped for another frame's value of the same key, bad UTF-8, deep nesting, JSON
whitespace, string escapes, a duplicated key, a byte flipped, a token put in, or another venue's frame.
A failing plan is shrunk by ``differential.minimize`` on the calls it made.
"""

from __future__ import annotations

import re

from hypothesis import strategies as st

from tests.native.corpus import APIS, Api, Recording
from tests.native.differential import Call


_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}:,]')
_SCALAR = re.compile(rb"[^,\]}\s]*")
_WS = b" \t\r\n"
NUMBERS = [
    b"9" * 19, b"9" * 20, b"9" * 40, b"1" + b"0" * 400, b"1e400", b"1e-400", b"0.000000005",
    b"0.000000015", b"0.000000025", b"0.123456789123", b"0", b"-0", b"0.0", b"-0.0", b"1_0", b"+1",
    b" 12", b"12 ", b"\xd9\xa1\xd9\xa2", b"\xef\xbc\x91", b"NaN", b"Infinity", b"-Infinity", b"null",
    b"true", b'"1"', b"1.", b".5", b"1.2.3", b"", b"0x10", b"9223372036854775807", b"9223372036854775808",
    b"-9223372036854775808", b"-9223372036854775809", b"18446744073709551616", b"92233720368.54775807",
    b"92233720368.54775808", b"-92233720368.54775808", b"4294967296", b"65536", b"256",
]  # fmt: skip
TOKENS = [b"-", b"0", b"-1", b'"x"', b"[", b"]", b"{", b"}", b",", b":", b"null", b'"', b"\\", b"[[[[]]]]"]
BAD_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe2\x82", b"\x00"]
ESCAPES = [b"\\n", b'\\"', b"\\\\", b"\\/", b"\\u00e9", b"\\ud83d\\ude00", b"\\ud800", b"\\u0000", b"\\x"]
DEPTHS = [2, 31, 32, 33, 64, 127, 128, 129, 255, 256, 257, 1000, 10_000, 100_000]
FRAME_EDITS = [
    "truncate", "number", "swap_field", "bad_utf8", "nest", "whitespace", "escape", "duplicate_key",
    "byte", "token", "foreign",
]  # fmt: skip
SEQUENCE_EDITS = ["drop", "duplicate", "swap_next", "move", "disconnect"]
SNAPSHOT_EDITS = ["snapshot", "snapshot_other", "snapshot_mutated", "snapshot_unknown"]


def values(raw: bytes) -> list[tuple[int, int, bytes | None, int]]:
    """(start, end, key or None, key start) of every JSON value after ``:``, ``[`` or ``,`` (as far as
    a mutated frame still reads as JSON). Linear in the tokens: a frame nested 100,000 deep by an
    earlier edit may be edited again."""
    tokens = list(_TOKEN.finditer(raw))
    closes = container_ends(tokens)
    found = []
    for i, tok in enumerate(tokens):
        if tok.group() not in (b":", b"[", b","):
            continue
        start = tok.end()
        while start < len(raw) and raw[start] in _WS:
            start += 1
        if start >= len(raw) or raw[start] in b"]}":
            continue
        key = tokens[i - 1] if tok.group() == b":" and i else None
        end = value_end(raw, start, closes)
        if key is None:
            found.append((start, end, None, start))
        else:
            found.append((start, end, key.group()[1:-1], key.start()))
    return found


def container_ends(tokens: list[re.Match[bytes]]) -> dict[int, int]:
    """Where each ``[`` or ``{`` at a position closes (by count, kinds not matched: a mutated frame
    may close a ``[`` with ``}``); unclosed ones are left out."""
    ends, stack = {}, []
    for tok in tokens:
        t = tok.group()
        if t in (b"[", b"{"):
            stack.append(tok.start())
        elif t in (b"]", b"}") and stack:
            ends[stack.pop()] = tok.end()
    return ends


def value_end(raw: bytes, i: int, closes: dict[int, int]) -> int:
    """Where the JSON value starting at ``i`` ends (the end of ``raw`` if it never does)."""
    c = raw[i : i + 1]
    if c == b'"':
        m = _TOKEN.match(raw, i)
        return m.end() if m else len(raw)
    if c in (b"[", b"{"):
        return closes.get(i, len(raw))
    m = _SCALAR.match(raw, i)
    return m.end() if m else i


@st.composite
def frame_edit(draw: st.DrawFn, raw: bytes, rec: Recording, api: Api) -> bytes:
    """One frame, mutated one way."""
    kind = draw(st.sampled_from(FRAME_EDITS))
    at = draw(st.integers(0, max(0, len(raw) - 1)))
    if kind == "truncate":
        return raw[:at]
    if kind == "byte":
        return raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    if kind == "token":
        return raw[:at] + draw(st.sampled_from(TOKENS)) + raw[at:]
    if kind == "bad_utf8":
        return raw[:at] + draw(st.sampled_from(BAD_UTF8)) + raw[at:]
    if kind == "foreign":
        other = draw(st.sampled_from(sorted(APIS)))
        frames = APIS[other].recordings()[0].frames
        return frames[draw(st.integers(0, len(frames) - 1))]
    if kind == "number":
        numbers = list(_NUMBER.finditer(raw))
        if not numbers:
            return raw
        m = numbers[draw(st.integers(0, len(numbers) - 1))]
        text = m.group()
        decimals = text + (b"" if b"." in text else b".") + b"1234567890123"
        edits = [b"-" + text, text + b"e3", text + b"E-2", text + b"5", text[:-1], b"00" + text, decimals]
        new = draw(st.sampled_from(NUMBERS + edits))
        return raw[: m.start()] + new + raw[m.end() :]
    if kind == "whitespace":
        structural = [m.end() for m in _TOKEN.finditer(raw) if m.group() in (b"[", b"{", b":", b",")]
        if not structural:
            return raw
        pos = structural[draw(st.integers(0, len(structural) - 1))]
        return raw[:pos] + draw(st.sampled_from([b" ", b"\n", b"\t\r ", b"  " * 40])) + raw[pos:]
    spans = values(raw)
    if not spans:
        return raw
    start, end, key, key_start = spans[draw(st.integers(0, len(spans) - 1))]
    if kind == "nest":
        d = draw(st.sampled_from(DEPTHS))
        nested = b"[" * d + b"]" * d if draw(st.booleans()) else b'{"a":' * d + b"1" + b"}" * d
        return raw[:start] + nested + raw[end:]
    if kind == "escape":
        if raw[start : start + 1] != b'"' or end - start < 3:
            return raw
        pos = draw(st.integers(start + 1, end - 2))
        if draw(st.booleans()) and raw[pos : pos + 1].isalnum():  # the same text, escaped
            return raw[:pos] + b"\\u%04x" % raw[pos] + raw[pos + 1 :]
        return raw[:pos] + draw(st.sampled_from(ESCAPES)) + raw[pos:]
    donor_frames = rec.frames
    donor = donor_frames[draw(st.integers(0, len(donor_frames) - 1))]
    spans = values(donor)
    candidates = [(s, e) for s, e, k, _ in spans if k == key] or [(s, e) for s, e, _, _ in spans]
    if not candidates:
        return raw
    s, e = candidates[draw(st.integers(0, len(candidates) - 1))]
    if kind == "swap_field":
        return raw[:start] + donor[s:e] + raw[end:]
    # duplicate_key: the key again, just before itself, with another frame's value
    if key is None:
        return raw
    return raw[:key_start] + b'"' + key + b'":' + donor[s:e] + b"," + raw[key_start:]


class Plan:
    """What a fuzz example runs (a plain class: hypothesis would print a dataclass field by field)."""

    def __init__(self, feed: str, rec: Recording, ops: list[Call], auto_snapshots: bool) -> None:
        self.feed = feed  # the settings, a key of Api.feeds
        self.rec = rec
        self.ops = ops
        self.auto_snapshots = auto_snapshots  # give each wanted snapshot its recorded body after each frame

    def __repr__(self) -> str:  # a failure prints the minimal calls, not the whole plan
        return f"<{len(self.ops)} calls over {self.rec.name} with the {self.feed} settings>"


@st.composite
def plans(draw: st.DrawFn, api: Api, window: int) -> Plan:
    """A window of up to ``window`` frames of one of ``api``'s recordings, edited."""
    feed = draw(st.sampled_from(sorted(api.feeds)))
    recs = api.recordings()
    rec = recs[draw(st.integers(0, len(recs) - 1))]
    head = rec.frames[: draw(st.sampled_from([rec.head, 0]))]
    start = draw(st.integers(0, len(rec.frames) - 1))
    n = draw(st.one_of(st.integers(1, window), st.just(window)))  # mostly long, shrinks short
    ops: list[Call] = [("frame", raw) for raw in (*head, *rec.frames[start : start + n])]
    snapshots = bool(rec.snapshots)
    kinds = FRAME_EDITS + SEQUENCE_EDITS + (SNAPSHOT_EDITS if snapshots else [])
    for _ in range(draw(st.integers(0, max(1, len(ops) // 3)))):
        kind = draw(st.sampled_from(kinds))
        at = draw(st.integers(0, len(ops) - 1)) if ops else 0
        if kind in FRAME_EDITS:
            if ops and ops[at][0] == "frame":
                ops[at] = ("frame", draw(frame_edit(ops[at][1], rec, api)))
        elif kind == "drop" and ops:
            del ops[at]
        elif kind == "duplicate" and ops:
            ops.insert(at, ops[at])
        elif kind == "swap_next" and at + 1 < len(ops):
            ops[at], ops[at + 1] = ops[at + 1], ops[at]
        elif kind == "move" and ops:
            ops.insert(draw(st.integers(0, len(ops) - 1)), ops.pop(at))
        elif kind == "disconnect":
            ops.insert(at, ("disconnect",))
        elif kind in SNAPSHOT_EDITS:
            ops.insert(at, draw(snapshot_call(kind, rec, api)))
    return Plan(feed, rec, ops, snapshots and draw(st.booleans()))


@st.composite
def snapshot_call(draw: st.DrawFn, kind: str, rec: Recording, api: Api) -> Call:
    symbols = sorted(rec.snapshots) or ["BTCUSDT"]
    key = draw(st.sampled_from(symbols))
    bodies = rec.snapshots.get(key) or [b'{"lastUpdateId":1,"bids":[],"asks":[]}']
    body = bodies[draw(st.integers(0, len(bodies) - 1))]
    if kind == "snapshot_other":
        others = [b for s, bs in rec.snapshots.items() if s != key for b in bs]
        body = draw(st.sampled_from(others)) if others else body
    elif kind == "snapshot_mutated":
        body = draw(frame_edit(body, rec, api))
    elif kind == "snapshot_unknown":
        key = draw(st.sampled_from(["NOPE", "btcusdt", "", "BTC/USDT", "É"]))
    return ("snapshot", key, body)
