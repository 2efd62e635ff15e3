"""Configuration: precedence, sources, and every error path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import msgspec
import pytest

from tickrelay.config import KEYS, Config, KrakenConfig, load_settings
from tickrelay.errors import ConfigError


ROOT = Path(__file__).resolve().parents[1]
FILE = """# a comment
[kraken]
depth = 25
pairs = ["XBT/USD"]

[metrics]
port = 9100
"""


def test_defaults_file_environment_flags_in_that_order() -> None:
    s = load_settings(
        FILE,
        "t.toml",
        {"KRAKEN_PAIRS": "ETH/USD, XBT/EUR", "TICKRELAY_METRICS_PORT": "9200", "HOME": "/root"},
        {"metrics.port": 9300, "kraken.depth": None},
    )
    assert s.config.kraken.depth == 25
    assert s.sources["kraken.depth"] == "t.toml:3"
    assert s.config.kraken.pairs == ("ETH/USD", "XBT/EUR")  # typed: a tuple of str
    assert s.sources["kraken.pairs"] == "environment KRAKEN_PAIRS"
    assert (s.config.metrics.port, s.sources["metrics.port"]) == (9300, "flag --metrics-port")
    assert (s.config.log.level, s.sources["log.level"]) == ("info", "default")
    assert load_settings(None, "tickrelay.toml", {}, {}).config.coinbase.products == ("BTC-USD", "ETH-USD")


def test_the_designs_variables_are_read() -> None:
    env = {
        "COINBASE_PRODUCTS": "SOL-USD",
        "BINANCE_SYMBOLS": "NKNUSDT,LRCBTC",
        "COINBASE_WS_URL": "ws://x",
        "BINANCE_WS_URL": "ws://y",
        "KRAKEN_WS_URL": "ws://z",
        "RELAY_SOCKET_PATH": "/tmp/r.sock",
        "TICKRELAY_RELAY_CHECKSUMS": "off",
        "TICKRELAY_COLLECTOR_STALE_AFTER_S": "2.5",
    }
    s = load_settings(None, "-", env, {})
    assert (s.config.coinbase.products, s.config.binance.symbols) == (("SOL-USD",), ("NKNUSDT", "LRCBTC"))
    urls = (s.config.coinbase.ws_url, s.config.binance.ws_url, s.config.kraken.ws_url)
    assert urls == ("ws://x", "ws://y", "ws://z")
    assert (s.config.relay.socket, s.config.relay.checksums, s.config.collector.stale_after_s) == (
        "/tmp/r.sock",
        False,
        2.5,
    )


@pytest.mark.parametrize(
    ("toml", "env", "flags", "message"),
    [
        (
            "[kraken]\ndepht = 25\n",
            {},
            {},
            "t.toml:2: unknown key `kraken.depht`; did you mean `kraken.depth`?",
        ),
        (
            "[krakn]\ndepth = 25\n",
            {},
            {},
            "t.toml:2: unknown key `krakn.depth`; did you mean `kraken.depth`?",
        ),
        (
            "[relay]\nsockt = 'x'\n",
            {},
            {},
            "t.toml:2: unknown key `relay.sockt`; did you mean `relay.socket`?",
        ),
        ("[x]\nzzz = 1\n", {}, {}, "t.toml:2: unknown key `x.zzz` (`tickrelay config show` lists every key)"),
        ("depth = 25\n", {}, {}, "t.toml:1: `depth` must be a [section] table"),
        ("[kraken]\ndepth = \n", {}, {}, "t.toml: not valid TOML"),
        (
            "[kraken]\ndepth = 11\n",
            {},
            {},
            "t.toml:2: `kraken.depth` must be one of 10, 25, 100, 500, 1000, not 11",
        ),
        ("[kraken]\ndepth = true\n", {}, {}, "`kraken.depth` must be a int, not True"),
        ("[coinbase]\nproducts = []\n", {}, {}, "`coinbase.products` must name at least one"),
        ("[coinbase]\nproducts = [1]\n", {}, {}, "must be a list of strings"),
        ("[metrics]\nport = -1\n", {}, {}, "`metrics.port` must be at least 0, not -1"),
        (
            "[collector]\ncpus = ['1', 'two']\n",
            {},
            {},
            "t.toml:2: `collector.cpus` items must be CPU ids or ranges such as 1 or 2-3, not 'two'",
        ),
        (None, {"TICKRELAY_RELAY_CPUS": "0,1-"}, {}, "`relay.cpus` items must be CPU ids or ranges"),
        (
            None,
            {"TICKRELAY_KRAKEN_DEPHT": "1"},
            {},
            "environment variable TICKRELAY_KRAKEN_DEPHT: unknown; did you mean `TICKRELAY_KRAKEN_DEPTH`?",
        ),
        (
            None,
            {"TICKRELAY_METRICS_PORT": "x"},
            {},
            "environment TICKRELAY_METRICS_PORT: `metrics.port` must be a number",
        ),
        (None, {"TICKRELAY_RELAY_CHECKSUMS": "maybe"}, {}, "must be true or false, not 'maybe'"),
        (None, {}, {"log.level": "loud"}, "flag --log-level: `log.level` must be one of"),
    ],
)
def test_errors_name_the_key_the_source_and_what_is_allowed(
    toml: str | None, env: dict[str, str], flags: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(toml, "t.toml", env, flags)
    assert message in str(info.value)


def test_docs_and_example_cover_every_key() -> None:
    doc = (ROOT / "docs/config.md").read_text()
    example = tomllib.loads((ROOT / "tickrelay.toml.example").read_text())
    for key in KEYS:
        assert f"`{key.name}`" in doc
        assert f"`{key.env_name}`" in doc
        section, name = key.name.split(".")
        assert example[section][name] == key.default
    example_settings = load_settings((ROOT / "tickrelay.toml.example").read_text(), "example", {}, {})
    assert example_settings.config == Config()  # every default


def _show(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickrelay", "config", "show", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_config_show_reads_the_working_directory_file_and_reports_sources(tmp_path: Path) -> None:
    (tmp_path / "tickrelay.toml").write_text(FILE)
    done = _show("--json", cwd=tmp_path, env={"PATH": "/usr/bin", "KRAKEN_PAIRS": "ETH/USD"})
    shown = json.loads(done.stdout)
    assert shown["kraken.depth"] == {"value": 25, "source": "tickrelay.toml:3"}
    assert shown["kraken.pairs"] == {"value": ["ETH/USD"], "source": "environment KRAKEN_PAIRS"}
    text = _show(cwd=tmp_path).stdout
    assert "kraken.depth            = 25" in text
    assert "# tickrelay.toml:3" in text
    assert "coinbase.products       = BTC-USD,ETH-USD " in text  # a list as the environment writes it
    assert "relay.allowed_users     =  " in text  # an empty one: nothing, not "()"


def test_config_show_errors_exit_2_without_a_traceback(tmp_path: Path) -> None:
    done = _show("--config", str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert done.returncode == 2
    assert (
        done.stderr
        == f"tickrelay config: configuration error: --config {tmp_path}/missing.toml: no such file\n"
    )
    (tmp_path / "tickrelay.toml").write_text("[kraken]\ndepht = 1\n")
    done = _show(cwd=tmp_path)
    assert done.returncode == 2
    assert "tickrelay.toml:2: unknown key `kraken.depht`" in done.stderr
    assert "Traceback" not in done.stderr


def test_booleans_from_the_environment_and_integers_as_floats() -> None:
    assert load_settings(None, "-", {"TICKRELAY_KRAKEN_ENABLED": "yes"}, {}).config.kraken.enabled is True
    whole = load_settings("[collector]\nstale_after_s = 3\n", "t.toml", {}, {}).config.collector.stale_after_s
    assert whole == 3.0
    assert isinstance(whole, float)


def test_config_show_hides_a_set_password_or_token(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
           "TICKRELAY_NATS_PASSWORD": "hunter2-secret", "TICKRELAY_NATS_USER": "out"}  # fmt: skip
    shown = json.loads(_show("--json", cwd=tmp_path, env=env).stdout)
    assert shown["nats.password"] == {"value": "***", "source": "environment TICKRELAY_NATS_PASSWORD"}
    assert shown["nats.token"] == {"value": "", "source": "default"}
    assert shown["nats.user"]["value"] == "out"
    text = _show(cwd=tmp_path, env=env).stdout
    assert "hunter2" not in text
    assert "nats.password" in text


def test_readers_get_typed_sections_that_refuse_unknown_fields() -> None:
    """One msgspec Struct per section, frozen, forbid_unknown_fields (as nautilus_trader's configs)."""
    config = load_settings("[kraken]\ndepth = 25\n", "t.toml", {}, {}).config
    assert config.kraken == KrakenConfig(depth=25)
    assert (config.kraken.depth, config.metrics.latency_sample, config.relay.checksums) == (25, 8, True)
    with pytest.raises(msgspec.ValidationError, match="unknown field `depht`"):
        msgspec.convert({"kraken": {"depht": 25}}, Config)
    with pytest.raises(AttributeError):
        config.kraken.depth = 10  # type: ignore[misc]  # frozen
    assert [k.name for k in KEYS] == [
        f"{section.name}.{key.name}"
        for section in msgspec.structs.fields(Config)
        for key in msgspec.structs.fields(section.default_factory)  # type: ignore[arg-type]
    ]  # every field has its help, and nothing else has


def test_config_show_says_which_core_each_venue_runs(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    off = json.loads(_show("--json", cwd=tmp_path, env={**env, "TICKRELAY_NO_EXTENSIONS": "1"}).stdout)
    assert off["collector.core"] == {
        "value": "native",
        "source": "default",
        "venues": {v: "python (TICKRELAY_NO_EXTENSIONS is set)" for v in ("binance", "coinbase", "kraken")},
    }
    text = _show(cwd=tmp_path, env={**env, "TICKRELAY_COLLECTOR_CORE": "python"}).stdout
    assert "collector.core          = python" in text
    assert "#   coinbase  python (collector.core = python)\n" in text
