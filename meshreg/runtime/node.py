"""The node's event loop around :class:`meshreg.core.distro.DistroNode`.

One thread owns every socket (ZeroMQ sockets are not thread-safe).  The loop
polls the client ROUTER, the XPUB (client subscriptions), and, in a cluster,
the peer ROUTER, the replication SUB and one DEALER per peer; with a key, also
the ZAP handler.  It hands each input to the core with the real clock and
carries out the effects: replies, client notifications, replication
broadcasts, forwards and peer calls.  The socket a request arrives on says
who sent it: the client port never serves peer operations, the peer port only
peers (and, with a key, only holders of the cluster key).  ``stop()`` and
``reload()`` may be called from any thread or a signal handler.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import secrets
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any, NoReturn, cast

import zmq
import zmq.utils.z85

from meshreg import __version__
from meshreg.addresses import PEER_PORT_OFFSET, REPLICATION_PORT_OFFSET
from meshreg.config import NodeConfig, load_node_config
from meshreg.configcenter.model import ConfigKey
from meshreg.core import registry as registry_module
from meshreg.core.client_limits import ClientHoldings, ReadRate, WriteRate
from meshreg.core.distro import DistroNode, NodeState
from meshreg.core.effects import (
    Answer,
    BatchJoin,
    Broadcast,
    ClockSkew,
    Effect,
    Forward,
    HeldOut,
    MemberChanged,
    MemberState,
    PaceAdvised,
    PeerCall,
    PeerDataRejected,
    PeerForgotten,
    PeerHeardAtLast,
    PeerHeld,
    PeerIntroduced,
    PeerListing,
    PeersNeverHeard,
    Rejected,
    RepairFailing,
    ReplicationStream,
    Reply,
    SelfPreservationEnded,
    SelfPreservationExpired,
    SelfPreservationStarted,
    ServiceChanged,
    SplitBatch,
    StallDetected,
    SyncAnnounced,
)
from meshreg.core.membership import majorities_may_miss
from meshreg.core.results import (
    BatchResult,
    ClusterResult,
    EntryRefused,
    EntryResult,
    PingResult,
    ServicesResult,
    StatsResult,
)
from meshreg.errors import ConfigError, ErrorCode, RemoteProtocolError
from meshreg.log_limiter import LogLimiter
from meshreg.model import ServiceKey
from meshreg.runtime.config_commit import SWITCH_INTERVAL
from meshreg.runtime.config_plane import ConfigPlane
from meshreg.runtime.data_dir import DataDirLock
from meshreg.runtime.gc_policy import avoid_full_collections
from meshreg.runtime.health_log import HEALTH_REASONS, HealthLog
from meshreg.runtime.memory_release import CHECK_INTERVAL, ReleasePolicy, trim_heap
from meshreg.runtime.notify_outbox import NotifyOutbox
from meshreg.runtime.peers import PeerLinks, decode_call_reply
from meshreg.runtime.process_usage import process_usage
from meshreg.runtime.registry_state import RegistryStateFile
from meshreg.runtime.sd_notify import SystemdNotifier
from meshreg.runtime.subscription_gate import (
    MAX_REFUSED,
    SubscriptionGate,
    is_config_topic,
    topic_key,
)
from meshreg.runtime.sync_pacer import SyncPacer
from meshreg.security.acl import ALL, NODE, OPEN, Access, Acl, Principal
from meshreg.security.authz import authorize, authorize_entries, authorize_topic, permits
from meshreg.security.cursors import CursorSeal
from meshreg.security.keys import load_secret_key
from meshreg.transport.base import Channel, Poller, RecvFn, SendFn, Transport
from meshreg.transport.replies import (
    CLIENT_CONNECTION_BYTES,
    CLIENT_NODE_BYTES,
    MAX_OWNERS,
    PEER_CONNECTION_BYTES,
    PEER_NODE_BYTES,
    ReplyGuard,
)
from meshreg.transport.sockets import PEER_SNDHWM, ROUTER_SNDHWM, CurveKeys, PeerLiveness
from meshreg.transport.zap import NODE_USER, connection_user
from meshreg.transport.zeromq import ZmqTransport
from meshreg.wire import limits
from meshreg.wire.batching import CHECK_EVERY, DeltaBatcher
from meshreg.wire.config_messages import (
    CONFIG_OPS,
    CONFIG_WRITE_OPS,
    ConfigHistory,
    DeleteConfig,
    DropGray,
    ForceConfigReady,
    GetConfig,
    ListConfigs,
    ListenConfig,
    PromoteGray,
    PublishConfig,
    PublishGray,
    RollbackConfig,
    UnlistenConfig,
    decode_config_body,
)
from meshreg.wire.config_peer import CONFIG_FRAME, config_frame_bytes, config_peer_frame_bytes
from meshreg.wire.config_replies import config_topic
from meshreg.wire.envelope import routable_envelope, split_envelope
from meshreg.wire.messages import (
    CheckRevisions,
    DeregisterInstance,
    EntryRejected,
    GetCluster,
    GetStats,
    ListNamespaces,
    ListServices,
    RegisterBatch,
    RegisterInstance,
    RequestRejected,
    SessionClose,
    SessionOpen,
    SessionRenew,
    SetService,
    UpdateInstance,
    beat_fields,
    decode_body,
    encode_batch_entry,
    parse_cursor,
    parse_message,
)
from meshreg.wire.notifications import encode_change_bounded, encode_sync
from meshreg.wire.peer import (
    Beacon,
    DeltaBatch,
    ReplicatedDelta,
    SessionBeats,
    client_write_on_peer_port,
    decode_batch_reply,
    decode_replication,
    decode_written,
    decode_written_batch,
    encode_beacon,
    encode_digest,
    encode_sessions,
    encode_written,
    encode_written_batch,
    parse_call_result,
    parse_peer_message,
    refused_as_unknown,
)
from meshreg.wire.replies import (
    beat_ok,
    decode_reply,
    encode_error,
    encode_ok,
    encode_request,
    with_deadline,
)
from meshreg.wire.result_maps import clear_packed, packed_stats

log = logging.getLogger("meshreg.node")

if sys.version_info >= (3, 11):
    from typing import assert_never
else:  # pragma: no cover

    def assert_never(value: NoReturn) -> NoReturn:
        """mypy: a case of a closed union no branch handles (typing.assert_never)."""
        raise AssertionError(f"unhandled: {value!r}")


OVERFLOW_RESET_EVERY = 1.0  # s; at most one drop of the notification connections (F1)
LOOP_HINT_DEFERRED = 100  # deferred syncs before the log line suspects a client's loop
WALL_CHECK_INTERVAL = 5.0  # s between looks at the wall clock (``_wall_step``)
WALL_STEP_WARN = 1.0  # s the wall clock must have moved since the start to be said
WALL_STEP_REPEAT = 600.0  # s; a step still there is said again this often
BATCH = 512  # messages drained per socket per loop turn, so no socket starves
DELTA_INSTANCES_PER_UNIT = 8  # a replicated delta costs 1 + its instances / this of BATCH:
# a drain of deltas holds about 4,000 instances at most (~0.12 s), not 512 deltas of any
# size (a mass expiry's deltas of 5,000 instances each: seconds of a turn, review83 F2)
JUDGE_POLL = 0.002  # s; a forward due but not judged yet waits one poll this long: after
# SIGCONT, libzmq's I/O thread hands over what came during the stop as the loop resumes
STOP_LINGER_MS = 500  # ms a stopping node gives its last replication and answers to leave
TURN_ENTRIES = 2048  # register_batch entries served per socket per turn (about 60 ms): a
# flood of batches must not keep beacons, renewals and peers waiting
_NOBLOCK, _SNDMORE, _RCVMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE), int(zmq.RCVMORE)
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)


def _delta_cost(delta: ReplicatedDelta) -> int:
    """What a replicated delta takes of a drain's ``BATCH``."""
    payload = delta.payload
    return 1 + (len(payload.upserts) + len(payload.removals)) // DELTA_INSTANCES_PER_UNIT


def _never() -> bool:
    return False


def _changed_settings(old: dict[str, Any], new: dict[str, Any], where: str = "") -> list[str]:
    """``table.key old -> new`` for every setting that differs, named as node.toml
    spells it (review58 F4: ``config_keep_revisions``, ``log_level`` named keys the file
    does not have)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_settings(a, b, f"{where}{key}.")
        elif a != b:
            shown = [repr(v) if v != "" or key != "node_id" else "(its address)" for v in (a, b)]
            out.append(f"{_file_name(where + key)} {shown[0]} -> {shown[1]}")
    return out


_NODE_TABLE = frozenset({"host", "port", "advertise", "log_level", "data_dir"})


def _file_name(key: str) -> str:
    """A setting of NodeConfig (dotted for a nested table) as node.toml spells it:
    ``table.key``."""
    if "." in key:  # health.x, cluster.x, limits.x
        return key
    if key.startswith("config_"):
        return f"config.{key.removeprefix('config_')}"
    if key in ("node_id", "peers", "replication_batch"):
        return f"cluster.{key}"
    return f"node.{key}" if key in _NODE_TABLE else key


def _read_filter(principal: Principal, ns: str) -> Callable[[str, str], bool] | None:
    """Whether ``principal`` may read (group, service) of ``ns``; None: all of it."""
    if principal is OPEN or principal is NODE or principal.may_all(Access.READ, ns):
        return None

    def visible(group: str, service: str) -> bool:
        return principal.may(Access.READ, ns, group, service)

    return visible


# reads whose cost grows with the registry or the cluster, rate-limited per client
_EXPENSIVE_READS: dict[type, str] = {
    ListServices: "services",
    ListNamespaces: "namespaces",
    GetCluster: "cluster",
    GetStats: "stats",
}
# ops a client's write rate counts ([limits] write_rate_per_client): each costs one, a
# batch its entries; beats and session renewals are liveness, and a deregister (as for
# the quotas) is never refused: refused, a process that exits leaves its instances
# listed healthy until they are evicted (review84 F2: close() left 433-743 of 1,000)
_RATED_OPS = frozenset({"register", "register_batch", "update", "service_set", *CONFIG_WRITE_OPS})
_NODE_USER = NODE_USER.decode()  # the cluster key's User-Id, as a Frame reports it
# forwarded writes whose result the owner sends back with its reply (read-your-writes;
# a beat changes nothing a read shows, and is the hot path)
_RELAYED_WRITES = (
    RegisterInstance,
    DeregisterInstance,
    UpdateInstance,
    SetService,
)
_UNDECODED: Any = object()  # _serve's msg: the body is still to be decoded


class StartOver(BaseException):
    """The node must start over, empty (``StallDetected.start_over``): raised out of the
    loop before it serves anything more, so ``run`` ends; whoever runs the node runs a
    new one (``meshreg node`` does).  A BaseException: no ``except Exception`` on the
    way (a request's error handling) may swallow it."""


# requests that may open a session: counted in their client's share (core/sessions)
_SESSION_OPENS = (SessionOpen, SessionRenew, RegisterInstance, RegisterBatch)


def _peer_ports(address: str) -> str:
    """``host:P`` -> ``host:P+2/P+3`` (with the numbers): the ports a peer must let us
    reach (its replication stream, its peer requests)."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return address
    p = int(port)
    return f"{host}:{p + REPLICATION_PORT_OFFSET}/{p + PEER_PORT_OFFSET}"


def _is_loopback(host: str) -> bool:
    """Whether ``host`` (an IPv4 or IPv6 address, or a name) is this machine only."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        return all(
            ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None)
        )
    except (OSError, ValueError):
        return False


class _HeldReplies:
    """The config plane's read answers held for a commit, counted in their client
    connection's reply budget meanwhile (config_plane ``HeldReplies``)."""

    __slots__ = ("_node",)

    def __init__(self, node: NodeRuntime) -> None:
        self._node = node

    def reserve(self, envelope: list[bytes], size: int) -> int:
        return self._node.replies.reserve(envelope[0], size) if envelope else 0

    def send(self, envelope: list[bytes], body: bytes, reserved: int) -> None:
        node = self._node
        if node._router is None:
            node.replies.release_reserved(envelope[0], reserved)
            return
        node.replies.send(node._router, [*envelope, body], node.clock(), True, reserved)

    def cancel(self, envelope: list[bytes], reserved: int) -> None:
        self._node.replies.release_reserved(envelope[0], reserved)


def _client_of(principal: Principal, envelope: list[Any]) -> str | bytes | None:
    """Who a client request comes from, for its share of the sessions: its key's name,
    or on a node without keys its connection (the ROUTER's routing id, as the read rate
    counts it: a client that reconnects is a new one, docs/SECURITY.md); None for the
    cluster key (not limited, as for the read rate: nodes and operators)."""
    if principal is not OPEN:
        return None if principal is NODE else principal.name
    conn = envelope[0] if envelope else b""  # bytes, or the Frame it came in
    if type(conn) is bytes:  # (always, as the drains receive it: the cheap test first)
        return conn
    return conn.bytes if isinstance(conn, zmq.Frame) else bytes(conn)


# writes that may carry a client deadline (PROTOCOL.md 2.1): judged by the clock read
# when they are served, not the drain's (a stop in the middle of a drain: see _serve)
_DEADLINE_WRITES = frozenset(
    {RegisterInstance, DeregisterInstance, UpdateInstance, RegisterBatch, SetService, SessionClose}
)
# the configuration center's requests: served by runtime/config_plane, not the core
_CONFIG_REQUESTS = frozenset(
    {
        PublishConfig,
        GetConfig,
        DeleteConfig,
        ListConfigs,
        ConfigHistory,
        RollbackConfig,
        ListenConfig,
        UnlistenConfig,
        PublishGray,
        PromoteGray,
        DropGray,
        ForceConfigReady,
    }
)


