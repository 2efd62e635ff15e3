"""Configuration: defaults < TOML file < environment < command-line flags. Pure: the caller reads the
file and the environment and passes them in.

Every key's type and default are declared once, as a field of its section's Struct (``Config`` holds
one per section, as nautilus_trader's configs do: frozen, ``forbid_unknown_fields``); ``KEYS`` adds its
allowed values, environment variable and help; docs/config.md is that table in prose. Readers get the
typed ``Settings.config`` (``settings.config.kraken.depth`` is an int). An error names the key, where
its value came from (``file:line``, the variable or the flag) and what is allowed; an unknown key is an
error that suggests the closest known one; nothing falls back silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from tickrelay.errors import ConfigError


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[section]`` of tickrelay.toml: its keys with their types and defaults (help, environment
    variable and allowed values are in ``KEYS``)."""


class RelayConfig(_Section, frozen=True):
    socket: str = ""
    checksums: bool = True
    allowed_users: tuple[str, ...] = ()
    max_connections: int = 1000
    hello_timeout_s: float = 5.0
    message_timeout_s: float = 10.0
    cpus: tuple[str, ...] = ()


class CoinbaseConfig(_Section, frozen=True):
    enabled: bool = True
    products: tuple[str, ...] = ("BTC-USD", "ETH-USD")
    ws_url: str = "wss://ws-feed.exchange.coinbase.com"
    api: str = "exchange"


class BinanceConfig(_Section, frozen=True):
    enabled: bool = True
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    ws_url: str = "wss://stream.binance.com:9443"
    rest_url: str = "https://api.binance.com"


class KrakenConfig(_Section, frozen=True):
    enabled: bool = True
    api: str = "v2"
    pairs: tuple[str, ...] = ("BTC/USD", "ETH/USD")
    ws_url: str = "wss://ws.kraken.com"
    depth: int = 10
    checksum_policy: str = "resync"


class CollectorConfig(_Section, frozen=True):
    stale_after_s: float = 10.0
    backoff_cap_s: float = 30.0
    reset_after_s: float = 30.0
    flush: str = "frame"
    core: str = "native"
    cpus: tuple[str, ...] = ()
    idle: str = "sleep"


class StrategyConfig(_Section, frozen=True):
    fees_bps: tuple[str, ...] = ("binance=10", "kraken=26", "coinbase=60")
    min_edge_bps: float = 0.0
    stale_s: float = 10.0
    max_edge_bps: float = 500.0
    quote_aliases: tuple[str, ...] = ("USDT=USD", "USDC=USD")


class RiskConfig(_Section, frozen=True):
    stale_s: float = 5.0
    jump_pct: float = 2.0


