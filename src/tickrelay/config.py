"""Configuration: defaults < TOML file < environment < command-line flags. Pure: the caller reads the
file and the environment and passes them in.

Every key is declared once in ``KEYS`` with its type, default, allowed values, environment variable
and help; docs/config.md is that table in prose. An error names the key, where its value came from
(``file:line``, the variable or the flag) and what is allowed; an unknown key is an error; nothing
falls back silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from tickrelay.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Key:
    name: str  # "section.key"
    kind: type  # str, int, float, bool or list (of str)
    default: Any
    help: str
    env: str = ""  # the design's own variable name, if any (else TICKRELAY_<SECTION>_<KEY>)
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    secret: bool = False  # `config show` prints *** for it

    @property
    def env_name(self) -> str:
        return self.env or "TICKRELAY_" + self.name.upper().replace(".", "_")


KEYS: tuple[Key, ...] = (
    Key(
        "relay.socket",
        str,
        "",
        "market-data relay socket (empty: the runtime-directory default)",
        env="RELAY_SOCKET_PATH",
    ),
    Key("relay.checksums", bool, True, "verify CRCs of market-data publishers (signal/execution always do)"),
    Key(
        "relay.allowed_users",
        list,
        [],
        "users besides you trusted to own a socket directory and run a relay (names or uids)",
    ),
    Key(
        "relay.max_connections", int, 1000, "connections a relay serves at once; more are refused", minimum=1
    ),
    Key("relay.hello_timeout_s", float, 5.0, "a connection must send its Hello within this", minimum=0.01),
    Key(
        "relay.message_timeout_s",
        float,
        10.0,
        "a message a publisher has begun must be complete within this",
        minimum=0.01,
    ),
    Key("coinbase.enabled", bool, True, "run the Coinbase collector"),
    Key("coinbase.products", list, ["BTC-USD", "ETH-USD"], "Coinbase product ids", env="COINBASE_PRODUCTS"),
    Key(
        "coinbase.ws_url",
        str,
        "wss://ws-feed.exchange.coinbase.com",
        "Coinbase WebSocket URL",
        env="COINBASE_WS_URL",
    ),
    Key(
        "coinbase.api",
        str,
        "exchange",
        "which Coinbase feed the URL speaks",
        choices=("exchange", "advanced"),
    ),
    Key("binance.enabled", bool, True, "run the Binance collector"),
    Key("binance.symbols", list, ["BTCUSDT", "ETHUSDT"], "Binance spot symbols", env="BINANCE_SYMBOLS"),
    Key(
        "binance.ws_url",
        str,
        "wss://stream.binance.com:9443",
        "Binance WebSocket base URL",
        env="BINANCE_WS_URL",
    ),
    Key("binance.rest_url", str, "https://api.binance.com", "Binance REST base URL (depth snapshots)"),
    Key("kraken.enabled", bool, True, "run the Kraken collector"),
    Key("kraken.pairs", list, ["XBT/USD", "ETH/USD"], "Kraken pairs", env="KRAKEN_PAIRS"),
    Key("kraken.ws_url", str, "wss://ws.kraken.com", "Kraken WebSocket URL", env="KRAKEN_WS_URL"),
    Key("kraken.depth", int, 10, "Kraken book depth", choices=(10, 25, 100, 500, 1000)),
    Key("kraken.checksum_policy", str, "resync", "on a book checksum mismatch", choices=("resync", "ignore")),
    Key("collector.stale_after_s", float, 10.0, "reconnect a feed silent this long", minimum=0.1),
    Key("collector.backoff_cap_s", float, 30.0, "longest wait between reconnects", minimum=0.1),
    Key(
        "collector.reset_after_s",
        float,
        30.0,
        "a connection up this long resets the reconnect backoff (0: every connection does)",
        minimum=0,
    ),
    Key(
        "collector.flush",
        str,
        "frame",
        "write to the relay after every frame (at most once per 50 µs, and before parsing a frame of 1 KiB "
        "or more), or once per event-loop turn",
        choices=("frame", "loop"),
    ),
    Key(
        "strategy.fees_bps",
        list,
        ["binance=10", "kraken=26", "coinbase=60"],
        "taker fee per venue, VENUE=BPS",
    ),
    Key("strategy.min_edge_bps", float, 0.0, "open a spread signal above this net edge", minimum=0),
    Key(
        "strategy.stale_s", float, 10.0, "never act on a side silent this long (message time)", minimum=0.001
    ),
    Key(
        "strategy.max_edge_bps", float, 500.0, "an edge beyond this is bad data: alert, no signal", minimum=0
    ),
    Key("strategy.quote_aliases", list, ["USDT=USD", "USDC=USD"], "quote currencies compared as one, Q=AS"),
    Key("risk.stale_s", float, 5.0, "alert when a venue is silent this long", minimum=0.001),
    Key("risk.jump_pct", float, 2.0, "alert on a trade this far from the previous one", minimum=0),
    Key("dashboard.host", str, "127.0.0.1", "dashboard HTTP address"),
    Key("dashboard.port", int, 8080, "dashboard HTTP port (0: any free port)", minimum=0, maximum=65535),
    Key(
        "metrics.latency_sample",
        int,
        8,
        "record the latency of one frame (collectors) or message (consumers) in N",
        minimum=1,
    ),
    Key("metrics.port", int, 0, "Prometheus port per process (0: off)", minimum=0, maximum=65535),
    Key("nats.servers", list, ["nats://127.0.0.1:4222"], "NATS server URLs of the bridges (tls://: TLS)"),
    Key("nats.tls_ca", str, "", "CA file (PEM) to verify the NATS server with (empty: the system's)"),
    Key("nats.tls_cert", str, "", "client certificate file (PEM) for a NATS server that verifies clients"),
    Key("nats.tls_key", str, "", "the client certificate's private key file (PEM)"),
    Key("nats.creds", str, "", "NATS credentials file (user JWT and nkey seed; operator mode)"),
    Key("nats.nkey_seed", str, "", "NATS nkey seed file (a user listed by its public nkey)"),
    Key("nats.user", str, "", "NATS user name (with nats.password)"),
    Key(
        "nats.password",
        str,
        "",
        "NATS password (prefer the environment or a 0600 file to a flag)",
        secret=True,
    ),
    Key("nats.token", str, "", "NATS authentication token", secret=True),
    Key("log.level", str, "info", "log level", choices=("debug", "info", "warning", "error")),
)
KEY_BY_NAME = {k.name: k for k in KEYS}
KEY_BY_ENV = {k.env_name: k for k in KEYS}
# TICKRELAY_* variables that are not settings: read before any configuration is (tickrelay.native)
NOT_SETTINGS = frozenset({"TICKRELAY_NO_EXTENSIONS"})


@dataclasses.dataclass(frozen=True)
class Settings:
    """The effective configuration: ``values[name]`` and where each came from (``sources[name]``)."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def load_settings(
    toml_text: str | None,
    toml_origin: str,
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
) -> Settings:
    """Merge the layers and validate every value.

    Args:
        toml_text: the TOML file's text, or None when there is no file.
        toml_origin: the file's path, for error messages and ``sources``.
        environ: the process environment (only RELAY_SOCKET_PATH, COINBASE_*, BINANCE_*, KRAKEN_* named in
            ``KEYS`` and TICKRELAY_* variables are read; an unknown TICKRELAY_* variable is an error, but for
            ``NOT_SETTINGS``).
        flags: key name -> value from the command line (None means "not given").

    Raises:
        ConfigError: the message names the key, its source and what is allowed.
    """
    values = {k.name: k.default for k in KEYS}
    sources = dict.fromkeys(values, "default")
    if toml_text is not None:
        for name, value, where in _toml_layer(toml_text, toml_origin):
            values[name], sources[name] = _coerce(KEY_BY_NAME[name], value, where), where
    for var, text in sorted(environ.items()):
        key = KEY_BY_ENV.get(var)
        if key is None:
            if var.startswith("TICKRELAY_") and var not in NOT_SETTINGS:
                raise ConfigError(f"environment variable {var}: unknown{_did_you_mean(var, KEY_BY_ENV)}")
            continue
        where = f"environment {var}"
        values[key.name], sources[key.name] = _coerce(key, _from_text(key, text, where), where), where
    for name, value in flags.items():
        if value is None:
            continue
        key = KEY_BY_NAME[name]
        where = f"flag --{name.replace('.', '-').replace('_', '-')}"
        values[name], sources[name] = _coerce(key, value, where), where
    return Settings(values, sources)


