"""``tickrelay config show``: the effective configuration and where each value came from."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tickrelay.config import KEYS, Config, Settings, load_settings
from tickrelay.errors import ConfigError
from tickrelay.venues import VENUES
from tickrelay.venues.native import core_choice


HELP = "show the effective configuration (defaults < tickrelay.toml < environment < flags) and its sources"
DEFAULT_FILE = "tickrelay.toml"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    about = "print every key's effective value and where it came from, one per line"
    show = sub.add_parser("show", help=about, description=about)
    show.add_argument("--config", metavar="PATH", help=f"TOML file (default: ./{DEFAULT_FILE} if present)")
    show.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: {key: {value, source}}; collector.core also has venues: {venue: core}",
    )


def read_settings(config_path: str | None, flags: Mapping[str, Any]) -> Settings:
    """Read the TOML file (the given one must exist; ./tickrelay.toml is optional) and the environment."""
    path = Path(config_path) if config_path else Path(DEFAULT_FILE)
    try:
        text: str | None = path.read_text()
    except FileNotFoundError:
        if config_path:
            raise ConfigError(f"--config {config_path}: no such file") from None
        text = None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return load_settings(text, str(path), os.environ, flags)


def venue_cores(config: Config) -> dict[str, str]:
    """Which core each venue's collector runs with this configuration: ``native`` or ``python (why)``."""
    core = config.collector.core
    return {name: core_choice(VENUES[name].from_settings(config), core) for name in sorted(VENUES)}


def run(args: argparse.Namespace) -> int:
    settings = read_settings(args.config, {})
    shown = {k.name: "***" if k.secret and settings.value(k.name) else settings.value(k.name) for k in KEYS}
    cores = venue_cores(settings.config)
    if args.json:
        entries = {k.name: {"value": shown[k.name], "source": settings.sources[k.name]} for k in KEYS}
        entries["collector.core"]["venues"] = cores
        print(json.dumps(entries))
        return 0
    width = max(len(k.name) for k in KEYS)
    for key in KEYS:
        value = shown[key.name]
        text = ",".join(value) if isinstance(value, tuple) else value
        print(f"{key.name:{width}} = {text!s:40} # {settings.sources[key.name]}")
    print("# the core each venue's collector runs (collector.core):")
    for name, core in cores.items():
        print(f"#   {name:9} {core}")
    return 0