def _frames_after(
    recv: Any, sock: Channel, frame: Any, delimited: bool = False, copy: bool = True
) -> tuple[list[Any], str]:
    """The rest of a message from ``frame`` (received as a Frame; the routing id before it
    already taken): (its frames as bytes, or as Frames with ``copy`` False, ""); or ([its
    last Frame], why) for a message whose envelope is out of bounds: a frame before its last
    above ``MAX_ROUTING_FRAME_BYTES`` (a routing frame, or a body with more after it), or
    more than ``MAX_ENVELOPE_FRAMES`` of them.  Such a message is received to its end and
    dropped without a copy, so it costs the loop microseconds whatever its size (review52
    F1: ``ping``s behind 15 routing frames of 2 MiB grew a node by GBs: each was copied, and
    mirrored into its reply).  ``delimited``: the delimiter was taken."""
    out: list[Any] = []
    while frame.more:
        size = len(frame)
        if size > limits.MAX_ROUTING_FRAME_BYTES or len(out) >= limits.MAX_ENVELOPE_FRAMES:
            if delimited:
                why = "request must have exactly one body frame after the delimiter"
            elif size > limits.MAX_ROUTING_FRAME_BYTES:
                why = (
                    f"a routing frame of {size} bytes before the delimiter (at most "
                    f"{limits.MAX_ROUTING_FRAME_BYTES}: a ZeroMQ routing id); send [b'', body]"
                )
            else:
                why = "too many routing frames before the delimiter"
            while frame.more:
                frame = recv(sock, 0, False)
            return [frame], why  # (the Frame names the sender's address)
        delimited = delimited or not size
        out.append(frame.bytes if copy else frame)
        frame = recv(sock, 0, False)
    out.append(frame.bytes if copy else frame)
    return out, ""


def _too_large(size: int, cap: int) -> RequestRejected:
    """Made when raised, never before the decode: an exception held in a local of the
    frame it is raised from is a cycle (exception, traceback, frame) that keeps the
    frame's locals alive, and one made before a long decode is old by the time it is
    raised, so only a full collection, which the node turns off (runtime/gc_policy),
    would free it with the decoded body (review52 F4: ~1.1 MiB leaked per oversized
    non-config request)."""
    return RequestRejected(
        ErrorCode.TOO_LARGE,
        f"request body is {size} bytes; the limit is {limits.MAX_BODY_BYTES} "
        f"(config ops: the content cap {cap} + 64 KiB)",
    )


