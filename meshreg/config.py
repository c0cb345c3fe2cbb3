"""Node settings: defaults with units and reasons; TOML loading.

A node is named by one address ``host:port`` (the ROUTER clients talk to).
Every other port derives from it by a fixed offset:

* ``port + 1`` (``PUB_PORT_OFFSET``): change notifications (XPUB -> SUB).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from meshreg.core.health import HealthPolicy
from meshreg.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_HOST = "127.0.0.1"  # loopback: a node is not exposed until asked to be
DEFAULT_PORT = 7800  # the request (ROUTER) port; clients use host:port
PUB_PORT_OFFSET = 1  # notifications are published on port + 1


@dataclass(frozen=True)
class NodeConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    health: HealthPolicy = field(default_factory=HealthPolicy)
    log_level: str = "INFO"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pub_port(self) -> int:
        return self.port + PUB_PORT_OFFSET

    def with_overrides(self, **overrides: Any) -> NodeConfig:
        """Apply non-None overrides (CLI flags win over the file)."""
        health_keys = {f.name for f in fields(HealthPolicy)}
        health = {k: v for k, v in overrides.items() if k in health_keys and v is not None}
        top = {k: v for k, v in overrides.items() if k not in health_keys and v is not None}
        try:
            new_health = replace(self.health, **health) if health else self.health
        except TypeError as exc:
            raise ConfigError(str(exc)) from None
        cfg = replace(self, health=new_health, **top)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if not 0 < self.port < 65535:
            raise ConfigError(
                f"port must be in 1..65534 (port+1 is the notification port), got {self.port}"
            )


def load_node_config(path: str | Path | None) -> NodeConfig:
    """Read ``[node]`` and ``[health]`` tables from a TOML file (None: defaults).

    Example::

        [node]
        host = "127.0.0.1"
        port = 7800
        log_level = "INFO"

        [health]
        check_interval = 5.0
        unhealthy_after = 15.0
        evict_after = 30.0
    """
    if path is None:
        return NodeConfig()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = set(data) - {"node", "health", "cluster"}
    if unknown:
        raise ConfigError(f"config file {path}: unknown table(s) {sorted(unknown)}")
    node = data.get("node", {})
    health = data.get("health", {})
    allowed_node = {"host", "port", "log_level"}
    allowed_health = {f.name for f in fields(HealthPolicy)}
    for table, values, allowed in (
        ("node", node, allowed_node),
        ("health", health, allowed_health),
    ):
        bad = set(values) - allowed
        if bad:
            raise ConfigError(
                f"config file {path}: unknown key(s) {sorted(bad)} in [{table}]; "
                f"allowed: {sorted(allowed)}"
            )
    try:
        policy = HealthPolicy(**{k: float(v) for k, v in health.items()})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config file {path}: [health]: {exc}") from None
    cfg = NodeConfig(
        host=str(node.get("host", DEFAULT_HOST)),
        port=int(node.get("port", DEFAULT_PORT)),
        health=policy,
        log_level=str(node.get("log_level", "INFO")),
    )
    cfg.validate()
    return cfg


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or ``host``) -> (host, port)."""
    text = text.strip()
    if not text:
        raise ConfigError("empty server address; expected host:port, e.g. 127.0.0.1:7800")
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(f"bad address {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"bad address {text!r}: expected [host]:port")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not port_text:
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"bad address {text!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"bad address {text!r}: port must be in 1..65535")
    return host, port