class DashboardConfig(_Section, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8080


class MetricsConfig(_Section, frozen=True):
    latency_sample: int = 8
    port: int = 0


class NatsConfig(_Section, frozen=True):
    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    creds: str = ""
    nkey_seed: str = ""
    user: str = ""
    password: str = ""
    token: str = ""


class LogConfig(_Section, frozen=True):
    level: str = "info"


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration, typed: ``config.relay.socket``, ``config.kraken.depth``."""

    relay: RelayConfig = msgspec.field(default_factory=RelayConfig)
    coinbase: CoinbaseConfig = msgspec.field(default_factory=CoinbaseConfig)
    binance: BinanceConfig = msgspec.field(default_factory=BinanceConfig)
    kraken: KrakenConfig = msgspec.field(default_factory=KrakenConfig)
    collector: CollectorConfig = msgspec.field(default_factory=CollectorConfig)
    strategy: StrategyConfig = msgspec.field(default_factory=StrategyConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    dashboard: DashboardConfig = msgspec.field(default_factory=DashboardConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    nats: NatsConfig = msgspec.field(default_factory=NatsConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)


@dataclasses.dataclass(frozen=True)
class Key:
    """What ``Config`` does not say about one key: its help, environment variable and allowed values."""

    name: str  # "section.key"
    help: str
    env: str = ""  # the design's own variable name, if any (else TICKRELAY_<SECTION>_<KEY>)
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    secret: bool = False  # `config show` prints *** for it
    items: str = ""  # a list's items must match this (``ITEMS``)

    @property
    def env_name(self) -> str:
        return self.env or "TICKRELAY_" + self.name.upper().replace(".", "_")

    @property
    def kind(self) -> type:
        """str, int, float, bool or list (of str), from the section's field."""
        kind = _FIELDS[self.name].type
        return list if kind == tuple[str, ...] else kind

    @property
    def default(self) -> Any:
        value = _FIELDS[self.name].default
        return list(value) if isinstance(value, tuple) else value


_FIELDS = {
    f"{section.name}.{field.name}": field
    for section in msgspec.structs.fields(Config)
    for field in msgspec.structs.fields(section.default_factory)
}
KEYS: tuple[Key, ...] = (
    Key(
        "relay.socket",
        "market-data relay socket (empty: the runtime-directory default)",
        env="RELAY_SOCKET_PATH",
    ),
    Key("relay.checksums", "verify CRCs of market-data publishers (signal/execution always do)"),
    Key(
        "relay.allowed_users",
        "users besides you trusted to own a socket directory and run a relay (names or uids)",
    ),
    Key("relay.max_connections", "connections a relay serves at once; more are refused", minimum=1),
    Key("relay.hello_timeout_s", "a connection must send its Hello within this", minimum=0.01),
    Key(
        "relay.message_timeout_s",
        "a message a publisher has begun must be complete within this",
        minimum=0.01,
    ),
    Key(
        "relay.cpus",
        "CPUs the relays run on, as taskset -c: ids and ranges, 0,2-3 (empty: any)",
        items="cpus",
    ),
    Key("coinbase.enabled", "run the Coinbase collector"),
    Key("coinbase.products", "Coinbase product ids", env="COINBASE_PRODUCTS"),
    Key("coinbase.ws_url", "Coinbase WebSocket URL", env="COINBASE_WS_URL"),
    Key("coinbase.api", "which Coinbase feed the URL speaks", choices=("exchange", "advanced")),
    Key("binance.enabled", "run the Binance collector"),
    Key("binance.symbols", "Binance spot symbols", env="BINANCE_SYMBOLS"),
    Key("binance.ws_url", "Binance WebSocket base URL", env="BINANCE_WS_URL"),
    Key("binance.rest_url", "Binance REST base URL (depth snapshots)"),
    Key("kraken.enabled", "run the Kraken collector"),
    Key(
        "kraken.api",
        "Kraken WebSocket API: v2 (Kraken's current one, at <ws_url>/v2) or v1 (at <ws_url>)",
        choices=("v2", "v1"),
    ),
    Key(
        "kraken.pairs",
        "Kraken pairs, as the API names them (v2: BTC/USD, v1: XBT/USD)",
        env="KRAKEN_PAIRS",
    ),
    Key("kraken.ws_url", "Kraken WebSocket URL", env="KRAKEN_WS_URL"),
    Key("kraken.depth", "Kraken book depth", choices=(10, 25, 100, 500, 1000)),
    Key("kraken.checksum_policy", "on a book checksum mismatch", choices=("resync", "ignore")),
    Key("collector.stale_after_s", "reconnect a feed silent this long", minimum=0.1),
    Key("collector.backoff_cap_s", "longest wait between reconnects", minimum=0.1),
    Key(
        "collector.reset_after_s",
        "a connection up this long resets the reconnect backoff (0: every connection does)",
        minimum=0,
    ),
    Key(
        "collector.flush",
        "write to the relay after every frame (at most once per 15 µs, and before parsing a frame of 1 KiB "
        "or more), or once per event-loop turn",
        choices=("frame", "loop"),
    ),
    Key(
        "collector.core",
        "venue feeds run compiled where built and ported (else Python), or always in Python "
        "(TICKRELAY_NO_EXTENSIONS=1 also forces Python)",
        choices=("native", "python"),
    ),
    Key(
        "collector.cpus",
        "CPUs the collectors run on, as taskset -c (empty: any); kept apart from relay.cpus, the relay a "
        "collector's write wakes does not preempt it (README, Latency)",
        items="cpus",
    ),
    Key(
        "collector.idle",
        "between frames, sleep in the event loop, or spin (poll without sleeping: a frame finds the "
        "collector running and its caches warm, for the whole of its CPU; with collector.cpus, one CPU "
        "per collector)",
        choices=("sleep", "spin"),
    ),
    Key("strategy.fees_bps", "taker fee per venue, VENUE=BPS"),
    Key("strategy.min_edge_bps", "open a spread signal above this net edge", minimum=0),
    Key("strategy.stale_s", "never act on a side silent this long (message time)", minimum=0.001),
    Key("strategy.max_edge_bps", "an edge beyond this is bad data: alert, no signal", minimum=0),
    Key("strategy.quote_aliases", "quote currencies compared as one, Q=AS"),
    Key("risk.stale_s", "alert when a venue is silent this long", minimum=0.001),
    Key("risk.jump_pct", "alert on a trade this far from the previous one", minimum=0),
    Key("dashboard.host", "dashboard HTTP address"),
    Key("dashboard.port", "dashboard HTTP port (0: any free port)", minimum=0, maximum=65535),
    Key(
        "metrics.latency_sample",
        "record the latency of one frame (collectors) or message (consumers) in N",
        minimum=1,
    ),
    Key("metrics.port", "Prometheus port per process (0: off)", minimum=0, maximum=65535),
    Key("nats.servers", "NATS server URLs of the bridges (tls://: TLS)"),
    Key("nats.tls_ca", "CA file (PEM) to verify the NATS server with (empty: the system's)"),
    Key("nats.tls_cert", "client certificate file (PEM) for a NATS server that verifies clients"),
    Key("nats.tls_key", "the client certificate's private key file (PEM)"),
    Key("nats.creds", "NATS credentials file (user JWT and nkey seed; operator mode)"),
    Key("nats.nkey_seed", "NATS nkey seed file (a user listed by its public nkey)"),
    Key("nats.user", "NATS user name (with nats.password)"),
    Key("nats.password", "NATS password (prefer the environment or a 0600 file to a flag)", secret=True),
    Key("nats.token", "NATS authentication token", secret=True),
    Key(
        "log.level",
        "diagnostics on stderr at this level and above: info (banners, progress, summaries), warning "
        "(rejected frames, alerts), error (bugs, bans, failures); every command takes --log-level",
        choices=("debug", "info", "warning", "error"),
    ),
)
# what a list key's items look like (``Key.items``): the pattern, and its words for an error
ITEMS = {"cpus": (re.compile(r"[0-9]+(-[0-9]+)?"), "CPU ids or ranges such as 1 or 2-3")}
KEY_BY_NAME = {k.name: k for k in KEYS}
KEY_BY_ENV = {k.env_name: k for k in KEYS}
# TICKRELAY_* variables that are not settings: read before any configuration is (tickrelay.native)
NOT_SETTINGS = frozenset({"TICKRELAY_NO_EXTENSIONS"})


@dataclasses.dataclass(frozen=True)
class Settings:
    """The effective configuration, typed (``config``), and where each key's value came from
    (``sources[name]``)."""

    config: Config
    sources: Mapping[str, str]

    def value(self, name: str) -> Any:
        """One key's value by its name, where the name is what matters (``config show``, an error that
        names the key); readers use ``config``."""
        section, key = name.split(".")
        return getattr(getattr(self.config, section), key)


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
    sections: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        section, key_name = name.split(".")
        sections.setdefault(section, {})[key_name] = value
    return Settings(msgspec.convert(sections, Config), sources)


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
        pattern, shape = ITEMS.get(key.items, (None, ""))
        for item in value:
            if pattern is not None and not pattern.fullmatch(item):
                raise ConfigError(f"{where}: `{key.name}` items must be {shape}, not {item!r}")
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
