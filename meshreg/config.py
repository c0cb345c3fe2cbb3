"""Node settings: defaults with units and reasons; TOML loading.

The ports a node uses and ``parse_address`` live in meshreg/addresses (re-exported here),
which the client imports instead of this module: these settings hold the core's policies.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from meshreg.addresses import DEFAULT_HOST as DEFAULT_HOST
from meshreg.addresses import DEFAULT_PORT as DEFAULT_PORT
from meshreg.addresses import PEER_PORT_OFFSET as PEER_PORT_OFFSET
from meshreg.addresses import PORT_SPAN as PORT_SPAN
from meshreg.addresses import PUB_PORT_OFFSET as PUB_PORT_OFFSET
from meshreg.addresses import REPLICATION_PORT_OFFSET as REPLICATION_PORT_OFFSET
from meshreg.addresses import parse_address as parse_address
from meshreg.addresses import split_node_address
from meshreg.configcenter.model import (
    DEFAULT_KEEP_REVISIONS,
    DEFAULT_KEEP_SECONDS,
    DEFAULT_MAX_BYTES_PER_NAMESPACE,
    DEFAULT_MAX_CONFIGS,
    DEFAULT_MAX_CONFIGS_PER_NAMESPACE,
    DEFAULT_MAX_CONTENT_BYTES,
    DEFAULT_MAX_TOMBSTONES,
    DEFAULT_MAX_TOTAL_BYTES,
    ConfigLimits,
)
from meshreg.core.distro import ClusterPolicy
from meshreg.core.health import HealthPolicy
from meshreg.core.quotas import LimitsPolicy
from meshreg.errors import ConfigError
from meshreg.wire.batching import BATCH_DELTAS, MAX_BATCH_DELTAS
from meshreg.wire.messages import is_valid_host

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class SecurityConfig:
    """CURVE keys and access control (docs/SECURITY.md).

    ``key``: the node's key file (``meshreg keygen``); every socket then uses CURVE and
    only holders of this key are peers.  ``acl``: the clients' keys and what they may
    do (default deny when a key is set).  ``insecure``: allow a non-loopback address
    without a key (a trusted network only; warned about at start and in ``stats``).
    """

    key: str | None = None
    acl: str | None = None
    insecure: bool = False


# Bounds on every time setting, in seconds (lowest, highest).  The core accepts any
# positive timing (the simulation runs on a fake clock); an operator's configuration
# is held to these, so a typo cannot spin an idle node (``check_interval = 1e-9``)
# or leave a rule that never fires in practice.
TIME_BOUNDS: dict[str, tuple[float, float]] = {
    "check_interval": (0.05, 3600.0),  # s; below 50 ms a sweep loop burns CPU for nothing
    "unhealthy_after": (0.1, 30 * 86400.0),  # s; also above check_interval (see validate)
    "evict_after": (0.1, 30 * 86400.0),  # s; also >= unhealthy_after
    "empty_session_after": (0.1, 30 * 86400.0),  # s; capped by evict_after where used
    "override_ttl": (1.0, 30 * 86400.0),  # s; an override of an instance registered nowhere
    "peer_timeout": (0.2, 600.0),  # s; below 200 ms a busy peer flaps down and up
    "beacon_interval": (0.01, 60.0),  # s; also below peer_timeout
    "anti_entropy_interval": (0.05, 3600.0),  # s; digests are O(services): not in a loop
    "peer_request_timeout": (0.05, 600.0),  # s; a peer call waiting longer holds a write
}
MAX_NODE_ID_LEN = 256  # chars; what peers accept as a member id (wire/peer.py)
DEFAULT_CONFIG_KEEP_DAYS = DEFAULT_KEEP_SECONDS / 86400  # days of config history (30)


def default_data_dir(host: str, port: int) -> Path:
    """Where ``meshreg node`` keeps its data without ``--data-dir``: the user's state
    directory (``$XDG_STATE_HOME``, else ``~/.local/state``), ``meshreg/<host>_<port>``,
    so two nodes on one machine never share a database."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "meshreg" / f"{host}_{port}"


log = logging.getLogger("meshreg.node")
WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]")  # bind every interface; name no machine