def _toml_layer(text: str, origin: str) -> list[tuple[str, Any, str]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
    lines = _key_lines(text)
    out = []
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{origin}:{lines.get(section, '?')}: `{section}` must be a [section] table")
        for key, value in table.items():
            name = f"{section}.{key}"
            where = f"{origin}:{lines.get(name, '?')}"
            if name not in KEY_BY_NAME:
                raise ConfigError(f"{where}: unknown key `{name}`{_did_you_mean(name, KEY_BY_NAME)}")
            out.append((name, value, where))
    return out


def _did_you_mean(name: str, known: Mapping[str, Key]) -> str:
    """The closest known name, as a suggestion (`relay.sockt` -> `relay.socket`), else where to look."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else " (`tickrelay config show` lists every key)"


_SECTION = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


def _key_lines(text: str) -> dict[str, int]:
    """Line numbers of ``[section]`` headers and ``key =`` lines, for error messages."""
    lines: dict[str, int] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), 1):
        if m := _SECTION.match(line):
            section = m.group(1)
            lines.setdefault(section, number)
        elif m := _ASSIGN.match(line):
            lines.setdefault(f"{section}.{m.group(1)}" if section else m.group(1), number)
    return lines


def _from_text(key: Key, text: str, where: str) -> Any:
    """An environment variable's text as the key's type."""
    if key.kind is list:
        return [part.strip() for part in text.split(",") if part.strip()]
    if key.kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: `{key.name}` must be true or false, not {text!r}")
    if key.kind in (int, float):
        try:
            return key.kind(text)
        except ValueError:
            raise ConfigError(f"{where}: `{key.name}` must be a number, not {text!r}") from None
    return text


def _coerce(key: Key, value: Any, where: str) -> Any:
    kind = key.kind
    if kind is list:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, Sequence) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{where}: `{key.name}` must be a list of strings, not {value!r}")
        value = [i.strip() for i in items if i.strip()]
        if not value and key.default:  # a list that may be empty has the empty default
            raise ConfigError(f"{where}: `{key.name}` must name at least one")
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: `{key.name}` must be a {kind.__name__}, not {value!r}")
    if key.choices and value not in key.choices:
        allowed = ", ".join(repr(c) for c in key.choices)
        raise ConfigError(f"{where}: `{key.name}` must be one of {allowed}, not {value!r}")
    if key.minimum is not None and isinstance(value, int | float) and value < key.minimum:
        raise ConfigError(f"{where}: `{key.name}` must be at least {key.minimum}, not {value!r}")
    if key.maximum is not None and isinstance(value, int | float) and value > key.maximum:
        raise ConfigError(f"{where}: `{key.name}` must be at most {key.maximum}, not {value!r}")
    return value