class NodeRuntime:
    """Binds the sockets and runs the loop until ``stop()``.

    ``run()`` is ``prepare()``, a poll, ``dispatch(events)``, again; a simulation calls
    :meth:`step` (one turn, polling without waiting) whenever input arrived or the
    time it asked for came, on its own clock and transport.
    """

    def __init__(
        self,
        config: NodeConfig,
        clock: Callable[[], float] = time.monotonic,
        epoch: int | None = None,
        avoid_full_gc: bool = False,
        transport: Transport | None = None,
        wall_offset: float | None = None,
        commit_thread: bool | None = None,
    ) -> None:
        """``avoid_full_gc``: no automatic full GC collections (runtime/gc_policy) and a
        short GIL switch interval (runtime/config_commit):
        process-wide, so only for a process that is a node.  ``clock``: the one place
        the runtime reads the time (monotonic seconds); ``transport``: the sockets
        (None: ZeroMQ, made at ``bind()``); ``wall_offset``: wall clock minus ``clock``
        (None: read once from ``time.time()``); ``commit_thread``: the config plane
        commits on a writer thread (None: with the ZeroMQ transport; an injected one, the
        simulation's, commits inline so a seed replays)."""
        if avoid_full_gc:  # first: before the config plane loads its table from SQLite
            # (with Python's thresholds, loading 300,000 versions ran 8 full collections,
            # 3-4 s of a 16-18 s load; docs/CONFIG.md "The node")
            avoid_full_collections()
            sys.setswitchinterval(SWITCH_INTERVAL)  # the config writer thread (config_commit)
        self.config = config
        self.clock = clock
        self.epoch = epoch if epoch is not None else secrets.randbits(63)
        now = clock()
        # the wall clock read now, once: stamps and the config plane run on it from here
        # (a step later would move every deadline at once); a step is said (``_wall_step``)
        self._wall_source: Callable[[], float] | None = None
        if wall_offset is None:
            wall_offset = time.time() - now
            self._wall_source = time.time
        self.peer_addresses = config.peer_addresses()
        for addr in config.self_peers():  # once here (the list is read in several places)
            log.info("peer %s is this node (%s); not treating it as a peer", addr, config.address)
        self.peer_aliases = config.peer_aliases() if self.peer_addresses else {}
        self.core = DistroNode(
            config.health,
            config.cluster,
            config.effective_node_id,
            config.address,
            self.peer_addresses,
            self.epoch,
            now,
            wall_offset=wall_offset,
            limits=config.limits,
            aliases=self.peer_aliases,
        )
        self.core.registry.session_secret = secrets.token_bytes(32)  # (review23 F7)
        self._stop = threading.Event()
        self.transport = transport
        self._router: Channel | None = None
        self._xpub: Channel | None = None
        # notifications wait there while a subscriber's queue is full (XPUB_NODROP)
        self.outbox = NotifyOutbox(self._send_notification, self._notify_lossy)
        self._forwards_view = -1  # the member view the pending forwards were checked in
        self._poll_began = -math.inf  # (at most) when the loop's last poll began: ``prepare``
        self.sync_pacer = SyncPacer()  # a topic's subscription syncs: one per 0.2 s at most
        self.notification_resets = 0  # every notification connection dropped (ACL, F1)
        self._overflow_reset_at = -math.inf  # the last drop for refused subscriptions
        self._repl_pub: Channel | None = None
        self._repl_sub: Channel | None = None
        # learned peers forgotten: unsubscribed once the replication SUB is read empty
        # (``_drain_replication``)
        self._repl_forget: list[str] = []
        self._peers: PeerLinks | None = None
        self._peer_router: Channel | None = None
        self._poller: Poller | None = None
        self._dealers: set[Channel] = set()
        self._state_seen = NodeState.CATCHING_UP  # the core's state at the last turn
        # systemd's Type=notify (runtime/sd_notify): READY=1 once caught up; "told" when
        # there is nothing (more) to tell, "configs_waiting" while READY=1 went out with
        # the config center still waiting for a majority (its STATUS says so until then)
        self._systemd = SystemdNotifier()
        self._systemd_told = not self._systemd.enabled
        self._systemd_configs_waiting = False
        self._fast_io: tuple[RecvFn, SendFn] | None = None  # the transport's, for the beat path
        self._own_transport = transport is None  # made (and dropped) by bind()/close()
        self._limiter = LogLimiter(log)
        # replies a connection does not read: bounded, dropped and counted (transport/replies)
        self.replies = ReplyGuard(
            self._limiter, "client", CLIENT_CONNECTION_BYTES, CLIENT_NODE_BYTES, ROUTER_SNDHWM
        )
        self.peer_replies = ReplyGuard(
            self._limiter, "peer", PEER_CONNECTION_BYTES, PEER_NODE_BYTES, PEER_SNDHWM
        )
        self._wall_offset = wall_offset
        self.wall_step = 0.0  # s the wall clock moved since the start, as last looked at
        self._wall_checked = now
        self._wall_said: tuple[float, float] | None = None  # (step, when) last logged
        self._request_frame: Any = None  # the secure drain's current request (Peer-Address)
        self._reload = threading.Event()
        # (path, the node config file as read at start): a reload compares it (``meshreg node``)
        self.config_file: tuple[str, NodeConfig] | None = None
        self._access_generation = 0  # ACL reloads that changed it: sessions check again
        self.keys: CurveKeys | None = None
        self.acl = Acl.empty()
        if config.security.key:
            pair = load_secret_key(config.security.key)
            assert pair.secret is not None
            self.keys = CurveKeys(pair.public, pair.secret)
            if config.security.acl:
                self.acl = self._load_acl(config.security.acl)
        elif config.security.acl:
            raise ConfigError(
                f"--acl {config.security.acl} needs --key: access control identifies clients "
                "by their CURVE keys (meshreg keygen NAME makes one; see docs/SECURITY.md)"
            )
        # one node per data dir (runtime/data_dir), taken before its database is opened
        self._data_lock = DataDirLock(config.data_dir, config.address) if config.data_dir else None
        try:
            self.configs = ConfigPlane(  # the configuration center (runtime/config_plane)
                config,
                now + wall_offset,
                self._config_send,
                self._config_reply,
                self._config_notify,
                self._limiter,
                commit_thread=transport is None if commit_thread is None else commit_thread,
                watched=self._config_watched,
                held_replies=_HeldReplies(self),
                aliases=self.peer_aliases,
                count_error=self.core.registry.count_error,
                clock_lead=lambda: self.core.registry.clock_lead,
                clock_skewed=lambda: self.core.clock_skewed,
                send_back=self._config_send_back,
                first_tag=(self.epoch & 0xFFFF_FFFF) << 32,  # this incarnation's tags
            )
            # service settings and instance overrides (runtime/registry_state): operators'
            # writes, which providers registering again cannot give back after a restart
            # of every node
            self.registry_state = RegistryStateFile(config.data_dir) if config.data_dir else None
            self._registry_state_failing: float | None = None  # since when saves fail
            if self.registry_state is not None:
                self._restore_registry_state(now)
        except BaseException:
            self._release_data_dir()
            raise
        self._principals: dict[str, Principal] = {}  # User-Id -> principal (reset on reload)
        limits_policy = config.limits
        self.holdings = ClientHoldings(
            limits_policy.max_instances_per_client,
            limits_policy.max_services_per_namespace,
            limits_policy.services_per_client_in_namespace,
        )
        self._cursor_seal = CursorSeal()  # services cursors naming what a client may not read
        self._deltas_as_sync = 0  # notifications too large for a delta (wire/notifications)
        self._counted_fallbacks = 0  # copies the owner refused as late: applied here
        self.read_rate = ReadRate(
            limits_policy.read_rate_per_client, limits_policy.read_rate_per_node
        )
        self.write_rate = WriteRate(limits_policy.write_rate_per_client)
        self.gate = SubscriptionGate()
        self.memory = ReleasePolicy()  # memory given back after a large release
        self._memory_checked = -math.inf
        self.denied = 0
        self.batcher = DeltaBatcher(config.replication_batch)  # deltas -> PUB messages
        self._entries = 0  # register_batch entries served in this drain (TURN_ENTRIES)
        self._cut_short = False  # a drain stopped at TURN_ENTRIES: the next turn at once

    @property
    def secure(self) -> bool:
        return self.keys is not None

    def _check_exposure(self) -> None:
        """Secure by default: a node reachable from other hosts needs a key or --insecure."""
        cfg = self.config
        if self.secure:
            return
        if _is_loopback(cfg.host):
            return
        if not cfg.security.insecure:
            where = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
            raise ConfigError(
                f"refusing to serve on {where}:{cfg.port} without a key: anyone who can "
                "reach it could read and change the registry. Make a key (meshreg keygen "
                "cluster) and start with --key cluster.key [--acl acl.toml] (docs/SECURITY.md); "
                "or, on a network you trust, pass --insecure (config file: [security] "
                "insecure = true)"
            )
        log.warning(
            "INSECURE: serving on %s:%d without encryption or authentication (--insecure); "
            "anyone who can reach these ports can read and change the registry",
            cfg.host,
            cfg.port,
        )

    def _check_timings(self) -> None:
        """Warn of timings a cluster works badly with (allowed: a test may want them).  A
        node that marks silent instances before it can tell a peer is gone marks those
        renewed through a peer cut off from it (a review with real processes, 2026-12-07:
        unhealthy_after 2 s, peer_timeout 3 s: 7 of 23 live instances marked in a cut)."""
        cfg = self.config
        h, c = cfg.health, cfg.cluster
        if cfg.peer_addresses() and h.unhealthy_after <= c.peer_timeout:
            log.warning(
                "unhealthy_after (%gs) is not above peer_timeout (%gs): a peer cut off from "
                "this node is noticed only after the instances renewed through it are "
                "marked unhealthy here; keep unhealthy_after above peer_timeout (--unhealthy-"
                "after, --peer-timeout; defaults 15s and 3s)",
                h.unhealthy_after,
                c.peer_timeout,
            )

    def _wall_step(self, now: float) -> None:
        """Whether the wall clock was stepped since the start (NTP fixing a clock that
        booted wrong): this node keeps the clock it read at its start, so a fix reaches
        it only at a restart; say so (review44 F3: a node counted out for a clock 60 s
        ahead kept refusing reads after NTP fixed it, and nothing said to restart it)."""
        assert self._wall_source is not None
        self._wall_checked = now
        step = self._wall_source() - (now + self._wall_offset)
        self.wall_step = round(step, 3) if abs(step) >= WALL_STEP_WARN else 0.0
        said = self._wall_said
        if self.wall_step and (
            said is None
            or abs(step - said[0]) >= WALL_STEP_WARN
            or now >= said[1] + WALL_STEP_REPEAT
        ):
            self._wall_said = (step, now)
            log.warning(
                "the wall clock moved by %+.1fs since this node started (an NTP step?); "
                "this node keeps the clock it read at its start for its stamps, its clock "
                "checks and its configs: restart it (one node at a time, `meshreg ping "
                "--ready` between) to take the clock as it is now (docs/DISTRO.md 'Clock "
                "skew')",
                step,
            )

    def _release_memory(self, now: float) -> None:
        """After many subscriptions or instances ended: the tables rebuilt at their size
        and the heap trimmed (runtime/memory_release)."""
        gate = self.gate
        ended = self.memory.due(gate.ended + self.core.store.instances_removed, now)
        if not ended:
            return
        gate.compact()
        self.core.registry.compact()
        trim_heap(f"{ended:,} subscriptions or instances ended")

    def _runtime_stats(self) -> dict[str, Any]:
        """What the runtime, not the core, knows: security, subscriptions, descriptors."""
        transport = self.transport.stats() if self.transport is not None else {}
        return {
            "security": "curve"
            if self.secure
            else ("insecure" if self.config.security.insecure else "loopback"),
            "acl_clients": len(self.acl.clients),
            "wall_clock_step": self.wall_step,  # s since the start: restart (review44 F3)
            "handshakes_refused": transport.get("handshakes_refused", 0),
            "handshakes_unfinished": transport.get("handshakes_unfinished", 0),
            "peer_handshakes_failed": transport.get("peer_handshakes_failed", 0),
            "permission_denied": self.denied,
            "client_instances_held": self.holdings.count(),
            "client_quota_refused": self.holdings.refused,
            # new services refused over a client's share of a namespace (core/client_limits)
            "client_services_refused": self.holdings.refused_services,
            "reads_throttled": self.read_rate.throttled,
            "writes_throttled": self.write_rate.throttled,  # [limits] write_rate_per_client
            # large services' instance lists kept between reads (core/instance_views)
            "instance_lists": {**self.core.registry.views.stats(), **packed_stats()},
            "accept_failures": transport.get("accept_failures", 0),
            "subscriptions_admitted": self.gate.total,
            "subscriptions_repeated": self.gate.repeats,  # a connection's repeats: not counted
            "subscriptions_refused_held": self.gate.refused_held,  # libzmq holds them (F1)
            "notification_resets": self.notification_resets,
            # times memory was given back after many subscriptions or instances ended
            "memory_releases": self.memory.released,
            "process": process_usage(),  # memory, CPU, descriptors, threads (monitoring)
            "replication_messages_out": self.batcher.messages,  # PUB messages of deltas
            # deltas above 16 KiB notified as a sync (watchers pull): review23 F1
            "deltas_notified_as_sync": self._deltas_as_sync,
            # notifications a subscriber's full queue made wait (sent later, in order),
            # and those sent lossy after waiting 0.5 s in vain (runtime/notify_outbox)
            "notifications_held": self.outbox.held,
            "notifications_held_total": self.outbox.held_total,
            "notifications_sent_lossy": self.outbox.sent_lossy,
            "syncs_deferred": self.sync_pacer.deferred,
            # forwarded writes whose owner refused our copy as late (its clock ahead of
            # ours): applied here (review25 F2)
            "forwards_refused_late": self._counted_fallbacks,
            "replies": self.replies.stats(),
            "peer_replies": self.peer_replies.stats(),
            "subscriptions_refused": {
                "invalid": self.gate.refused_invalid,
                "denied": self.gate.refused_acl,
                "full": self.gate.refused_full,
                "share": self.gate.refused_share,
            },
            # config topic subscriptions (one per data id a client listens to, 4.5):
            # ``subscribers`` counts the registry's service watchers only
            "config": {**self.configs.stats(), "subscribers": self.gate.config_total},
        }

    def reload(self) -> None:
        """Re-read the ACL file at the next loop turn (SIGHUP)."""
        self._reload.set()

    def _check_config_file(self) -> None:
        """A reload applies the ACL file only: say which other settings of the node's
        config file changed since the start, so that an operator who edited them and
        reloaded knows they wait for a restart (review27 F5: said nothing)."""
        if self.config_file is None:
            return
        path, at_start = self.config_file
        try:
            now = load_node_config(path)
        except ConfigError as exc:
            log.error("reload: %s; the node runs on as it started", exc)
            return
        changed = _changed_settings(asdict(at_start), asdict(now))
        if changed:
            log.warning(
                "reload: %s changed in settings a reload does not apply: %s; restart the "
                "node to apply them (a reload rereads only the ACL file)",
                path,
                "; ".join(changed[:20])
                + (f"; and {len(changed) - 20} more" if len(changed) > 20 else ""),
            )

    def _reload_acl(self) -> None:
        path = self.config.security.acl
        if not path:
            log.info("reload: no ACL file configured; nothing to reload")
            return
        try:
            acl = self._load_acl(path)
        except ConfigError as exc:
            log.error("reload: kept the previous ACL: %s", exc)
            return
        changed = not acl.same_as(self.acl)
        self.acl = acl
        self._principals.clear()
        log.info("reload: ACL %s: %d clients", path, len(acl.clients))
        if changed:  # each session's instances are checked again at its next renewal
            self._access_generation += 1
        if changed and self.transport is not None:
            # Requests are checked against the ACL one by one, but a subscription is
            # checked once, when admitted: drop every notification connection so that
            # each subscribes again under the new ACL (a revoked key cannot even
            # reconnect). Subscribers lose nothing: each new subscription gets a sync.
            self._reset_notifications()
            log.info(
                "reload: the ACL changed: dropped every notification connection; "
                "subscribers reconnect and are admitted under the new ACL"
            )

    def _reset_notifications(self) -> None:
        if self.transport is not None:
            self.transport.reset_notifications()
            self.notification_resets += 1

    def _refused_overflow(self, now: float) -> None:
        """Too many refused subscriptions held (runtime/subscription_gate): drop every
        notification connection, at most once per ``OVERFLOW_RESET_EVERY``; their
        unsubscriptions empty the gate's table and subscribers reconnect (review37 F1)."""
        if now - self._overflow_reset_at < OVERFLOW_RESET_EVERY:
            return
        self._overflow_reset_at = now
        self._reset_notifications()
        log.warning(
            "dropped every notification connection: %d refused subscriptions held (above "
            "%d; a client subscribing to topics it may not read?); subscribers reconnect",
            self.gate.refused_held,
            MAX_REFUSED,
        )

    def _check_session_access(self, principal: Principal, req: SessionRenew, now: float) -> None:
        """A client's session renewal: its instances in services the client may no longer
        register in are deregistered (once per ACL reload; core/registry)."""

        def allowed(key: ServiceKey) -> bool:
            return principal.may(Access.WRITE, key.namespace, key.group, key.service)

        registry = self.core.registry
        removed = registry.check_session_access(
            req.session, req.namespace, self._access_generation, allowed, now
        )
        if removed:
            log.warning(
                "deregistered %d instance(s) of a session of client %r: after the ACL "
                "reload it may no longer register them (its renewals kept them alive)",
                removed,
                principal.name,
            )

    def _load_acl(self, path: str) -> Acl:
        acl = Acl.load(path)
        assert self.keys is not None
        acl.refuse_key(zmq.utils.z85.decode(self.keys.public))
        return acl

    def _principal(self, user: str) -> Principal | None:
        """The principal of an authenticated connection (None: its key left the ACL)."""
        p = self._principals.get(user)
        if p is None:
            if user == _NODE_USER:
                p = NODE
            else:
                try:
                    p = self.acl.by_key(zmq.utils.z85.decode(user))
                except (ValueError, TypeError):
                    p = None
                if p is None:
                    return None
            if len(self._principals) > 10_000:
                self._principals.clear()
            self._principals[user] = p
        return p

    def _client_name(self, key: bytes) -> str | None:
        """The ACL client a raw CURVE key belongs to (the ZAP rules ask it on each handshake,
        so an ACL reload applies at once), or None."""
        p = self.acl.by_key(key)
        return None if p is None else p.name

    def bind(self) -> None:
        """Bind the sockets (raises ConfigError naming the address on failure)."""
        cfg = self.config
        keys = self.keys
        known = self._client_name
        if self.transport is None:
            self._check_exposure()
            self._check_timings()
            cap = cfg.config_max_content_bytes  # config bodies: larger frames on P and P+3
            self.transport = ZmqTransport(
                keys,
                known,
                self.clock,
                self._limiter,
                request_frame_bytes=config_frame_bytes(cap),
                peer_frame_bytes=config_peer_frame_bytes(cap),
                peer_liveness=PeerLiveness.from_timing(
                    cfg.cluster.peer_timeout, cfg.cluster.beacon_interval
                ),
            )
        elif keys is not None:  # made outside (the simulation): CURVE by the same rules
            self.transport.secure(keys, known)
        transport = self.transport
        self._fast_io = transport.fast_io()
        try:
            self._router = transport.bind_requests(cfg.host, cfg.port)
            self._xpub = transport.bind_notifications(cfg.host, cfg.pub_port)
            if self.peer_addresses:
                self._repl_pub = transport.bind_replication(cfg.host, cfg.replication_port)
                self._peer_router = transport.bind_peer_requests(cfg.host, cfg.peer_port)
                self._repl_sub = transport.connect_replication(self.peer_addresses)
                self._peers = PeerLinks(transport, cfg.cluster.peer_request_timeout)
        except Exception:
            self.close()
            raise
        h = cfg.health
        log.info(
            "meshreg node %s (id %s) serving requests on %s:%d, notifications on %s:%d "
            "(check every %gs, unhealthy after %gs, evict after %gs, self-preservation %s, "
            "epoch %d)",
            __version__,
            cfg.effective_node_id,
            cfg.host,
            cfg.port,
            cfg.host,
            cfg.pub_port,
            h.check_interval,
            h.unhealthy_after,
            h.evict_after,
            f"above {h.self_preservation_threshold:g} of >= {h.self_preservation_min} silent"
            if h.self_preservation
            else "off",
            self.epoch,
        )
        if self.peer_addresses:
            liveness = getattr(transport, "peer_liveness", None)
            log.info(
                "cluster: replication on %s:%d, peer requests on %s:%d, peers %s "
                "(peer timeout %gs%s); catching up",
                cfg.host,
                cfg.replication_port,
                cfg.host,
                cfg.peer_port,
                ", ".join(self.peer_addresses),
                cfg.cluster.peer_timeout,
                f"; {liveness.describe()}" if liveness else "",
            )
        self._tell_systemd("STATUS=catching up from its peers")
        if keys is not None:
            log.info(
                "security: CURVE on every socket, cluster key %s, ACL %s (%d clients)",
                keys.public.decode(),
                cfg.security.acl or "none (only the cluster key may connect)",
                len(self.acl.clients),
            )

    def stop(self) -> None:
        self._stop.set()

    def _systemd_ready(self) -> None:
        """READY=1 to systemd (Type=notify) once the registry has caught up from its peers
        and the config center from a majority; or, when no majority of the configured
        members is up (a cluster starting from nothing, one node after the other), once
        the registry has: the config center cannot catch up before more members start,
        and a unit that never became "started" would hold those starts back.  ``meshreg
        ping --ready`` stays strict meanwhile (configs not ready)."""
        if not self.core.ready:
            return
        configs, replicator = self.configs, self.configs.replicator
        up, members = len(replicator.up), len(replicator.members)
        if self._systemd_configs_waiting:
            if configs.ready:
                self._systemd_told = True
                self._tell_systemd("STATUS=ready")
            return
        if not configs.ready and up >= replicator.majority:
            return  # a majority is up: the config center catches up from it first
        if configs.ready:
            self._systemd_told = True
            self._tell_systemd("READY=1", "STATUS=ready")
        else:
            self._systemd_configs_waiting = True
            self._tell_systemd(
                "READY=1",
                f"STATUS=registry ready; configs wait for a majority ({up} of {members} "
                "configured members up)",
            )

    def _tell_systemd(self, *lines: str) -> None:
        if not self._systemd.enabled:
            return
        try:
            self._systemd.notify(*lines)
        except OSError as exc:
            log.warning("cannot notify systemd at $NOTIFY_SOCKET (%s); not trying again", exc)
            self._systemd = SystemdNotifier({})
            self._systemd_told = True

    def close(self, linger_ms: int | None = None) -> None:
        """Close everything at once (what ``finish`` did not drain is dropped: the
        simulation's crash calls this).  ``linger_ms`` (``finish``): what the replication
        PUB and the client ROUTER still hold (the last deltas, the leave beacon, the last
        answers) gets that long to leave; with LINGER 0 a stopping node under load dropped
        its leave beacon, and a config write forwarded to it as it stopped waited out its
        2.2 s for nothing (CI once: review27's graceful-stop test)."""
        self.configs.close(drain=False)  # after finish(): nothing left to drain
        clear_packed()
        if self._peers is not None:
            self._peers.close()
            self._peers = None
        flushed = (self._repl_pub, self._router)
        for sock in (self._router, self._xpub, self._repl_pub, self._repl_sub, self._peer_router):
            if sock is not None and linger_ms is not None and sock in flushed:
                sock.close(linger=linger_ms)  # (the context's end waits for it, bounded)
            elif sock is not None:
                sock.close()
        self._router = self._xpub = self._repl_pub = self._repl_sub = self._peer_router = None
        self._poller = None
        self._release_data_dir()
        if self.transport is not None:
            self.transport.close()
            if self._own_transport:
                self.transport = None

    def _restore_registry_state(self, now: float) -> None:
        """Load the service settings and instance overrides kept in the data dir."""
        state = self.registry_state
        assert state is not None
        store = self.core.store
        n_settings, n_overrides = state.load_into(store, now)
        for settings in store.settings.values():  # our next stamps come after them
            self.core.hlc.observe(settings[1])
        for held in store.overrides.by_service.values():
            for entry in held.values():
                self.core.hlc.observe(entry[2])
                self.core.hlc.observe(entry[3])
        if n_settings or n_overrides or state.skipped:
            log.info(
                "registry state: %d service settings and %d instance overrides loaded from %s%s",
                n_settings,
                n_overrides,
                state.path,
                f" ({state.skipped} unreadable rows skipped)" if state.skipped else "",
            )

    def _save_registry_state(self) -> None:
        """Persist what changed of the settings and overrides (rare: operators' writes)."""
        store = self.core.store
        if self.registry_state is None:
            store.settings_changed.clear()
            store.overrides.changed.clear()
            return
        try:
            self.registry_state.save_changed(store)
        except sqlite3.Error as exc:  # the disk: keep serving, say it, retry next turn
            if self._registry_state_failing is None:
                self._registry_state_failing = self.clock()
            self._limiter.warning(
                "registry state",
                self.clock(),
                "cannot write service settings / instance overrides to %s: %s (retried; "
                "check the data dir's disk)",
                self.registry_state.path,
                exc,
            )
            return
        if self._registry_state_failing is not None:
            log.warning(
                "writing service settings / instance overrides to %s works again (it failed "
                "for %.1f s)",
                self.registry_state.path,
                self.clock() - self._registry_state_failing,
            )
            self._registry_state_failing = None

    def _release_data_dir(self) -> None:
        if self._data_lock is not None:
            self._data_lock.release()
            self._data_lock = None

    def run(self) -> None:
        """Serve until ``stop()``; closes the sockets on the way out."""
        poller = self.start_loop()
        prepare, dispatch, stopped = self.prepare, self.dispatch, self._stop.is_set
        try:
            while not stopped():
                dispatch(poller.poll(prepare() * 1000.0))
        finally:
            self.finish()

    def start_loop(self) -> Poller:
        """Bind (unless bound) and make the poller over every channel."""
        if self._router is None:
            self.bind()
        transport = self.transport
        router, xpub, peers = self._router, self._xpub, self._peers
        assert transport is not None and router is not None and xpub is not None
        poller = self._poller = transport.poller()
        # the peers' sockets first: a turn serves a delta before a burst of client requests
        for extra in (self._repl_sub, self._peer_router):
            if extra is not None:
                poller.register(extra, zmq.POLLIN)
        poller.register(router, zmq.POLLIN)
        poller.register(xpub, zmq.POLLIN)
        dealers = self._dealers
        if peers is not None:

            def add(sock: Channel) -> None:
                poller.register(sock, zmq.POLLIN)
                dealers.add(sock)

            def remove(sock: Channel) -> None:
                poller.unregister(sock)
                dealers.discard(sock)

            peers.poller_add, peers.poller_remove = add, remove
        if self.configs.wakeup_fd is not None:  # the config writer thread's commits
            poller.register(self.configs.wakeup_fd, zmq.POLLIN)
        self._state_seen = self.core.state
        return poller

    def step(self) -> float:
        """One loop turn without waiting (a simulation's): serve what is ready now,
        then prepare the next; returns how long the loop would now wait for input (s)."""
        assert self._poller is not None, "start_loop() first"
        self.dispatch(self._poller.poll(0))
        return self.prepare()

    def prepare(self) -> float:
        """The loop's work before it waits: timers, effects, the batch of deltas; returns
        the poll timeout in seconds (when the core, a forward or a call wants a turn)."""
        core, sub, peers, transport = self.core, self._repl_sub, self._peers, self.transport
        assert transport is not None
        # stopped during a turn (SIGSTOP while busy), not in the poll: dispatch's check
        # compares with the wake asked before it, so the next request was served as if
        # nothing had happened (CI: a config read on a resumed node stale, 1 of 6 runs)
        self._now_checked()
        if self._reload.is_set():
            self._reload.clear()
            self._check_config_file()
            self._reload_acl()
        if sub is not None and sub.get(_EVENTS) & _POLLIN:
            # Beacons queued while we were busy come first: after a long step
            # of our own, a peer must not look silent only because we were.  (Asked
            # first: on an empty socket a drain ends in a raised zmq.Again, which cost
            # ~2.5 us of a ~16 us idle turn.)
            self._drain_replication(sub)
        if self.replies.waiting:  # requests waiting for their connection's replies
            self._resume_waiting()
        now = self.clock()
        # Silence is judged (a forward's owner, a peer call, a config ack or forward) only
        # for a deadline a poll has begun after: the replies waiting in the sockets were
        # read first.  After a stall (a GC pause or a slow fsync in a turn; SIGSTOP in the
        # poll, when libzmq's I/O thread hands over what came only as the process
        # resumes) the timers ran before the replies that had come in time, and a forward
        # the owner had answered was applied here again, over a later write of the client
        # (review71 F1-F3).  ``now`` is before this turn's poll begins: a lower bound.
        judge, self._poll_began = self._poll_began, now
        transport.tick(now)
        wake = core.tick(now)
        self._carry_out(core.take_effects(), now)
        store = core.store
        if store.settings_changed or store.overrides.changed:  # operators' writes: rare
            self._save_registry_state()
        self.holdings.prune(core.registry.holds, now)
        if core.state is not self._state_seen:  # the core's move (core/distro TRANSITIONS)
            if self._state_seen is NodeState.CATCHING_UP:
                # peers up but catching up themselves are no members yet: named, so a
                # cluster's first start does not read as a node alone (review82 F6)
                members = core.members()
                joining = [p.node_id or p.address for p in core.membership.up_peers()
                           if not p.ready and p.node_id not in members]  # fmt: skip
                log.info(
                    "caught up: ready, %d services known; members %s%s",
                    core.registry.service_count(),
                    ", ".join(members),
                    f" (peers up and still catching up, members once ready: {', '.join(joining)})"
                    if joining
                    else "",
                )
            self._state_seen = core.state
        if not self._systemd_told:
            self._systemd_ready()
        offset = self._wall_offset  # the config plane runs on the wall clock
        wake = min(wake, self.configs.tick(now + offset, judge + offset) - offset)
        if self._wall_source is not None and now >= self._wall_checked + WALL_CHECK_INTERVAL:
            self._wall_step(now)
        if now >= self._memory_checked + CHECK_INTERVAL:
            self._memory_checked = now
            self._release_memory(now)
        if peers is not None:
            self._expire(peers, now, judge)
            deadline = peers.next_deadline()
            if deadline is not None:  # one due but not judged yet: a short poll first
                wake = min(wake, max(deadline, now + JUDGE_POLL))
        self._flush_replication()  # nothing more to read this turn: send the batch
        due = self.sync_pacer.next_due()
        if due is not None:  # subscription syncs deferred (a topic subscribed again soon)
            if due <= now:
                self._deferred_syncs(now)
                due = self.sync_pacer.next_due()
            if due is not None:
                wake = min(wake, due)
        if self.outbox.held:  # notifications a full subscriber queue refused: in order
            retry = self.outbox.flush(now)
            if retry is not None:
                wake = min(wake, retry)
        if self.replies.waiting:
            wake = min(wake, self.replies.next_resume())
        if self._cut_short:  # requests left waiting in a socket: no sleep before them
            self._cut_short = False
            return 0.0
        return min(max(wake - now, 0.0), transport.max_poll)

    def dispatch(self, events: list[tuple[Any, int]]) -> None:
        """Serve the channels a poll found ready."""
        if not events:
            return
        core, clock, transport = self.core, self.clock, self.transport
        router, xpub, sub, peer_router = self._router, self._xpub, self._repl_sub, self._peer_router
        assert transport is not None and router is not None and xpub is not None
        # stopped while waiting (SIGSTOP, a VM freeze): what is waiting in the sockets
        # may be old; the core knows it before it reads any of it
        self._now_checked()
        for sock, _ in events:
            if sock is router:
                if self.secure:
                    self._drain_requests_secure(router)
                else:
                    self._drain_requests(router)
            elif peer_router is not None and sock is peer_router:
                self._drain_peer_requests(peer_router)
            elif sock is xpub:
                self._drain_subscriptions(xpub)
            elif sock is sub:
                self._drain_replication(sub)
            elif sock in self._dealers:
                self._drain_peer_replies(sock)
            elif sock == self.configs.wakeup_fd:
                self.configs.committed(clock() + self._wall_offset)
            else:
                transport.service(sock, clock())
            self._carry_out(core.take_effects(), clock())

    def finish(self) -> None:
        """Leave the loop: what this turn changed still goes out; close the sockets."""
        log.info("meshreg node on %s stopping", self.config.address)
        self._tell_systemd("STOPPING=1")
        try:  # the config turns queued or being committed: committed and answered first
            self.configs.close(self.clock() + self._wall_offset)
        except Exception:
            log.exception("configs: draining at stop")
        try:
            self._flush_replication()
            # the last beacon: peers count us down now, and do not count our next start
            # towards a crash loop; not when an error unwinds the loop (a crash is one)
            if self._repl_pub is not None and self._stop.is_set():
                self._publish(encode_beacon(self.core.leaving_beacon(self.clock())))
        except zmq.ZMQError:
            pass
        store = self.core.store
        if store.settings_changed or store.overrides.changed:
            self._save_registry_state()
        if self.registry_state is not None:
            self.registry_state.close()
        self.close(STOP_LINGER_MS)

    # -- requests -------------------------------------------------------------
    def _drain_requests(self, router: Channel) -> None:
        # The hot path: the backend's recv/send with int flags, not the multipart helpers
        # (pyzmq's helpers cost more than all of meshreg's own work on a beat), and
        # frames received as Frames: ``Frame.more`` says whether another follows where
        # ``get(RCVMORE)`` is a getsockopt call through pyzmq's option dispatch (about
        # 1 us a frame, 3 a request); the routing id comes as bytes (always followed by
        # more frames on a ROUTER; bytes cost less than a Frame) and goes back as it came,
        # and msgpack reads the body in place.  A beat the core renews (most requests)
        # is answered right here, and so is a plain config get of a version read before
        # (``ConfigPlane.fast_get``); anything else goes to ``_serve`` (decoded once), and
        # any other shape than [id, b"", body] goes there as bytes.
        core = self.core
        serve, fast_beat, has_effects = self._serve, core.fast_beat, self._write_effects()
        fast_get, offset = self.configs.fast_get, self._wall_offset
        replies = self.replies
        refused, small = replies.refused, replies.small
        recv, send = self._fast_io  # type: ignore[misc]
        self._entries = 0
        if replies.waiting:  # a connection's requests wait for its replies: every request
            self._drain_gated(router, BATCH)  # is checked (transport/replies back-pressure)
            return
        over = replies.over
        now = self.clock()
        check = CHECK_EVERY
        for i in range(BATCH):
            if i == check:  # a long drain (wire/batching CHECK_EVERY)
                check += CHECK_EVERY
                now = self._mid_drain()
            if self._entries >= TURN_ENTRIES:
                self._cut_short = True  # the rest in the next turn, at once (prepare)
                return
            try:
                # the routing id as bytes (cheaper than a Frame, and a ROUTER's id frame
                # is always followed by the message's own: no ``more`` to ask)
                rid = recv(router, _NOBLOCK, True)
            except zmq.Again:
                return
            delimiter = recv(router, 0, False)
            frame = delimiter
            if delimiter.more and not delimiter:  # [id, b"", body]: the usual shape
                frame = recv(router, 0, False)
                three = not frame.more
            else:
                three = False
            msg = _UNDECODED
            if three:
                ok = None
                try:
                    msg = decode_body(frame)  # a Frame, read in place
                    beat = beat_fields(msg)
                    if beat is not None:
                        # (a beat sent straight to us while we are cut off: ``handle``
                        # may refuse it, PROTOCOL.md 2.1 "Direct")
                        if (not core.cut_off or msg.get("direct") is not True) and fast_beat(
                            beat[1], beat[2], now
                        ):
                            ok = beat_ok(beat[0])
                    else:  # a config get of a version read before: its packed reply,
                        # by a clock read again: a drain stopped between two requests
                        # (SIGSTOP) served the next one a version older than acknowledged
                        # meanwhile, the stall not known yet (CI, 1 in ~8 runs)
                        now = self._now_checked()
                        ok = fast_get(msg, now + offset)
                        if ok is not None and len(ok) > small:  # held within a byte budget
                            replies.send(router, [rid, b"", ok], now, True)  # never raises
                            if over(rid):  # its next requests wait for its replies
                                replies.block(rid, now)
                                self._drain_gated(router, BATCH - i - 1)
                                return
                            continue
                except Exception:  # a bad body, or a bug: _serve answers it (and logs a bug)
                    pass
                if ok is not None:
                    try:  # (a try costs nothing unless it raises)
                        send(router, rid, _SNDMORE)
                    except zmq.ZMQError as exc:  # not reading (queue full), or gone
                        refused(exc, rid, now)
                        continue
                    send(router, b"", _SNDMORE)
                    send(router, ok, 0)
                    continue
                frames: list[Any] = [rid, delimiter, frame]
            else:  # any other shape: as bytes, to _serve (which answers it)
                if frame is delimiter:
                    rest, why = _frames_after(recv, router, delimiter)
                else:  # [id, b"", body, more frames]
                    rest, why = _frames_after(recv, router, frame, delimited=True)
                    rest.insert(0, b"")
                if why:
                    self._refuse_envelope(router, rid, why, now, OPEN, rest[-1])
                    continue
                frames = [rid, *rest]
            reply = serve(frames, now, OPEN, False, msg)
            if has_effects():  # a change: pushed and replicated before its reply
                self._after_write(router)
            if reply is not None:
                if len(reply) == 3 and len(reply[2]) <= small:
                    try:
                        send(router, reply[0], _SNDMORE)
                    except zmq.ZMQError as exc:  # not reading (queue full), or gone
                        refused(exc, reply[0], now)
                        continue
                    send(router, reply[1], _SNDMORE)
                    send(router, reply[2], 0)
                    continue
                replies.send(router, reply, now, True)
            if over(rid):  # a large reply, or one held for a commit: its next requests
                replies.block(rid, now)  # wait for its replies (back-pressure)
                self._drain_gated(router, BATCH - i - 1)
                return

    def _drain_requests_secure(self, router: Channel) -> None:
        """The client port with CURVE: each request's principal from its ``User-Id``.

        The hot path as in :meth:`_drain_requests`: only the first frame (the routing id,
        a few bytes) is received as a ``Frame`` to read the authenticated key, which every
        frame of a message carries; the rest are plain bytes. The key is read per message,
        never cached per routing id: a client may choose its routing id, so a later
        connection could take over an earlier one's.
        """
        sock = cast("zmq.Socket[bytes]", router)  # CURVE: only the ZeroMQ transport has it
        recv, serve, replies = sock.recv, self._serve, self.replies
        recv_frame = self._fast_io[0]  # type: ignore[index]
        principals, has_effects = self._principals, self._write_effects()
        small, owners = replies.small, replies.owners
        if len(owners) > MAX_OWNERS:
            replies.forget_owners()
        self._entries = 0
        if replies.waiting or replies.pacing:  # a connection's requests wait for its
            self._drain_gated(router, BATCH)  # replies, or a client may be at its share
            return
        now = self.clock()
        check = CHECK_EVERY
        for i in range(BATCH):
            if i == check:  # a long drain (wire/batching CHECK_EVERY)
                check += CHECK_EVERY
                now = self._mid_drain()
            if self._entries >= TURN_ENTRIES:
                self._cut_short = True
                return
            try:
                first = recv(_NOBLOCK, copy=False)
            except zmq.Again:
                return
            rest, why = _frames_after(recv_frame, sock, recv_frame(sock, 0, False))
            try:
                user = str(first.get("User-Id"))
            except zmq.ZMQError:
                user = ""
            self._request_frame = first  # a config read's gray rule may ask its address
            principal = principals.get(user) or self._principal(user)
            if principal is None:  # its key left the ACL since it connected
                principal = Principal("revoked key", ())
            if why:
                self._refuse_envelope(sock, first.bytes, why, now, principal, first)
                continue
            frames = [first.bytes, *rest]
            owners[frames[0]] = principal.name  # its replies count in its client's share
            reply = serve(frames, now, principal)
            if has_effects():  # a change: pushed and replicated before its reply
                self._after_write(router)
            if reply is not None:
                replies.send(sock, reply, now, True)
                if len(reply[-1]) <= small:  # never counted: cannot block it
                    continue
            rid = frames[0]
            if replies.over(rid):  # its next requests wait for its replies (back-pressure)
                replies.block(rid, now)
                self._drain_gated(router, BATCH - i - 1)
                return

    def _drain_gated(self, router: Channel, count: int) -> None:
        """The client port while some connection is blocked (transport/replies,
        back-pressure): up to ``count`` requests, each checked first: one from a blocked
        connection waits behind its earlier ones (``ReplyGuard.defer``: dropped unserved
        past the bounds); the others are served as in the fast drains, through
        ``_serve`` (a beat too: slower than the fast drain's, only while a connection is
        blocked), and a connection their replies take over its budget is blocked."""
        replies, waiting, serve_one = self.replies, self.replies.waiting, self._serve_waiting
        pacing = replies.pacing
        recv = self._fast_io[0]  # type: ignore[index]
        secure, principals = self.secure, self._principals
        now = self.clock()
        check = CHECK_EVERY
        for i in range(count):
            if i == check:
                check += CHECK_EVERY
                now = self._mid_drain()
            if self._entries >= TURN_ENTRIES:
                self._cut_short = True
                return
            try:
                first = recv(router, _NOBLOCK, False)
            except zmq.Again:
                return
            rest, why = _frames_after(recv, router, recv(router, 0, False), copy=False)
            frames: list[Any] = [first.bytes, *rest]
            principal: Principal | None = OPEN
            if secure:
                try:
                    user = str(first.get("User-Id"))
                except zmq.ZMQError:
                    user = ""
                principal = principals.get(user) or self._principal(user)
            if principal is None:  # its key left the ACL since it connected
                principal = Principal("revoked key", ())
            if why:
                self._refuse_envelope(router, frames[0], why, now, principal, rest[0])
                continue
            if len(frames) != 3 or frames[1]:  # not [id, b"", body]: as bytes, as the
                frames = [frames[0], *(f.bytes for f in frames[1:])]  # fast drain does
            rid = frames[0]
            if secure:  # its replies count in its client's share (transport/replies)
                replies.owners[rid] = principal.name
            request = (frames, principal, first if secure else None)
            if rid not in waiting and principal.name in pacing and replies.over(rid):
                replies.block(rid, now)  # its client is at its share: on every connection
            if rid in waiting:
                replies.defer(rid, request, sum(len(f) for f in frames), now)
                continue
            serve_one(router, request, now)

    def _serve_waiting(self, router: Channel, request: Any, now: float) -> bool:
        """Serve one request the gated drain let through or that waited; False: its
        connection is now blocked (over its budget) or gone."""
        frames, principal, first = request
        rid = frames[0]
        replies = self.replies
        self._request_frame = first
        reply = self._serve(frames, now, principal)
        if self._write_effects()():  # a change: pushed and replicated before its reply
            self._after_write(router)
        if reply is not None:
            unroutable = replies.unroutable
            replies.send(router, reply, now, True)
            if replies.unroutable != unroutable:  # gone: nobody reads what waits for it
                replies.gone(rid)
                return False
        if replies.over(rid):
            replies.block(rid, now)
            return False
        return True

    def _resume_waiting(self) -> None:
        """Serve, in order, the requests of the blocked connections whose replies have
        drained under their budget (``RESUME_FIRST`` after a block, backing off while
        none drains; at most ``BATCH`` requests a turn, connections in turn)."""
        replies, router = self.replies, self._router
        now = self.clock()
        if router is None or not replies.resume_due(now):
            return
        served = 0
        for rid in list(replies.waiting):
            while served < BATCH:
                request = replies.ready(rid)
                if request is None:
                    break
                served += 1
                if not self._serve_waiting(router, request, now):
                    break
            replies.rotate(rid)
            if served >= BATCH:
                self._cut_short = True  # more may be ready: the next turn at once
                break
        replies.resumed(self.clock(), served)

    def _drain_peer_requests(self, router: Channel) -> None:
        """The peer port: forwarded writes and peer calls, from peers only; config
        messages (one-way, ``[CONFIG_FRAME, body]``) go to the config plane."""
        now, has_effects = self.clock(), self._write_effects()
        recv = self._fast_io[0]  # type: ignore[index]
        self._entries = 0
        for _ in range(BATCH):
            if self._entries >= TURN_ENTRIES:
                self._cut_short = True
                return
            try:
                rid = recv(router, _NOBLOCK, True)
            except zmq.Again:
                return
            rest, why = _frames_after(recv, router, recv(router, 0, False))
            if why:
                self._refuse_envelope(router, rid, why, now, NODE, rest[0], peer=True)
                continue
            frames = [rid, *rest]
            if len(frames) == 3 and frames[1] == CONFIG_FRAME:
                try:
                    now = self._now_checked()  # (a forwarded write: after a stall, known)
                    self.configs.on_peer(frames[2], now + self._wall_offset, frames[0])
                except Exception:  # a bug must not take the node down
                    log.exception("internal error while handling a config peer message")
                continue
            reply = self._serve(frames, now, NODE, peer=True)
            if has_effects():  # a forwarded change: out before its reply
                self._after_write(router)
            if reply is not None:
                self.peer_replies.send(router, reply, now)

    def _write_effects(self) -> Callable[[], bool]:
        """Whether a request just served changed something (``_after_write``), in a
        cluster; a lone node carries its effects out after the drain (cheaper per write,
        and it has no peers to tell first)."""
        return self.core.registry.has_effects if self._repl_pub is not None else _never

    def _after_write(self, sock: Channel) -> None:
        """A request changed something: its effects now (its watchers' push, its delta
        to the batcher), not after the rest of the drain; the batch goes before the
        reply unless writes come in a burst and more requests wait in ``sock`` that may
        join it, ``max_delay`` at most (wire/batching ``must_go``)."""
        now = self.clock()
        self._carry_out(self.core.take_effects(), now)
        batcher = self.batcher
        if len(batcher) and batcher.must_go(now, bool(sock.get(_EVENTS) & _POLLIN)):
            self._flush_replication()

    def _mid_drain(self) -> float:
        """Every CHECK_EVERY requests of a long drain: replication waiting is applied
        (and pushed to its watchers) now, not after the rest of a burst of beats, and a
        batch of deltas past its delay goes; returns the time now (the drain's clock)."""
        now = self._now_checked()
        sub = self._repl_sub
        if sub is not None and sub.get(_EVENTS) & _POLLIN:  # as many deltas as requests
            self._drain_replication(sub, CHECK_EVERY)
            self._carry_out(self.core.take_effects(), self.clock())
            now = self.clock()
        if self.batcher.must_go(now, True):
            self._flush_replication()
        return now

    def _now_checked(self) -> float:
        """The clock read again, for a request past the fast paths and every
        ``CHECK_EVERY`` of a drain, with the core's stall check first.  A drain reads the
        clock once, and a node stopped in the middle of one (SIGSTOP, a VM freeze) served
        the requests that waited out the stop in its socket by the time before it, the
        stall unknown: a config write whose client had given up was judged in time and
        applied, on top of an acknowledged write it had not fetched first (review25's
        test, once in CI)."""
        now = self.clock()
        if self.core.registry.check_stall(now):
            self._carry_out(self.core.take_effects(), now)
        return now

    def _serve(
        self,
        frames: list[bytes],
        now: float,
        principal: Principal = OPEN,
        peer: bool = False,
        msg: Any = _UNDECODED,
    ) -> list[bytes] | None:
        """One request's frames in, the reply's frames out (None: forwarded). Never raises.

        ``peer``: it came on the peer port (a forwarded write is applied here, never
        forwarded again); ``principal``: who sent it (OPEN on a node without a key);
        ``msg``: its body decoded already (``_UNDECODED``: not yet).  The insecure drain
        passes ``[id, b"", body]`` as the zmq Frames it received (msgpack, the sockets
        and a forward's relay read them as they are); every other caller, bytes.
        """
        try:
            envelope, body = split_envelope(frames)
        except RequestRejected as exc:
            self._rejected(exc, now, self._sender(frames, principal, peer))
            return routable_envelope(frames) + [encode_error(0, exc.code, exc.message)]
        req = None
        to_plane = False  # handed to the config plane (which counts its own refusals)
        try:
            if msg is _UNDECODED:  # else the insecure drain decoded it and tried the fast beat
                try:
                    msg = (
                        decode_body(body, limits.MAX_PEER_BODY_BYTES) if peer else decode_body(body)
                    )
                except RequestRejected as exc:  # above 64 KiB: only a config body may be
                    if (
                        peer
                        or exc.code is not ErrorCode.TOO_LARGE
                        or len(body) <= limits.MAX_BODY_BYTES  # a structural limit: as it is
                    ):
                        raise
                    msg = self._decode_config(body)
                if peer and len(envelope) < 3:  # [id, b""]: no forward id, not a node's
                    wrong = client_write_on_peer_port(msg, self.config.host, self.config.port)
                    if wrong is not None:
                        raise wrong
                beat = beat_fields(msg)
                if beat is not None:
                    core = self.core
                    if (
                        (principal is OPEN or principal.may(Access.WRITE, *beat[1]))
                        and (not core.cut_off or msg.get("direct") is not True)  # (above)
                        and core.fast_beat(beat[1], beat[2], now)
                    ):
                        return envelope + [encode_ok(beat[0], None)]
                elif not peer:  # a config get of a version read before (ConfigPlane.fast_get)
                    now = self._now_checked()  # (as in _drain_requests)
                    fast = self.configs.fast_get(
                        msg, now + self._wall_offset, None if principal is OPEN else principal
                    )
                    if fast is not None:
                        return envelope + [fast]
            now = self._now_checked()  # (the drain's clock may be from before a stop)
            if self.write_rate.per_client and not peer:  # before the entries are checked
                self._write_allowed(principal, envelope, msg, now)  # (review84 F5)
            req = parse_peer_message(msg) if peer else parse_message(msg)
            if principal is not OPEN and principal is not NODE:
                try:
                    authorize(principal, req)
                except RequestRejected:
                    self.denied += 1
                    raise
                if type(req) is RegisterBatch:  # each entry its own check, its own result
                    req = self._screen_batch(principal, req, now)
                else:
                    self._client_limits(principal.name, req, now)
                if type(req) is SessionRenew:
                    self._check_session_access(principal, req, now)
            elif principal is OPEN and type(req) in _EXPENSIVE_READS:
                conn = envelope[0] if envelope else b""  # bytes, or the Frame it came in
                self._read_allowed(conn.bytes if isinstance(conn, zmq.Frame) else conn, req, now)
            if type(req) is RegisterBatch:
                self._entries += len(req.entries)
            if type(req) in _CONFIG_REQUESTS:
                to_plane = True
                return self._serve_config(envelope, body, req, msg, principal, now)
            if type(req) in _DEADLINE_WRITES:
                # A drain reads the clock once; a process stopped (SIGSTOP) in the middle
                # of one reads what arrived meanwhile with the time from before the stop,
                # and would apply a write past its deadline (review13): read it again.
                now = max(now, self.clock())
            if type(req) is ListServices:
                req = self._services_request(req, principal)
            elif type(req) is CheckRevisions:
                req = self._revisions_request(req, principal)
            elif type(req) is ListNamespaces:
                req = self._namespaces_request(req, principal)
            if peer:
                answer = self.core.handle(req, now, peer)
            else:  # the client's share (who it is); a write straight to us as the owner
                client = _client_of(principal, envelope) if type(req) in _SESSION_OPENS else None
                answer = self.core.handle(req, now, False, client, msg.get("direct") is True)
            if type(req) is SessionClose and principal.name in self.holdings.held:
                self.holdings.forget_gone(principal.name, self.core.registry.holds)
            elif type(answer) is not Forward:  # (a forward's: when the owner answers)
                self._settle_holdings(req, type(answer) is Rejected)
            if type(answer) is SplitBatch:
                return self._split_batch(envelope, answer, now)
            if type(answer) is Forward:
                peers = self._peers
                if answer.copy_deadline is not None:  # void once we stop waiting for it
                    body = with_deadline(msg, answer.copy_deadline)
                # the pending forward holds the Forward: handed back should it fail
                if peers is not None and peers.forward(
                    answer.address, envelope, answer, body, now, wait=answer.wait
                ):
                    return None
                answer = self.core.forward_failed(answer, now)  # unreachable: the core decides
            return envelope + self._reply_frames(req, answer, now, principal, peer)
        except RequestRejected as exc:
            self._rejected(exc, now, self._sender(frames, principal, peer))
            if not to_plane and (
                type(req) in _CONFIG_REQUESTS or (req is None and exc.op in CONFIG_OPS)
            ):  # a config request refused before the plane saw it (validation, the ACL,
                # a client's limits): in stats.config.rejected too, as every refusal
                self.configs.count_refused(exc.reason or exc.code.name.lower())
            return envelope + [
                encode_error(
                    exc.req_id,
                    exc.code,
                    exc.message,
                    exc.unwritten,
                    retry_after=exc.retry_after,
                    rate=exc.rate,
                )
            ]
        except Exception:  # a bug must not take the node down; answer and log it
            log.exception("internal error while serving a request")
            self.core.registry.count_error(ErrorCode.INTERNAL)
            req_id = req.req_id if req is not None else 0
            return envelope + [
                encode_error(req_id, ErrorCode.INTERNAL, "internal error; see the node log")
            ]

    # -- the configuration center (runtime/config_plane) -------------------------------
    def _decode_config(self, body: Any) -> Any:
        """A client body above ``MAX_BODY_BYTES``: decoded only if it is a config op's,
        within the content cap plus overhead; anything else stays TOO_LARGE."""
        cap = self.config.config_max_content_bytes
        size = len(body)
        try:
            msg = decode_config_body(bytes(body), cap)
        except RequestRejected as exc:
            if exc.code is ErrorCode.TOO_LARGE and "config request body" in exc.message:
                raise  # a config body above its own limit: that message names it
            if exc.code is ErrorCode.INVALID_ARGUMENT and exc.op in CONFIG_OPS:
                raise  # a config op's str not UTF-8: said with its id (review30 F4)
            raise _too_large(size, cap) from None
        if type(msg) is not dict or msg.get("op") not in CONFIG_OPS:
            raise _too_large(size, cap)
        return msg

    def _serve_config(
        self, envelope: list[Any], body: Any, req: Any, msg: Any, principal: Principal, now: float
    ) -> list[bytes] | None:
        address = self._peer_address(body, envelope)
        by = principal.name if principal is not OPEN and principal is not NODE else address or ""
        self.core.registry.count_request(req.op)  # stats.requests (review17 F4)
        routing = [f.bytes if isinstance(f, zmq.Frame) else f for f in envelope]
        reply = self.configs.serve(routing, req, msg, by, address, now + self._wall_offset)
        return None if reply is None else envelope + [reply]

    def _peer_address(self, body: Any, envelope: list[Any]) -> str | None:
        """The client's IP address as the connection shows it (a gray rule may name it)."""
        for frame in (body, envelope[0] if envelope else None, self._request_frame):
            if isinstance(frame, zmq.Frame):
                try:
                    return str(frame.get("Peer-Address"))
                except zmq.ZMQError:
                    continue
        return None

    def _config_send(self, address: str, frames: list[bytes]) -> bool:
        """A config message to a peer, on its DEALER if one is connected (made when the
        peer is seen up: no reconnect churn towards peers that are down)."""
        peers = self._peers
        dealer = peers.dealers.get(address) if peers is not None else None
        if dealer is None:
            return False
        try:
            self._send_frames(dealer, frames, _NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _config_send_back(self, via: bytes, frames: list[bytes]) -> bool:
        """A config message on the peer port's connection ``via`` (to the peer's DEALER
        that sent there): the answer to a forward, on the path the forward came by."""
        router = self._peer_router
        if router is None:
            return False
        return self.peer_replies.send(router, [via, *frames], self.clock())

    def _config_reply(self, envelope: list[bytes], body: bytes) -> None:
        """The answer to a config request served earlier (a write's, once committed; a
        read that waited): admitted when its request was served, so only the node's
        budget may drop it, and a connection it takes over its budget waits, as after a
        reply sent at once (review14b F7: 16 pipelined 1 MiB publishes whose replies
        echo the content lost 5-9 of 48 replies to the connection's budget)."""
        router = self._router
        if router is None:
            return
        replies, now = self.replies, self.clock()
        replies.send(router, [*envelope, body], now, True)
        rid = envelope[0]
        if replies.over(rid):
            replies.block(rid, now)

    def _send_frames(self, channel: Channel, frames: list[bytes], flags: int) -> None:
        """``send_multipart`` with plain int flags through the transport's ``fast_io``
        send: pyzmq's wrapper adds SNDMORE by enum Flag arithmetic (two enum calls a
        frame) and type-checks every part, 3% of a config publish's loop time in a
        profile.  Same semantics: with NOBLOCK, a message refused (zmq.Again) is refused
        at its first frame, as libzmq takes or refuses a multipart message whole."""
        fast = self._fast_io
        if fast is None:  # not started (a test driving a bare runtime)
            channel.send_multipart(frames, flags)
            return
        send, more, last = fast[1], _SNDMORE | flags, len(frames) - 1
        for i in range(last):
            send(channel, frames[i], more)
        send(channel, frames[last], flags)

    def _config_watched(self, key: ConfigKey) -> bool:
        """Whether a subscription admitted on the XPUB gets the data id's notifications:
        the plane encodes and sends a change only then (libzmq drops a message nobody
        subscribed to; building it was 5% of a publish's loop time with no listener)."""
        return self.gate.watches(config_topic(key))

    def _config_notify(self, frames: list[bytes]) -> None:
        if self._xpub is not None:
            self.outbox.send(frames, self.clock())

    def _config_members(self, now: float) -> None:
        """The config center's view: the peers up; the learned ones among them (its
        learners: pushed what it commits, never counted); the configured ones whose lists
        do not name this node (it is their learner). docs/CONFIG.md "A new node: learner"."""
        up_peers = self.core.membership.up_peers()
        up = {p.address for p in up_peers}
        learners = frozenset(p.address for p in up_peers if not p.configured)
        unlisted = frozenset(p.address for p in up_peers if p.configured and p.lists_us is False)
        peers = self._peers
        if peers is not None:
            for address in sorted(up):  # a set: sorted, so a seeded simulation replays
                if address in self.peer_addresses or address in learners:
                    try:
                        peers.dealer(address)  # made once; config messages are one-way
                    except zmq.Again:  # cannot be made (logged): config sends fail
                        pass
        self.configs.set_learners(learners, unlisted)
        self.configs.set_hash_names(
            {p.address: p.announced for p in up_peers if p.announced and p.announced != p.address}
        )
        membership = self.core.membership
        mine = membership.listed()
        my_ids = frozenset(membership.configured_ids()) | {self.core.node_id}
        # every configured peer whose list we were told, up or not: a peer cut off from
        # us still counts its own majority (review25 F4: the cut made the two)
        apart = {
            p.address: p.listed[0]
            for p in membership.peers.values()
            if p.configured
            and p.listed is not None
            and majorities_may_miss(mine, my_ids, p.listed[0], p.listed[1])
        }
        self.configs.set_lists_apart(apart)
        # members up that a configured peer up does not list are its learners: they own
        # no data id in its view, so in none (review25 F6: writes forwarded to them failed)
        told = [p.listed[1] for p in up_peers if p.configured and p.listed is not None]
        self.configs.set_not_owners(
            frozenset(
                p.address
                for p in up_peers
                if p.configured and p.node_id and any(p.node_id not in ids for ids in told)
            )
        )
        self.configs.set_members_up(frozenset(up), now + self._wall_offset)

    def _reply_frames(
        self, req: Any, answer: Answer, now: float, principal: Principal, peer: bool
    ) -> list[bytes]:
        """The reply body (and, to a relaying peer, what a write left here) of an answer."""
        match answer:
            case Reply(req_id=req_id, result=result):
                if peer and type(req) in _RELAYED_WRITES:  # read-your-writes on the relay
                    written = self.core.written(req)
                    if written is not None:
                        return [encode_ok(req_id, result), encode_written(written)]
                elif peer and type(req) is RegisterBatch:  # the same, for a batch's part
                    batch = encode_written_batch(self.core.written_batch(req))
                    return [encode_ok(req_id, result), batch]
                if type(result) is ServicesResult and type(req) is ListServices:
                    result = self._sealed_cursor(req, result)
                elif type(result) is StatsResult:
                    requests = dict(result.requests)  # with the config gets answered
                    fast = self.configs.fast_gets  # in the drain (review37 F3)
                    if fast:
                        requests["config_get"] = requests.get("config_get", 0) + fast
                    runtime = self._runtime_stats()
                    if not permits(principal, Access.READ, ALL, ALL, ALL):  # a monitoring
                        # key (stats = true) learns no namespace name (review65 F4)
                        config = dict(runtime["config"], configs_by_namespace={})
                        runtime = dict(runtime, config=config)
                    result = replace(result, runtime=runtime, requests=requests)
                elif type(result) is PingResult:  # a readiness probe: the config center's
                    wall, configs = now + self._wall_offset, self.configs  # (its clock)
                    result = replace(result, config_ready=configs.ready,
                                     config_waiting=configs.waiting_for_peers(wall),
                                     config_writes_refused=configs.disk_refusal(wall))  # fmt: skip
                elif type(result) is ClusterResult:  # config readiness: caught up, disk
                    result = self._cluster_for(result, principal, now)
                return [encode_ok(req_id, result)]
            case Rejected():
                who = self._sender(None, principal, peer)
                self._log_rejected(answer.code, answer.message, now, who)
                return [encode_error(answer.req_id, answer.code, answer.message, answer.unwritten)]
            case Forward() | SplitBatch():  # only handle() forwards, and _serve relays those
                raise AssertionError(f"a forward of a forwarded request: {answer}")
            case _:
                assert_never(answer)

    def _client_limits(self, client: str, req: Any, now: float) -> None:
        """A client key's own limits (core/client_limits); raises RequestRejected."""
        kind = type(req)
        if kind is RegisterInstance:
            why = self.holdings.admit(
                client, req.key, req.instance, now, self._new_service(req.key)
            )
            if why is not None:
                raise RequestRejected(ErrorCode.RESOURCE_EXHAUSTED, why, req.req_id, "register")
        elif kind in _EXPENSIVE_READS:
            self._read_allowed(client, req, now)

    def _cluster_for(self, result: ClusterResult, principal: Principal, now: float) -> Any:
        """``cluster`` with the config readiness; its services and instances per member
        are node-wide figures, so only a client that may read everything gets them, as
        for ``stats`` (or a monitoring key, ``stats = true``): any other gets 0 and
        ``counts`` false (review37 F4: a key confined to its namespace watched every other
        tenant's registrations there)."""
        runtime: dict[str, Any] = {"config": self.configs.status(now + self._wall_offset)}
        if principal.stats or permits(principal, Access.READ, ALL, ALL, ALL):  # (authz)
            return replace(result, runtime=runtime)
        members = tuple(replace(m, services=0, instances=0) for m in result.members)
        return replace(result, members=members, runtime={**runtime, "counts": False})

    def _new_service(self, key: ServiceKey) -> int | None:
        """For a client's share (core/client_limits): the services of ``key``'s namespace
        when the node holds no such service yet (None: it does)."""
        store = self.core.store
        if key in store.services or key in store.settings:
            return None
        return store.namespaces.get(key.namespace, 0)

    def _settle_holdings(self, req: Any, refused: bool) -> None:
        """A client's count of instances after its write was answered (core/client_limits
        ``release_gone``): a deregister frees the instance only if it is gone from the
        store (one refused, e.g. as late, frees nothing: review37 F5), and so does a
        register refused here (counted when admitted)."""
        kind = type(req)
        if kind is DeregisterInstance or (kind is RegisterInstance and refused):
            self.holdings.release_gone(req.key, req.instance, self.core.registry.holds)

    def _screen_batch(self, principal: Principal, req: RegisterBatch, now: float) -> RegisterBatch:
        """A batch's entries through the ACL and the client's quota, one by one: an entry
        refused becomes its own ``EntryRejected`` result; the others go on."""
        req = authorize_entries(principal, req)
        denied = sum(type(e) is EntryRejected for e in req.entries)
        self.denied += denied
        entries: list[RegisterInstance | EntryRejected] = []
        adds: set[ServiceKey] = set()  # new services of this batch (applied after it)
        for entry in req.entries:
            if type(entry) is RegisterInstance:
                key = entry.key
                known = self._new_service(key)
                if known is not None:
                    known = None if key in adds else known + len(adds)  # (one namespace)
                why = self.holdings.admit(principal.name, key, entry.instance, now, known)
                if why is not None:
                    entry = EntryRejected(ErrorCode.RESOURCE_EXHAUSTED, why)
                elif known is not None:
                    adds.add(key)
            entries.append(entry)
        return RegisterBatch(req.req_id, req.namespace, tuple(entries))

    def _split_batch(self, envelope: list[Any], split: SplitBatch, now: float) -> list[Any] | None:
        """Relay each part of a split ``register_batch`` to its responsible node (one
        message per owner); the client's reply goes once every entry has its result
        (``_batch_part_done``).  A part that cannot be sent is applied here."""
        join = BatchJoin(envelope, split)
        join.outstanding += 1  # held while sending: a part applied here does not reply
        peers = self._peers
        for forward, indices in split.parts:
            part = forward.request
            assert type(part) is RegisterBatch
            deadline = forward.copy_deadline  # the batch's, or our wait's end if earlier
            body = encode_request(
                "register_batch",
                part.req_id,
                namespace=part.namespace,
                instances=[encode_batch_entry(e) for e in part.entries],  # type: ignore[arg-type]
                **({} if deadline is None else {"deadline": int(deadline * 1000)}),
            )
            if peers is None or not peers.forward(
                forward.address, envelope, forward, body, now, (join, indices), forward.wait
            ):
                self._batch_part_done(join, indices, self._batch_fallback(forward, now))
        join.outstanding -= 1
        if join.outstanding:
            return None
        return envelope + [encode_ok(join.req_id, BatchResult(tuple(join.results)))]

    def _batch_fallback(self, forward: Forward, now: float) -> Sequence[EntryResult]:
        """A part whose owner did not answer (or refused it whole): applied here."""
        answer = self.core.forward_failed(forward, now)
        count = len(forward.request.entries)  # type: ignore[union-attr]
        if type(answer) is Reply:
            assert type(answer.result) is BatchResult
            return answer.result.results
        assert type(answer) is Rejected
        return [EntryRefused(answer.code, answer.message)] * count

    def _batch_part_done(
        self, join: BatchJoin, indices: tuple[int, ...], results: Sequence[EntryResult]
    ) -> None:
        """One part's results; the client's reply once the last is in (while
        ``_split_batch`` sends the parts it holds one count: it replies itself)."""
        if join.fill(indices, results):
            router = self._router
            assert router is not None
            self.replies.send(
                router,
                join.envelope + [encode_ok(join.req_id, BatchResult(tuple(join.results)))],
                self.clock(),
            )

    def _read_allowed(self, client: Any, req: Any, now: float) -> None:
        """Raise RESOURCE_EXHAUSTED when ``client`` is over its rate of expensive reads."""
        cost = (
            max(1.0, req.page_size / limits.DEFAULT_SERVICES_PAGE)
            if type(req) is ListServices
            else 1.0
        )
        wait = self.read_rate.take(client, now, cost)
        if wait:
            rate = self.config.limits
            raise RequestRejected(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"{_EXPENSIVE_READS[type(req)]}: rate limit: at most "
                f"{rate.read_rate_per_client}/s per client and {rate.read_rate_per_node}/s "
                f"per node of services, namespaces, cluster and stats ([limits] "
                f"read_rate_per_client, read_rate_per_node); retry in {wait * 1000:.0f} ms",
                req.req_id,
                retry_after=wait,
            )

    def _write_allowed(
        self, principal: Principal, envelope: list[Any], msg: Any, now: float
    ) -> None:
        """Raise RESOURCE_EXHAUSTED (with ``retry_after``) when the client is over its
        write rate (core/client_limits ``WriteRate``); the cluster key is not limited.
        Judged on the decoded body, before its entries are checked: a refused flood of
        batches cost the node as much as an accepted one (review84 F5: 170,000 entries/s
        checked to be refused).  A write that would be refused anyway (malformed, or not
        the key's to make) takes its tokens from the sender's own bucket: nobody else's."""
        op = msg.get("op") if type(msg) is dict else None  # (parse_message says what is bad)
        if type(op) is not str or op not in _RATED_OPS:
            return
        client = _client_of(principal, envelope)
        if client is None:
            return
        entries = msg.get("instances") if op == "register_batch" else None
        cost = len(entries) if type(entries) is list and entries else 1
        wait = self.write_rate.take(client, now, cost)
        if wait:
            rate = self.config.limits.write_rate_per_client
            req_id = msg.get("id")
            req_id = req_id if type(req_id) is int and 0 <= req_id < 2**63 else 0
            who = (  # a key's bucket is shared by every process using the key (review84 F4)
                f"key {client!r} (all its connections)"
                if type(client) is str
                else "this connection (a node without a key)"
            )
            raise RequestRejected(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"{op}: write rate limit: {who} may write at most {rate}/s through this node "
                f"(a batch's entries each count; [limits] write_rate_per_client); nothing "
                f"was applied; retry in {wait * 1000:.0f} ms",
                req_id,
                op,
                reason="write_rate",
                unwritten=op.startswith("config_"),
                retry_after=wait,
                rate=rate,
            )

    def _services_request(self, req: ListServices, principal: Principal) -> ListServices:
        """A ``services`` request as the core takes it: a sealed cursor opened, and, for a
        client that may not read the whole namespace, its read access (the core lists only
        what it may read: core/registry ``services_result``)."""
        if req.sealed is not None:
            opened = self._cursor_seal.open(req.sealed)
            if opened is None:
                raise RequestRejected(
                    ErrorCode.INVALID_ARGUMENT,
                    "services: this cursor was not made by this node in its current run (a "
                    "sealed cursor is good only there): list again from the first page",
                    req.req_id,
                    "services",
                )
            req = replace(req, after=parse_cursor(opened, req.req_id), sealed=None)
        visible = _read_filter(principal, req.namespace)
        return req if visible is None else replace(req, visible=visible)

    def _revisions_request(self, req: CheckRevisions, principal: Principal) -> CheckRevisions:
        """A ``revisions`` request with the client's read access, when it may not read
        the whole namespace: what it may not read is answered stale (core/registry)."""
        visible = _read_filter(principal, req.namespace)
        return req if visible is None else replace(req, visible=visible)

    def _namespaces_request(self, req: ListNamespaces, principal: Principal) -> ListNamespaces:
        """A ``namespaces`` request with the configuration center's counts and, for a
        client that may not read everything, the namespaces it may read something in."""
        store = self.configs.store
        if principal is OPEN or principal is NODE or principal.may_all(Access.READ, ALL):
            return replace(req, configs=store.live_by_namespace)

        def visible(ns: str) -> bool:
            return principal.may_some(Access.READ, ns)

        def readable(key: ServiceKey) -> bool:
            return principal.may(Access.READ, key.namespace, key.group, key.service)

        def config_group(ns: str, group: str) -> bool:  # config reads: the group's "*"
            return principal.may_all(Access.READ, ns, group)

        def whole(ns: str) -> bool:
            return principal.may_all(Access.READ, ns)

        configs = store.live_by_namespace_where(config_group)
        return replace(req, configs=configs, visible=visible, readable=readable, whole=whole)

    def _sealed_cursor(self, req: ListServices, result: ServicesResult) -> ServicesResult:
        """Seal a filtered page's cursor that names a service the client may not read."""
        cursor, visible = result.next_cursor, req.visible
        if cursor is None or visible is None or visible(*cursor.split("/", 1)):
            return result
        return replace(result, next_cursor=self._cursor_seal.seal(cursor))

    def _refuse_envelope(
        self, sock: Channel, rid: bytes, why: str, now: float, principal: Principal,
        frame: Any, peer: bool = False,
    ) -> None:  # fmt: skip
        """A message whose envelope is out of bounds (``_frames_after``): counted, logged
        within the budget, and answered MALFORMED to its connection alone (``[id, b"",
        error]``, id 0), never mirroring what it sent; ``frame``: one of its Frames (the
        log names its address)."""
        exc = RequestRejected(ErrorCode.MALFORMED, why)
        self._rejected(exc, now, self._sender([frame], principal, peer))
        reply = [rid, b"", encode_error(0, exc.code, exc.message)]
        if peer:
            self.peer_replies.send(sock, reply, now)
        else:
            self.replies.send(sock, reply, now, True)

    def _rejected(
        self, exc: RequestRejected, now: float, who: tuple[str, str] = ("", "a client")
    ) -> None:
        """A request the runtime refused before the core saw it (the core counts its own)."""
        self.core.registry.rejected(exc)
        self._log_rejected(exc.code, exc.message, now, who)

    def _sender(
        self, frames: list[Any] | None, principal: Principal, peer: bool
    ) -> tuple[str, str]:
        """Who sent a rejected request: (the log budget's key, the words naming it).

        The key is the ACL client (or "" for every anonymous sender, or the peers): one
        budget per client, so one noisy client does not hide another's rejections,
        while an anonymous flood from many addresses still logs one line per interval.
        Only on a rejection: the address costs a getsockopt."""
        if peer:
            return "\0peer", "a peer"
        address = None
        if frames:
            address = self._peer_address(frames[-1], frames[:1])
        where = address or "an unknown address"
        if principal is OPEN:
            return "", where
        return principal.name, f"client '{principal.name}' at {where}"

    def _log_rejected(
        self, code: ErrorCode, message: str, now: float, who: tuple[str, str] = ("", "a client")
    ) -> None:
        if code == ErrorCode.NOT_FOUND:
            log.debug("%s", message)  # routine: evicted or restarted; client re-registers
            return
        if code == ErrorCode.UNAVAILABLE and (
            "still catching up" in message or "is catching up on configs" in message
        ):
            # routine at every start (review27 notes: a WARNING at each rolling-restart
            # step; review81 F3: a config listen's, at each restart): beats wait for the
            # next one, reads go to another node (the node says once, at WARNING, when
            # it waits for peers that are down or after a cut)
            self._limiter.info(
                (code, who[0]),
                now,
                "refused a request from %s while catching up: %s",
                who[1],
                message,
            )
            return
        self._limiter.warning(
            (code, who[0]), now, "rejected a request from %s: %s: %s", who[1], code.name, message
        )

    # -- peers ----------------------------------------------------------------------
    def _drain_peer_replies(self, dealer: Channel) -> None:
        peers, router, core = self._peers, self._router, self.core
        assert peers is not None and router is not None
        now = self.clock()
        for _ in range(BATCH):
            try:
                frames = dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) in (3, 4) and frames[1] == b"":  # a forwarded write's reply
                pending = peers.forwards.pop(frames[0], None)
                if pending is None:
                    continue
                if pending.join is not None:
                    self._batch_part_replied(pending, frames, now)
                    continue
                if len(frames) == 3 and self._copy_refused_late(pending.request, frames[2]):
                    self._counted_fallbacks += 1
                    self._fall_back(pending, now)
                    continue
                if len(frames) == 4:  # what the write left on the owner: hold it first
                    try:
                        core.adopt_written(decode_written(frames[3]), pending.address, now)
                    except RemoteProtocolError as exc:
                        self._limiter.warning(
                            "written", now, "bad write result from %s: %s", pending.address, exc
                        )
                    self._settle_holdings(pending.request.request, False)
                self.replies.send(router, pending.envelope + [frames[2]], now)
            elif len(frames) == 2 and frames[0] == CONFIG_FRAME:  # a forward's answer
                try:
                    self.configs.on_peer(frames[1], now + self._wall_offset)
                except Exception:  # a bug must not take the node down
                    log.exception("internal error while handling a config peer message")
            elif len(frames) == 2 and frames[0] == b"":  # a peer call's reply
                try:
                    tag, ok, result = decode_call_reply(frames[1])
                except RemoteProtocolError as exc:
                    self._limiter.warning("peer-reply", now, "bad reply from a peer: %s", exc)
                    continue
                if peers.calls.pop(tag, None) is None:
                    continue
                if ok:
                    core.peer_reply(tag, parse_call_result(result), now)
                else:
                    core.peer_failed(tag, now, refused_as_unknown(result))

    def _batch_part_replied(self, pending: Any, frames: list[bytes], now: float) -> None:
        """The owner's reply to a part of a split ``register_batch``: its per-entry
        results (and what they left there, merged first: read-your-writes); a reply that
        is not that (an error, an older owner) makes this node apply the part itself."""
        join, indices = pending.join
        try:
            results: Sequence[EntryResult] = decode_batch_reply(frames[2], len(indices))
            if len(frames) == 4:
                for payload in decode_written_batch(frames[3]):
                    self.core.adopt_written(payload, pending.address, now)
        except RemoteProtocolError as exc:
            self._limiter.warning(
                "batch-reply", now, "batch part not applied by %s (%s): applying it here",
                pending.address, exc,
            )  # fmt: skip
            results = self._batch_fallback(pending.request, now)
        self._batch_part_done(join, indices, results)

    def _expire(self, peers: PeerLinks, now: float, judge: float) -> None:
        """Forwards and peer calls unanswered by ``judge`` (the last poll's start), and
        forwards to an owner that left, decided now."""
        forwards, calls = peers.expired(judge)
        view = self.core.membership.revision
        if view != self._forwards_view and peers.forwards:  # a member left: its forwards
            self._forwards_view = view  # now (review28 F5: a SIGTERMed owner's took 2 s)
            forwards += peers.orphaned(self.core.membership.said_left())
        for pending in forwards:  # the owner did not answer: the core decides
            if pending.join is not None:
                join, indices = pending.join
                self._batch_part_done(join, indices, self._batch_fallback(pending.request, now))
                continue
            self._fall_back(pending, now)
        for tag in calls:
            self.core.peer_failed(tag, now)

    def _fall_back(self, pending: Any, now: float) -> None:
        """Apply a forwarded write here after all (the core decides) and answer it."""
        router = self._router
        assert router is not None
        answer = self.core.forward_failed(pending.request, now)
        self._settle_holdings(pending.request.request, type(answer) is Rejected)
        match answer:
            case Reply():
                body = encode_ok(answer.req_id, answer.result)
            case Rejected():
                self._log_rejected(answer.code, answer.message, now)
                body = encode_error(answer.req_id, answer.code, answer.message, answer.unwritten)
            case _:
                assert_never(answer)
        self.replies.send(router, pending.envelope + [body], now)

    def _copy_refused_late(self, forward: Forward, body: bytes) -> bool:
        """The owner refused our copy of a write as past its deadline, nothing written,
        and that deadline was ours (the end of our wait, earlier than the client's): the
        clocks of this node and the owner disagree (review25 F2: this node 2 s or more
        behind, every copy was void on arrival), not the client late: apply it here, as
        when the owner does not answer (the core checks the client's own deadline)."""
        req = forward.request
        deadline = getattr(req, "deadline", None)
        if forward.copy_deadline is None or deadline is None or forward.copy_deadline >= deadline:
            return False
        try:
            reply = decode_reply(body)
        except RemoteProtocolError:
            return False
        error = reply.get("error") or {}
        return (
            not reply.get("ok")
            and error.get("code") == int(ErrorCode.UNAVAILABLE)
            and error.get("written") is False
        )

    def _drain_replication(self, sub: Channel, budget: int = BATCH) -> None:
        core = self.core
        now = self.clock()
        left = budget  # deltas (a batch counts each), beacons and digests this turn
        while left > 0:
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                if self._repl_forget:
                    self._unsubscribe_forgotten(sub)
                return
            left -= 1
            try:
                msg = decode_replication(frames)
            except RemoteProtocolError as exc:
                core.replication_rejected()
                self._limiter.warning(
                    "replication",
                    now,
                    "bad replication message (on the socket that reads the peers' "
                    "replication ports P+2 of %s; it names no sender): %s",
                    ", ".join(self.peer_addresses) or "none",
                    exc,
                )
                continue
            if isinstance(msg, DeltaBatch):
                left -= sum(_delta_cost(d) for d in msg.deltas)
                for seq, why in msg.rejected:  # the others still apply; the gap repairs
                    core.replication_rejected()
                    self._limiter.warning(
                        "replication", now, "bad delta %d from %s: %s", seq, msg.node, why
                    )
                for delta in msg.deltas:
                    core.on_replication(delta, now)
            else:
                if type(msg) is ReplicatedDelta:
                    left -= _delta_cost(msg) - 1
                core.on_replication(msg, now)

    def _unsubscribe_forgotten(self, sub: Channel) -> None:
        """Disconnect the replication SUB from the forgotten peers, right after it was read
        empty: libzmq (issue 2163) aborts the process when a SUB disconnected from an
        endpoint still queues a multipart message from it (every replication message is
        two frames), and a peer forgotten for its beacon (its list no longer names this
        node) is still publishing.  Disconnected when it was forgotten, mid-drain, its
        next queued message would abort the node."""
        assert self.transport is not None
        forget, self._repl_forget = self._repl_forget, []
        for address in forget:
            self.transport.remove_replication_peer(sub, address)

    # -- subscriptions and notifications ---------------------------------------
    def _drain_subscriptions(self, xpub: Channel) -> None:
        """Admit or refuse each subscription (manual XPUB) and tell the core what counts."""
        core, gate, secure = self.core, self.gate, self.secure
        now = self.clock()
        for _ in range(BATCH):
            try:
                frame = xpub.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            msg = frame.bytes
            if not msg or msg[0] not in (0, 1):
                continue  # XPUB upstream data we do not use
            topic = msg[1:]
            try:  # "user;N" (transport/zap); none on what libzmq makes up for a closed one
                user, conn = connection_user(str(frame.get("User-Id")))
            except zmq.ZMQError:
                user, conn = "", ""
            if msg[0] == 0:
                xpub.setsockopt(zmq.UNSUBSCRIBE, topic)  # no-op if a closed connection's
                if gate.unsubscribe(topic, conn) and not is_config_topic(topic):
                    core.registry.subscription_changed(topic_key(topic), False)
                continue
            principal: Principal | None = OPEN
            if secure:
                principal = self._principal(user) if user else None
            readable = principal is not None and authorize_topic(principal, topic)
            why = gate.subscribe(topic, readable, conn)
            if why == "again":
                continue  # this connection holds it already: libzmq keeps one entry
            if why is None:
                xpub.setsockopt(zmq.SUBSCRIBE, topic)
                # its sync goes to every watcher of the topic: paced (runtime/sync_pacer)
                sync = self.sync_pacer.admit(topic, now)
                if not sync:  # (a fleet starting together, too: INFO)
                    deferred = self.sync_pacer.deferred
                    loop = deferred >= LOOP_HINT_DEFERRED
                    self._limiter.info(
                        "sync deferred",
                        now,
                        "subscriptions to %s come faster than one per %.1f s (last from "
                        "%s): its watchers get one sync per %.1f s, shared (%d deferred in "
                        "all%s)",
                        topic[:80].rstrip(b"\0").replace(b"\0", b"/").decode("utf-8", "replace"),
                        self.sync_pacer.every,
                        principal.name if principal is not None else "?",
                        self.sync_pacer.every,
                        deferred,
                        "; a client subscribing in a loop?" if loop else "",
                    )  # (review45 F10: the topic was a bytes repr, the hint said at once)
                if not is_config_topic(topic):  # the core counts service watchers only
                    core.registry.subscription_changed(topic_key(topic), True, sync)
                elif sync:  # as a service's sync: a (re)connecting listener learns what it missed
                    self.configs.subscribed(topic)
            else:
                self._limiter.warning(
                    ("subscription", why),
                    now,
                    "refused a subscription (%s) to %r from %s: %s",
                    why,
                    topic[:80],
                    principal.name if principal is not None else "a revoked key",
                    {
                        "invalid": "not a service or config topic, or a prefix of names",
                        "denied": "its key may not read it (ACL)",
                        "full": f"the node holds {gate.max_subscriptions} subscriptions",
                        "share": f"its namespace holds {gate.share} or more of the node's "
                        f"{gate.total} while fewer than {gate.share} of the "
                        f"{gate.max_subscriptions} are free (the others' room)",
                    }[why],
                )
        if gate.overflowing:
            self._refused_overflow(now)

    def _deferred_syncs(self, now: float) -> None:
        """The syncs of topics subscribed again within their window, one per topic (the
        topic's watchers still there get it; nobody left: nothing)."""
        registry, gate = self.core.registry, self.gate
        for topic in self.sync_pacer.take_due(now):
            if not gate.watches(topic):
                continue
            if is_config_topic(topic):
                self.configs.subscribed(topic)
            else:
                key = topic_key(topic)
                if key is not None:
                    registry.announce(key)
        self._carry_out(self.core.take_effects(), now)

    def _carry_out(self, effects: list[Effect], now: float) -> None:
        """Carry out what the core queued, in its order; it decided everything already."""
        if not effects:
            return
        outbox, epoch, watched = self.outbox, self.epoch, self.core.registry.watched
        health_log = None  # bounded: a few lines per turn, then a count (made when needed)
        for effect in effects:
            match effect:
                case ServiceChanged():
                    if watched(effect.key):
                        frames, as_sync = encode_change_bounded(effect, epoch)
                        outbox.send(frames, now)
                        self._deltas_as_sync += as_sync
                    if effect.reason in HEALTH_REASONS:
                        if health_log is None:
                            health_log = HealthLog()
                        health_log.add(effect)
                case Broadcast():
                    self._broadcast(effect.message, now)
                case SyncAnnounced():
                    outbox.send(encode_sync(effect, epoch), now)
                case PeerCall():
                    peers = self._peers
                    if peers is None or not peers.call(effect, now):
                        self.core.peer_failed(effect.tag, now)
                case PeerIntroduced():
                    if effect.address in self._repl_forget:  # learned again: still connected
                        self._repl_forget.remove(effect.address)
                    elif self._repl_sub is not None:
                        assert self.transport is not None
                        try:
                            self.transport.add_replication_peer(self._repl_sub, effect.address)
                        except (zmq.ZMQError, ConfigError) as exc:  # not a connectable address
                            self.core.peer_unreachable(effect.address, now, str(exc))
                            continue
                    log.warning(
                        "peer %s (%s) lists this node, which does not list it: subscribing "
                        "to it while it does. Give every node the same peer list (--peer, "
                        "[cluster] peers): the config center counts majorities over the "
                        "configured list only",
                        effect.address,
                        effect.by,
                    )
                case PeerForgotten():
                    if self._repl_sub is not None:
                        # (at the next empty read: every peer beacons twice a second)
                        self._repl_forget.append(effect.address)
                    if self._peers is not None and effect.address not in self.peer_addresses:
                        self._peers.drop(effect.address)
                    log.warning("forgot learned peer %s: %s", effect.address, effect.why)
                case PeerListing():
                    self._config_members(now)
                case PeersNeverHeard():
                    port, many = self.config.port, len(effect.addresses) > 1
                    log.warning(
                        "configured peer%s %s never heard from since this node started %.0fs "
                        "ago: check the peer list for a typo, and the firewall: this node "
                        "connects to ports P+2 (replication) and P+3 (peer requests) of every "
                        "peer (here %s), and every peer to this node's %d and %d; meanwhile "
                        "this node runs without %s (its registry is not theirs, and config "
                        "writes need a majority of the configured members); said again every "
                        "%gs while it lasts",
                        "s" if many else "",
                        ", ".join(effect.addresses),
                        effect.waited,
                        ", ".join(_peer_ports(a) for a in effect.addresses),
                        port + REPLICATION_PORT_OFFSET,
                        port + PEER_PORT_OFFSET,
                        "them" if many else "it",
                        effect.again_in,
                    )
                case PeerHeardAtLast():
                    log.info(
                        "configured peer %s (%s) heard from at last, %.0fs after this node started",
                        effect.address,
                        effect.node_id,
                        effect.waited,
                    )
                case RepairFailing(failures=0):
                    log.warning("peer %s (%s): %s succeed again", effect.node_id,
                                effect.address, effect.what)  # fmt: skip
                case RepairFailing():
                    log.warning(
                        "peer %s (%s) is up but %d %s to it failed in a row: its "
                        "port P+3 does not answer this node (a firewall one way?); writes "
                        "forwarded to it are applied here instead, and lost deltas are not "
                        "repaired from it; open port P+3 of %s towards this node",
                        effect.node_id,
                        effect.address,
                        effect.failures,
                        effect.what,
                        effect.address,
                    )
                case ReplicationStream(repair_failing=True):
                    log.error(
                        "peer %s (%s): its replication stream (port P+2) is silent here and "
                        "this node's repair requests to its port P+3 fail too: nothing of its "
                        "reaches this node by itself, so this node's beacons ask it to push "
                        "its changes here (its beacons arrive: the way back works); open "
                        "ports P+2 and P+3 of %s towards this node",
                        effect.node_id,
                        effect.address,
                        effect.address,
                    )
                case ReplicationStream(lost=True):
                    log.warning(
                        "peer %s (%s): nothing on its replication stream (port P+2 of %s) for "
                        "%.1f s, while its beacons arrive over the request path: a firewall or "
                        "a route dropping that port towards this node? Its changes now reach "
                        "this node by repair only (seconds late), as long as its port P+3 "
                        "answers this node; open port P+2 between them",
                        effect.node_id,
                        effect.address,
                        effect.address,
                        effect.silent,
                    )
                case ReplicationStream():
                    log.warning(
                        "peer %s (%s): its replication stream is heard again",
                        effect.node_id,
                        effect.address,
                    )
                case HeldOut():
                    log.warning(
                        "caught up, but held out of the members by %s: this node restarted "
                        "again and again (a crash loop?); its peers keep its services and "
                        'judge them until it has stayed up a while (docs/DISTRO.md, "A node '
                        'that keeps restarting")',
                        ", ".join(effect.by),
                    )
                case PaceAdvised(member=""):
                    log.info(
                        "telling clients this node's own unhealthy_after again (%gs): no "
                        "member heard up judges by less",
                        effect.own,
                    )
                case PaceAdvised():
                    bounded = (
                        f" (bounded at a fifth of this node's {effect.own:g}s)"
                        if effect.advised > effect.told
                        else ""
                    )
                    log.warning(
                        "member %s marks instances unhealthy after %gs without a beat, this "
                        "node after %gs: telling this node's clients %gs%s, so that they "
                        "renew fast enough for every member (a rolling restart that changes "
                        "unhealthy_after? give every node the same value)",
                        effect.member,
                        effect.told,
                        effect.own,
                        effect.advised,
                        bounded,
                    )
                case ClockSkew(skewed=True):
                    log.error(
                        "this node's wall clock is %+.1f s off the median of the %d nodes it "
                        "hears (itself included): it counts itself out of the members and "
                        "refuses registry reads until its clock is fixed (NTP); writes are "
                        "forwarded to the other nodes",
                        effect.offset,
                        effect.of,
                    )
                case ClockSkew(peer=""):
                    log.warning("this node's wall clock agrees with its peers' again")
                case ClockSkew():
                    log.warning(
                        "peer %s's wall clock is %+.1f s off this node's: %s (fix NTP)",
                        effect.peer,
                        effect.offset,
                        "counted out of the members until it is back (a majority agrees with "
                        "this node)"
                        if effect.counted_out
                        else "no majority tells whose clock is wrong, so it stays a member",
                    )
                case PeerHeld():
                    log.warning(
                        "peer %s (%s) restarted %d times within %g s (a crash loop?): holding "
                        "it out of the members until it has stayed up %g s",
                        effect.node_id,
                        effect.address,
                        effect.restarts,
                        effect.window,
                        effect.hold,
                    )
                case MemberChanged():
                    self._config_members(now)
                    if effect.leave_revoked:
                        log.warning(
                            "peer %s (%s) said it was leaving but still beacons a peer "
                            "timeout later: counted up again (a leave beacon it did not send? "
                            "on a cluster without keys anyone can send one: run with --key)",
                            effect.node_id,
                            effect.address,
                        )
                    elif effect.state is MemberState.UP:
                        how = "restarted" if effect.restarted else "up"
                        log.info("peer %s (%s) is %s", effect.node_id, effect.address, how)
                    elif effect.left:
                        log.info("peer %s (%s) left (it is stopping)", effect.node_id,
                                 effect.address)  # fmt: skip
                    else:
                        log.warning("peer %s (%s) is down", effect.node_id, effect.address)
                case SelfPreservationStarted():
                    log.warning(
                        "SELF-PRESERVATION ON: %d of the %d instances this node is responsible "
                        "for missed their beats at once (more than %g%%, at least %d): "
                        "suspecting this node's own network, not the providers; marking them "
                        "unhealthy but evicting nothing until beats recover",
                        effect.silent,
                        effect.total,
                        effect.threshold * 100,
                        effect.min_instances,
                    )
                case SelfPreservationEnded():
                    log.info(
                        "self-preservation off after %.1fs: %d of %d instances silent; "
                        "instances still silent are evicted in %gs",
                        effect.lasted,
                        effect.silent,
                        effect.total,
                        effect.evictions_resume_in,
                    )
                case SelfPreservationExpired():
                    log.warning(
                        "self-preservation EXPIRED after %.0fs (self_preservation_max): %d of "
                        "%d instances still silent; evicting again (%d overdue now)",
                        effect.lasted,
                        effect.silent,
                        effect.total,
                        effect.held,
                    )
                case PeerDataRejected():
                    more = (
                        f" ({effect.suppressed} more since the last report)"
                        if effect.suppressed
                        else ""
                    )
                    log.log(
                        logging.INFO if effect.routine else logging.WARNING,
                        "rejected %s from peer %s: %s%s",
                        effect.what,
                        effect.peer,
                        effect.reason,
                        more,
                    )
                case StallDetected():
                    silent = max(effect.late, effect.silent_for)  # (see StallDetected)
                    if effect.start_over:
                        log.error(
                            "this node was stalled for %.0fs (stopped, frozen or suspended), "
                            "longer than half of the %gs the cluster remembers removals: its "
                            "table may hold instances removed meanwhile and would bring them "
                            "back on every node; starting over, empty, to catch up from its "
                            "peers as after a restart",
                            silent,
                            registry_module.TOMBSTONE_TTL,
                        )
                        raise StartOver(silent)
                    self.configs.stalled(now + self._wall_offset, silent)
                    log.warning(
                        "this node was stalled for %.1fs (stopped, frozen or starved): judging "
                        "nobody's health for %gs (but instances silent for that much more of "
                        "its awake time) and resyncing with its peers first",
                        effect.late,
                        effect.grace,
                    )
                case Reply() | Rejected() | Forward():  # handle() returns them, never queues
                    log.error("internal error: an answer in the effect queue: %r", effect)
                case _:
                    assert_never(effect)
        for line in health_log.lines() if health_log is not None else ():
            log.info("%s", line)

    def _send_notification(self, frames: list[bytes]) -> None:
        """Raises zmq.Again when a subscriber it matches has a full queue (XPUB_NODROP)."""
        if self._xpub is not None:
            self._send_frames(self._xpub, frames, _NOBLOCK)

    def _notify_lossy(self, lossy: bool) -> None:
        if self._xpub is not None:
            self._xpub.setsockopt(zmq.XPUB_NODROP, 0 if lossy else 1)

    def _broadcast(self, message: Any, now: float) -> None:
        """Deltas go to the batcher; anything else after the deltas held (the order the
        core made them in: a beacon announces our seq, a digest what they built)."""
        if self._repl_pub is None:
            return
        if type(message) is ReplicatedDelta:
            for frames in self.batcher.add(message, now):
                self._publish(frames)
            return
        self._flush_replication()
        if type(message) is Beacon:
            self._publish(encode_beacon(message))
        elif type(message) is SessionBeats:
            self._publish(encode_sessions(message))
        else:
            self._publish(encode_digest(message))

    def _flush_replication(self) -> None:
        if len(self.batcher):
            frames = self.batcher.flush()
            assert frames is not None
            self._publish(frames)

    def _publish(self, frames: list[bytes]) -> None:
        pub = self._repl_pub
        if pub is None:
            return
        try:
            pub.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            pass  # over HWM: peers see the seq gap and repair by anti-entropy