@dataclass(frozen=True)
class NodeConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # The host peers and clients reach this node at (beacons, ``cluster``, ``ping``, the
    # default node id); "": ``host``.  Needed when ``host`` binds every interface.
    advertise: str = ""
    health: HealthPolicy = field(default_factory=HealthPolicy)
    cluster: ClusterPolicy = field(default_factory=ClusterPolicy)
    limits: LimitsPolicy = field(default_factory=LimitsPolicy)  # quotas: core/quotas
    node_id: str = ""  # empty: the node's address host:port
    peers: tuple[str, ...] = ()  # host:port of the other nodes (may include this one)
    log_level: str = "INFO"
    security: SecurityConfig = field(default_factory=SecurityConfig)
    # The configuration center (docs/CONFIG.md).  data_dir "": configs live in memory only
    # (an embedded or simulated node); ``meshreg node`` fills in default_data_dir().
    data_dir: str = ""
    config_max_content_bytes: int = DEFAULT_MAX_CONTENT_BYTES  # bytes per content (<= 10 MiB)
    config_keep_revisions: int = DEFAULT_KEEP_REVISIONS  # past revisions kept; 0: no count limit
    config_keep_days: float = DEFAULT_CONFIG_KEEP_DAYS  # days of history kept; 0: no age limit
    # content held, all versions; live data ids, in all and per namespace (0: no limit
    # per namespace); deleted data ids kept (the oldest purged first beyond it)
    config_max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    config_max_configs: int = DEFAULT_MAX_CONFIGS
    config_max_configs_per_namespace: int = DEFAULT_MAX_CONFIGS_PER_NAMESPACE
    config_max_tombstones: int = DEFAULT_MAX_TOMBSTONES
    # 0: no such limit; None: the default (64 MiB), under which a namespace already held
    # above it (written before the limit existed: an upgrade) keeps room (review41 F1)
    config_max_bytes_per_namespace: int | None = None
    # Serve config reads at once, without catching up from a majority (--config-force-ready:
    # the operator's override for a lone survivor; docs/CONFIG.md "The ready gate").
    config_force_ready: bool = False
    # This node joins a cluster that holds configs already (--config-join-existing: a wiped
    # or replaced member, a member added to a running cluster): while its store has not
    # caught up it never counts as a new cluster's member (docs/CONFIG.md "A store that
    # started empty"; etcd's --initial-cluster-state existing).
    config_join_existing: bool = False
    # Deltas per replication message at most (wire/batching); 1 sends every change alone.
    replication_batch: int = BATCH_DELTAS

    def __post_init__(self) -> None:
        # an IPv6 host may be given in brackets (``--host [fd77::1]``, as in an address);
        # kept so it bound nothing (``tcp://[[fd77::1]]``) and was announced as
        # ``[fd77::1]:7800``, which peers listing ``[fd77::1]:7800`` (kept bare) never
        # matched (review69 F4)
        for name in ("host", "advertise"):
            value = getattr(self, name)
            if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
                object.__setattr__(self, name, value[1:-1])

    def config_limits(self) -> ConfigLimits:
        """The config store's limits (raises ConfigError naming the setting)."""
        try:
            return ConfigLimits(
                max_content_bytes=self.config_max_content_bytes,
                keep_revisions=self.config_keep_revisions or None,
                keep_seconds=self.config_keep_days * 86400.0 or None,
                max_total_bytes=self.config_max_total_bytes,
                max_configs=self.config_max_configs,
                max_configs_per_namespace=self.config_max_configs_per_namespace,
                max_tombstones=self.config_max_tombstones,
                max_bytes_per_namespace=DEFAULT_MAX_BYTES_PER_NAMESPACE
                if self.config_max_bytes_per_namespace is None
                else self.config_max_bytes_per_namespace,
                room_for_held=self.config_max_bytes_per_namespace is None,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[config]: {exc}") from None

    @property
    def address(self) -> str:
        """Where peers and clients reach this node: ``advertise`` (else ``host``) and port.
        The sockets bind ``host``."""
        return f"{self.advertise or self.host}:{self.port}"

    @property
    def pub_port(self) -> int:
        return self.port + PUB_PORT_OFFSET

    @property
    def replication_port(self) -> int:
        return self.port + REPLICATION_PORT_OFFSET

    @property
    def peer_port(self) -> int:
        return self.port + PEER_PORT_OFFSET

    @property
    def effective_node_id(self) -> str:
        """The id this node has in the cluster: ``node_id`` when configured, else its
        address (one name for one thing: there is no separate "member id")."""
        return self.node_id or self.address

    def peer_addresses(self) -> list[str]:
        """Normalised peer addresses, without this node's own (an entry naming this node,
        e.g. ``localhost:P`` for a node on ``127.0.0.1:P``, is dropped: ``self_peers``;
        the runtime logs it once at start)."""
        return self._split_peers()[0]

    def self_peers(self) -> list[str]:
        """The entries of the peer list that name this node itself."""
        return self._split_peers()[1]

    def peer_aliases(self) -> dict[str, str]:
        """``ip:port`` -> the peer address that names it, for each peer named by a host
        name (resolved now, once): a node announces the address it advertises (by default
        its IP), which is not how a peer list naming it by host name spells it; without
        this, such a peer was never heard at the address listed (a "(never heard)" row)
        and counted as a configured member down: config writes and reads refused.  A name
        that does not resolve (yet) gives no alias."""
        aliases: dict[str, str] = {}
        for addr in self.peer_addresses():
            host, port = split_node_address(addr)
            try:
                ipaddress.ip_address(host)
                continue  # an address: spelled as announced
            except ValueError:
                pass
            try:
                infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
            except (OSError, UnicodeError) as exc:
                log.warning("peer %s: host %s does not resolve (%s); its beacons are matched "
                            "by that spelling only", addr, host, exc)  # fmt: skip
                continue
            for info in infos:
                ip = str(info[4][0])
                alias = f"{ip}:{port}"  # as that node announces it (bare, IPv6 too: F3)
                aliases.setdefault(alias, addr)
        return aliases

    def _split_peers(self) -> tuple[list[str], list[str]]:
        """(the other nodes' addresses, the entries that name this node)."""
        out: list[str] = []
        itself: list[str] = []
        for text in self.peers:
            try:
                host, port = parse_address(text, default_port=0)
            except ConfigError as exc:
                raise ConfigError(f"peer list (--peer, [cluster] peers): {exc}") from None
            if port == 0:  # (review19 F3: taken as 7800, silently; this node itself if so)
                raise ConfigError(
                    f"peer {text!r} has no port: give every peer as host:port (the request "
                    f"port of that node, e.g. {_with_port_example(host)})"
                )
            addr = f"{host}:{port}"
            if addr in out or addr in itself:
                continue
            if addr == self.address or (
                port == self.port
                and (_same_host(host, self.host) or _same_host(host, self.advertise or self.host))
            ):
                itself.append(addr)
            else:
                out.append(addr)
        return out, itself

    def with_overrides(self, **overrides: Any) -> NodeConfig:
        """Apply non-None overrides (CLI flags win over the file)."""
        health_keys = {f.name for f in fields(HealthPolicy)}
        cluster_keys = {f.name for f in fields(ClusterPolicy)}
        given = {k: v for k, v in overrides.items() if v is not None and v != ()}
        security = {k: given.pop(k) for k in ("key", "acl", "insecure") if k in given}
        if security:
            given["security"] = replace(self.security, **security)
        health = {k: v for k, v in given.items() if k in health_keys}
        cluster = {k: v for k, v in given.items() if k in cluster_keys}
        if "peer_timeout" in cluster and "beacon_interval" not in cluster:
            # keep about six beacons per timeout, so one lost beacon never flaps a member
            cluster["beacon_interval"] = min(
                self.cluster.beacon_interval, cluster["peer_timeout"] / 6
            )
        top = {k: v for k, v in given.items() if k not in health_keys | cluster_keys}
        try:
            new_health = replace(self.health, **health) if health else self.health
            new_cluster = replace(self.cluster, **cluster) if cluster else self.cluster
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        if "peers" in top:
            top["peers"] = tuple(top["peers"])
        cfg = replace(self, health=new_health, cluster=new_cluster, **top)
        cfg.validate()
        return cfg

    def _validate_advertise(self) -> None:
        """A node bound to every interface names no machine: in a cluster its peers and
        clients would be told ``0.0.0.0:P`` (and its configured address would never be
        heard), so it needs ``advertise``."""
        advertise = self.advertise
        if type(advertise) is not str or advertise != advertise.strip():
            raise ConfigError(f"advertise must be a host name or address, got {advertise!r}")
        if advertise:
            if advertise in WILDCARD_HOSTS or not is_valid_host(advertise.strip("[]")):
                raise ConfigError(
                    f"advertise {advertise!r} is not an address peers and clients can reach: "
                    "give this node's own IP address or host name (e.g. 10.0.0.5)"
                )
            itself = self._split_peers()[1]
            if itself and self.address not in itself:
                # the others' lists name it so too: they would know it by two addresses
                # (listed twice, its config messages refused as "not a configured peer")
                raise ConfigError(
                    f"the peer list names this node {itself[0]} but it would advertise "
                    f"{self.address}: peers must know a node by one address; use "
                    f"--advertise {itself[0].rpartition(':')[0]} or name it "
                    f"{self.address} in every node's list"
                )
        elif self.host in WILDCARD_HOSTS and self._split_peers()[0]:
            raise ConfigError(
                f"host {self.host} binds every interface but names no machine, and peers and "
                f"clients must be told this node's address: add --advertise ADDRESS (advertise "
                f"in [node]), e.g. --advertise 10.0.0.5, or bind one interface with --host"
            )

    def validate(self) -> None:
        if type(self.host) is not str or not self.host.strip():
            raise ConfigError(
                f"host (--host, or host in [node]) must not be empty, got {self.host!r}: use "
                "127.0.0.1 (this machine only), "
                "0.0.0.0 (every interface) or the address of one interface"
            )
        highest = 65536 - PORT_SPAN  # the node uses P..P+3
        if type(self.port) is not int or not 0 < self.port <= highest:
            raise ConfigError(
                f"port must be in 1..{highest} (the node also uses port+1 for notifications, "
                f"port+2 for replication and port+3 for peer requests), got {self.port!r}"
            )
        if type(self.node_id) is not str:
            raise ConfigError(f'node_id must be a string (e.g. "node-a"), got {self.node_id!r}')
        if len(self.node_id) > MAX_NODE_ID_LEN or not self.node_id.isprintable():
            raise ConfigError(
                f"node_id must be at most {MAX_NODE_ID_LEN} printable characters, "
                f"got {self.node_id!r}"
            )
        self._validate_timings()
        self._validate_advertise()
        self._validate_peer_ports()  # (and ConfigError on a malformed peer)
        if self.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(
                f"log_level must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}"
            )
        if type(self.data_dir) is not str:
            raise ConfigError(f"data_dir must be a directory path, got {self.data_dir!r}")
        batch = self.replication_batch
        if type(batch) is not int or not 1 <= batch <= MAX_BATCH_DELTAS:
            raise ConfigError(
                f"replication_batch (--replication-batch, or replication_batch in [cluster]) "
                f"must be a whole number in 1..{MAX_BATCH_DELTAS} (deltas per replication "
                f"message; default {BATCH_DELTAS}), got {batch!r}"
            )
        if type(self.config_keep_revisions) is not int or self.config_keep_revisions < 0:
            raise ConfigError("[config] keep_revisions must be a whole number >= 0 (0: no limit)")
        if type(self.config_keep_days) not in (int, float) or not self.config_keep_days >= 0:
            raise ConfigError("[config] keep_days must be a number of days >= 0 (0: no limit)")
        self.config_limits()

    def _validate_peer_ports(self) -> None:
        """Two nodes on one host whose port ranges P..P+3 overlap: a typo in a port (a
        peer at 24119 beside this node at 24120 made this node's replication socket
        subscribe to its own notification port, and log "bad replication message" every
        second without a word on why: an operations review of 2026-12-07)."""
        peers = self._split_peers()[0]
        nodes = [(f"this node {self.address}", self.host, self.port)]
        if self.advertise and self.advertise != self.host:  # bound to 0.0.0.0, say
            nodes.append((f"this node {self.address}", self.advertise, self.port))
        for addr in peers:
            host, port = split_node_address(addr)
            nodes.append((f"peer {addr}", host, port))
        for i, (name_a, host_a, port_a) in enumerate(nodes):
            for name_b, host_b, port_b in nodes[i + 1 :]:
                if abs(port_a - port_b) >= PORT_SPAN or port_a == port_b or name_a == name_b:
                    continue
                if host_a != host_b and not _same_host(host_a, host_b):
                    continue
                raise ConfigError(
                    f"{name_a} and {name_b} are on one host with overlapping ports (each "
                    f"node uses P..P+{PORT_SPAN - 1}: requests, notifications, replication, "
                    f"peer requests): a typo in a port? put nodes on one host at least "
                    f"{PORT_SPAN} ports apart (e.g. 7800, 7810)"
                )

    def _validate_timings(self) -> None:
        """Hold every time setting to ``TIME_BOUNDS`` and the rules between them."""
        h, c = self.health, self.cluster
        for name, (low, high) in TIME_BOUNDS.items():
            value = getattr(h if hasattr(h, name) else c, name)
            if not low <= value <= high:
                raise ConfigError(f"{name} must be in {low:g}..{high:g} seconds, got {value!r}")
        if not h.unhealthy_after > h.check_interval:
            raise ConfigError(
                f"unhealthy_after ({h.unhealthy_after:g} s) must be above check_interval "
                f"({h.check_interval:g} s): the sweep could not notice it in time"
            )
        if not c.beacon_interval < c.peer_timeout:
            raise ConfigError(
                f"beacon_interval ({c.beacon_interval:g} s) must be below peer_timeout "
                f"({c.peer_timeout:g} s)"
            )


def load_node_config(path: str | Path | None) -> NodeConfig:
    """Read ``[node]``, ``[health]``, ``[cluster]`` and ``[limits]`` tables from a TOML file.

    Example::

        [node]
        host = "127.0.0.1"
        port = 7800
        log_level = "INFO"

        [health]
        check_interval = 5.0
        unhealthy_after = 15.0
        evict_after = 30.0
        empty_session_after = 10.0        # an empty client session, without a renewal
        override_ttl = 600.0              # an operator override of an absent instance
        self_preservation = true
        self_preservation_threshold = 0.85
        self_preservation_min = 10

        [cluster]
        node_id = "node-a"
        peers = ["10.0.0.1:7800", "10.0.0.2:7800", "10.0.0.3:7800"]
        peer_timeout = 3.0
        replication_batch = 256           # deltas per replication message at most (1: alone)

        [limits]                          # quotas on client writes (core/quotas.LimitsPolicy)
        max_namespaces = 10000
        max_services_per_namespace = 100000
        max_services = 1000000
        max_instances_per_service = 50000
        max_instances = 2000000
        max_metadata_bytes = 536870912   # 512 MiB
        max_metadata_bytes_per_namespace = 0  # 0: max_metadata_bytes // 4
        max_tombstones = 500000
        max_sessions = 100000
        max_sessions_per_client = 0       # 0: max_sessions // 16
        max_services_per_client_in_namespace = 0  # 0: max_services_per_namespace // 4

        [config]                          # the configuration center (docs/CONFIG.md)
        max_content_bytes = 1048576       # bytes per content, at most 10 MiB
        max_total_bytes = 268435456       # 256 MiB held: every kept version's content + 1 KiB
        max_bytes_per_namespace = 67108864  # 64 MiB of it per namespace (0: no limit)
        max_configs = 100000              # data ids held, deleted ones included (keep_days)
        keep_revisions = 100              # past revisions kept per data id (0: no limit)
        keep_days = 30                    # days of history kept (0: no limit)
        force_ready = false               # --config-force-ready: a lone survivor's override
        join_existing = false             # --config-join-existing: a replaced or added member
        # [node] data_dir = "/var/lib/meshreg" (default: the user's state directory)
    """
    if path is None:
        return NodeConfig()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for table in ("node", "health", "cluster", "security", "limits", "config"):
        if not isinstance(data.get(table, {}), dict):
            raise ConfigError(f"config file {path}: [{table}] must be a table")
    unknown = set(data) - {"node", "health", "cluster", "security", "limits", "config"}
    if unknown:
        raise ConfigError(f"config file {path}: unknown table(s) {sorted(unknown)}")
    node = data.get("node", {})
    health = data.get("health", {})
    cluster = dict(data.get("cluster", {}))
    limits = data.get("limits", {})
    allowed = {
        "node": {"host", "port", "advertise", "log_level", "data_dir"},
        "config": {
            "max_content_bytes",
            "max_total_bytes",
            "max_configs",
            "max_configs_per_namespace",
            "max_bytes_per_namespace",
            "max_tombstones",
            "keep_revisions",
            "keep_days",
            "force_ready",
            "join_existing",
        },
        "health": {f.name for f in fields(HealthPolicy)},
        "cluster": {f.name for f in fields(ClusterPolicy)}
        | {"node_id", "peers", "replication_batch"},
        "limits": {f.name for f in fields(LimitsPolicy)},
    }
    config_table = data.get("config", {})
    tables = (("node", node), ("health", health), ("cluster", cluster), ("limits", limits))
    tables += (("config", config_table),)
    for table, values in tables:
        bad = set(values) - allowed[table]
        if bad:
            raise ConfigError(
                f"config file {path}: unknown key(s) {sorted(bad)} in [{table}]; "
                f"allowed: {sorted(allowed[table])}"
            )
    node_id = cluster.pop("node_id", "")
    if type(node_id) is not str:
        raise ConfigError(
            f'config file {path}: [cluster] node_id must be a string (e.g. "node-a"), '
            f"got {node_id!r}"
        )
    peers = cluster.pop("peers", [])
    replication_batch = cluster.pop("replication_batch", BATCH_DELTAS)
    if not isinstance(peers, list) or not all(isinstance(p, str) for p in peers):
        raise ConfigError(f'config file {path}: [cluster] peers must be a list of "host:port"')
    kinds = {f.name: type(f.default) for f in fields(HealthPolicy)}  # bool, int or float
    for table, values in (("health", health), ("cluster", cluster)):
        for k, v in values.items():
            kind = kinds[k] if table == "health" else float
            if kind is bool and type(v) is not bool:
                raise ConfigError(f"config file {path}: [{table}] {k} must be true or false")
            if kind is int and type(v) is not int:
                raise ConfigError(f"config file {path}: [{table}] {k} must be a whole number")
            if kind is float and type(v) not in (int, float):
                unit = "" if k == "self_preservation_threshold" else " of seconds"
                raise ConfigError(f"config file {path}: [{table}] {k} must be a number{unit}")
    for table, values in (("health", health), ("cluster", cluster)):
        for k, v in values.items():  # named with their bounds before a rule between them
            if k in TIME_BOUNDS and not TIME_BOUNDS[k][0] <= v <= TIME_BOUNDS[k][1]:
                low, high = TIME_BOUNDS[k]
                raise ConfigError(
                    f"config file {path}: [{table}] {k} must be in {low:g}..{high:g} "
                    f"seconds, got {v!r}"
                )
    if "peer_timeout" in cluster and "beacon_interval" not in cluster:
        # as --peer-timeout: about six beacons per timeout (review58 F6: a file's
        # peer_timeout below 0.5 s was refused, the default beacon_interval above it)
        cluster["beacon_interval"] = min(
            ClusterPolicy().beacon_interval, float(cluster["peer_timeout"]) / 6
        )
    for k, v in limits.items():
        if type(v) is not int:
            raise ConfigError(f"config file {path}: [limits] {k} must be a whole number, got {v!r}")
    try:
        limits_policy = LimitsPolicy(**limits)  # validates ranges (ConfigError)
        policy = HealthPolicy(
            **{k: float(v) if kinds[k] is float else v for k, v in health.items()}
        )
        cluster_policy = ClusterPolicy(**{k: float(v) for k, v in cluster.items()})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    port = node.get("port", DEFAULT_PORT)
    if type(port) is not int:
        raise ConfigError(f"config file {path}: [node] port must be an integer, got {port!r}")
    host = node.get("host", DEFAULT_HOST)
    if type(host) is not str:
        raise ConfigError(f"config file {path}: [node] host must be a string")
    if not host.strip():
        raise ConfigError(
            f'config file {path}: [node] host must not be empty: use "127.0.0.1" (this '
            'machine only), "0.0.0.0" (every interface) or the address of one interface'
        )
    security = _security_table(data.get("security", {}), Path(path))
    advertise = node.get("advertise", "")
    if type(advertise) is not str:
        raise ConfigError(f"config file {path}: [node] advertise must be a string")
    cfg = NodeConfig(
        host=host,
        advertise=advertise,
        security=security,
        port=port,
        health=policy,
        cluster=cluster_policy,
        limits=limits_policy,
        node_id=node_id,
        peers=tuple(peers),
        replication_batch=replication_batch,
        log_level=str(node.get("log_level", "INFO")).upper(),
        **_config_table(node, config_table, Path(path)),
    )
    try:
        cfg.validate()
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    return cfg


def _config_table(node: dict[str, Any], table: dict[str, Any], path: Path) -> dict[str, Any]:
    """``[node] data_dir`` (relative to the config file) and ``[config]``."""
    out: dict[str, Any] = {}
    data_dir = node.get("data_dir")
    if data_dir is not None:
        if type(data_dir) is not str or not data_dir:
            raise ConfigError(f"config file {path}: [node] data_dir must be a directory path")
        out["data_dir"] = str(path.parent / data_dir)
    for key, kinds in (
        ("max_content_bytes", (int,)),
        ("max_total_bytes", (int,)),
        ("max_configs", (int,)),
        ("max_configs_per_namespace", (int,)),
        ("max_bytes_per_namespace", (int,)),
        ("max_tombstones", (int,)),
        ("keep_revisions", (int,)),
        ("keep_days", (int, float)),
    ):
        if key in table:
            if type(table[key]) not in kinds:
                raise ConfigError(f"config file {path}: [config] {key} must be a number")
            out[f"config_{key}"] = table[key]
    if "force_ready" in table:  # the ready gate's override (docs/CONFIG.md, "The node")
        if type(table["force_ready"]) is not bool:
            raise ConfigError(f"config file {path}: [config] force_ready must be true or false")
        out["config_force_ready"] = table["force_ready"]
    if "join_existing" in table:  # a replaced or added member (docs/CONFIG.md)
        if type(table["join_existing"]) is not bool:
            raise ConfigError(f"config file {path}: [config] join_existing must be true or false")
        out["config_join_existing"] = table["join_existing"]
    return out


def _security_table(table: dict[str, Any], path: Path) -> SecurityConfig:
    """``[security]``: key and acl paths (relative to the config file), insecure."""
    bad = set(table) - {"key", "acl", "insecure"}
    if bad:
        raise ConfigError(
            f"config file {path}: unknown key(s) {sorted(bad)} in [security]; "
            "allowed: ['acl', 'insecure', 'key']"
        )
    paths: dict[str, str | None] = {}
    for name in ("key", "acl"):
        value = table.get(name)
        if value is not None and (type(value) is not str or not value):
            raise ConfigError(f"config file {path}: [security] {name} must be a file path")
        paths[name] = str(path.parent / value) if value else None
    insecure = table.get("insecure", False)
    if type(insecure) is not bool:
        raise ConfigError(f"config file {path}: [security] insecure must be true or false")
    return SecurityConfig(key=paths["key"], acl=paths["acl"], insecure=insecure)


def _with_port_example(host: str) -> str:
    """``host:7800``, an IPv6 address in brackets; an unbracketed one whose last group
    may be the port the operator meant (``::1:7800``) is shown that way too."""
    if ":" not in host:
        return f"{host}:{DEFAULT_PORT}"
    example = f"[{host}]:{DEFAULT_PORT}"
    head, _, tail = host.rpartition(":")
    try:
        ipaddress.ip_address(head)
    except ValueError:
        return example
    if tail.isdigit() and 0 < int(tail) < 65536:
        example += f", or [{head}]:{tail} if {tail} is the port: an IPv6 address takes brackets"
    return example


def _same_host(a: str, b: str) -> bool:
    """Whether two host names reach the same address here (``localhost`` and
    ``127.0.0.1``); a node bound to every interface also answers on loopback.
    A name that does not resolve (yet) is taken as another host."""
    try:
        ips_a = {i[4][0] for i in socket.getaddrinfo(a, None, proto=socket.IPPROTO_TCP)}
        ips_b = {i[4][0] for i in socket.getaddrinfo(b, None, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError):
        return False
    if ips_a & ips_b:
        return True
    wildcard, loopback = {"0.0.0.0", "::"}, ("127.", "::1")
    return bool(
        (ips_b & wildcard and any(ip.startswith(loopback) for ip in ips_a))
        or (ips_a & wildcard and any(ip.startswith(loopback) for ip in ips_b))
    )
