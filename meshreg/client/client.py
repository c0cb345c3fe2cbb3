"""The user-facing client: register/beat/deregister, query, subscribe.

All methods are safe to call from several threads: each one queues a command
for the background I/O thread (:mod:`meshreg.client.agent`) and waits for its
answer with a bounded timeout.  Listeners run on a separate notifier thread,
so a slow listener never delays beats.

Ending the process
------------------
A client left open when the interpreter exits (a script that never calls ``close()``)
is closed by an ``atexit`` hook, with a short budget (``EXIT_CLOSE_TIMEOUT``): its
instances are deregistered at once rather than left listed healthy for the node's
``unhealthy_after``.  Python's default SIGTERM (what systemd, Kubernetes and docker stop
send) ends the process without unwinding anything, so a client also installs a SIGTERM
handler, once, when it is made on the main thread of a process whose SIGTERM is still
at its default: the handler raises ``SystemExit(143)`` in the main thread, so ``with``
blocks, ``finally`` clauses and the atexit hook run (as a JVM shutdown hook does for a
Nacos client), and puts the default back, so a second SIGTERM ends the process at once.
``Client(..., handle_sigterm=False)`` opts out; a process with its own handler keeps it.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import random
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import zmq

from meshreg.addresses import parse_address
from meshreg.client.agent import ClientAgent
from meshreg.client.commands import (
    Call,
    CloseSession,
    Deregister,
    Listener,
    ListRegistrations,
    NoteWrite,
    ReadCached,
    Register,
    RegisterBatch,
    Registration,
    Settle,
    Shutdown,
    Subscribe,
    Unsubscribe,
)
from meshreg.client.config_api import ConfigMixin, _check_callable
from meshreg.client.defaults import BEAT_INTERVAL_BOUNDS
from meshreg.client.defaults import DEFAULT_ATTEMPT_TIMEOUT as DEFAULT_ATTEMPT_TIMEOUT
from meshreg.client.defaults import DEFAULT_AVOID_FAILED_FOR as DEFAULT_AVOID_FAILED_FOR
from meshreg.client.defaults import DEFAULT_BEAT_INTERVAL as DEFAULT_BEAT_INTERVAL
from meshreg.client.defaults import DEFAULT_CONFIG_WRITE_TIMEOUT as DEFAULT_CONFIG_WRITE_TIMEOUT
from meshreg.client.defaults import DEFAULT_RESYNC_INTERVAL as DEFAULT_RESYNC_INTERVAL
from meshreg.client.defaults import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from meshreg.client.descriptors import descriptor_shortfall
from meshreg.client.disk_cache import DiskCache
from meshreg.client.listeners import ListenerTable
from meshreg.client.messages import (
    ClusterView,
    InstancesSnapshot,
    NamespaceInfo,
    NamespacesPage,
    ServicesPage,
)
from meshreg.client.selection import choose, eligible
from meshreg.configcenter.model import (
    DEFAULT_MAX_CONTENT_BYTES,
    HARD_MAX_CONTENT_BYTES,
    ConfigKey,
)
from meshreg.errors import (
    CallFailedError,
    ConfigError,
    ErrorCode,
    InvalidArgumentError,
    MeshregError,
    NoInstanceAvailableError,
    ServerError,
    ServerUnreachableError,
)
from meshreg.model import (
    DEFAULT_CLUSTER,
    DEFAULT_GROUP,
    DEFAULT_NAMESPACE,
    Instance,
    InstanceFilter,
    InstanceId,
    InstanceList,
    ServiceKey,
)
from meshreg.transport.sockets import CurveKeys
from meshreg.wire.limits import DEFAULT_SERVICES_PAGE
from meshreg.wire.messages import RequestRejected, check_register_fields, parse_request
from meshreg.wire.replies import encode_request

log = logging.getLogger("meshreg.client")

# Bounds on the client's time settings, in seconds (lowest, highest): a typo must not
# make a provider beat in a loop (beat_interval=1e-9) or never (1e9).
CLIENT_TIME_BOUNDS: dict[str, tuple[float, float]] = {
    "beat_interval": BEAT_INTERVAL_BOUNDS,  # s; also keep it well below the node's unhealthy_after
    "timeout": (0.01, 86400.0),  # s; one call's whole budget
    "attempt_timeout": (0.01, 3600.0),  # s; one server's time to answer
    "resync_interval": (0.05, 86400.0),  # s; backstop re-pull of cached services
    "avoid_failed_for": (0.0, 86400.0),  # s; 0 turns the avoidance off
    "config_write_timeout": (0.01, 86400.0),  # s; a config write's whole budget
}
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    socket.gaierror,
)


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """``exc`` is one of ``kinds``, or was raised for one: HTTP libraries wrap the socket's
    error (urllib's ``URLError(reason)``; requests' ``ConnectionError`` from urllib3's
    ``MaxRetryError(reason=NewConnectionError)``, itself from the ``OSError``), and a
    ``call()`` whose ``fn`` used urllib did not fail over (a review: half the calls failed
    for 14 s after a provider's kill -9).  Follows ``__cause__``, ``__context__`` and
    ``reason``, a few links deep (a cycle or a long chain ends the search)."""
    seen: list[BaseException] = [exc]
    for link in seen:
        if isinstance(link, kinds):
            return True
        if len(seen) >= 12:
            break
        context = None if link.__suppress_context__ else link.__context__  # (from None)
        for nxt in (link.__cause__, context, getattr(link, "reason", None)):
            if isinstance(nxt, BaseException) and all(nxt is not s for s in seen):
                seen.append(nxt)
    return False


def _parse_servers(servers: str | Iterable[str]) -> list[tuple[str, int]]:
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    parsed = [parse_address(s) for s in items if s.strip()]
    if not parsed:
        raise ConfigError("no server address given; expected host:port[,host:port]")
    return parsed


EXIT_CLOSE_TIMEOUT = 1.0  # s; budget of the close of a client left open at interpreter exit
EXIT_CLOSE_BUDGET = 3.0  # s; all such closes together at most (then the process just ends)
SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM  # 143: a shell's status for "ended by SIGTERM"

_open_clients: set[Client] = set()  # clients not closed yet: the atexit hook closes them
_open_lock = threading.Lock()
_exit_hooked = False


def _close_open_clients() -> None:
    """atexit: close every client still open (best effort: a short budget each, and
    ``EXIT_CLOSE_BUDGET`` for all, so many clients of a dead cluster cannot hold the exit;
    one that registered nothing closes at once)."""
    with _open_lock:
        left = list(_open_clients)
    end = time.monotonic() + EXIT_CLOSE_BUDGET
    for client in left:
        budget = min(client.timeout, EXIT_CLOSE_TIMEOUT, end - time.monotonic())
        if budget < 0.01:
            log.debug("exit: no time left to close %d meshreg clients", len(_open_clients))
            return
        try:
            client.close(timeout=budget)
        except Exception:  # exiting anyway: never mask the process's own exit
            log.debug("closing %r at exit failed", client, exc_info=True)


def _after_fork_in_child() -> None:
    """A child made by ``os.fork()`` (a pre-forking server that loaded the application
    first: gunicorn --preload, uWSGI without lazy-apps) holds copies of its parent's open
    clients, without their threads and sockets: each call waited its whole timeout, and
    the child's exit tried to close the *parent's* session (review48 F2).  Each is marked
    so: a call fails at once naming the fork, and the child's exit closes nothing (the
    parent's registrations stay its own)."""
    global _open_lock
    _open_lock = threading.Lock()  # (a thread of the parent may have held it)
    left = list(_open_clients)
    _open_clients.clear()
    parent = os.getppid()
    for client in left:
        client._forked(parent)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM: unwind the main thread (``with`` blocks, atexit) as SystemExit(143).
    The default comes back first: a second SIGTERM ends the process at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(SIGTERM_EXIT_STATUS)


def _track(client: Client, handle_sigterm: bool) -> None:
    """Remember an open client for the atexit hook, and install the SIGTERM handler if
    ``handle_sigterm`` and nobody else handles SIGTERM (module docstring)."""
    global _exit_hooked
    with _open_lock:
        _open_clients.add(client)
        if not _exit_hooked:
            _exit_hooked = True
            atexit.register(_close_open_clients)
    if not handle_sigterm or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        pass


AHEAD_CHUNKS = 8  # register_many: chunks of 1,000 checked and queued ahead of the replies


class Client(ConfigMixin):
    """A meshreg client bound to one namespace and group (configs: config_api.py).

    >>> c = Client(["127.0.0.1:7800"])                      # doctest: +SKIP
    >>> c.register("orders", "10.0.0.5", 8080)              # doctest: +SKIP
    """

    def __init__(
        self,
        servers: str | Iterable[str] | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        group: str = DEFAULT_GROUP,
        beat_interval: float = DEFAULT_BEAT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT,
        resync_interval: float = DEFAULT_RESYNC_INTERVAL,
        cache_dir: str | os.PathLike[str] | None = None,
        avoid_failed_for: float = DEFAULT_AVOID_FAILED_FOR,
        rng: random.Random | None = None,
        empty_protection: bool = True,
        key: str | os.PathLike[str] | None = None,
        server_key: str | os.PathLike[str] | None = None,
        sessions: bool = True,
        labels: dict[str, str] | None = None,
        config_max_bytes: int = DEFAULT_MAX_CONTENT_BYTES,
        handle_sigterm: bool = True,
        server_order: str = "random",
        fail_when_refused: bool = False,
        config_write_timeout: float | None = None,
    ) -> None:
        """A client of the meshreg nodes ``servers``; one per process serves every thread.

        ``servers``: ``"host:port,host:port"`` or a list of them (a host alone: port
        7800); None: the environment's ``MESHREG_SERVERS`` (as the CLI), else
        ``127.0.0.1:7800``.  Give several: the client fails over between them.

        ``namespace``, ``group``: where registry calls act (Nacos's namespace and group;
        defaults ``public``, ``DEFAULT_GROUP``); config calls and ``services()`` also take
        them per call.

        ``beat_interval`` (5 s): how often registrations are kept alive (one session
        renewal for all of them).  ``timeout`` (3 s): a call's whole budget, across
        servers and retries.  ``attempt_timeout`` (1 s): one server's time to answer
        before the next is tried.  ``resync_interval`` (10 s): how often each service this
        client keeps a view of is checked against a node (pushes do the rest).

        ``cache_dir``: keep every list and config read on disk there, and serve them when
        no node answers (a process started during an outage is not blind).

        ``avoid_failed_for`` (10 s): ``call()`` and ``select()`` steer clear of an
        instance that just failed.  ``rng``: the random source of ``select()`` (tests).
        ``empty_protection``: a push or pull that would empty a non-empty list is applied
        only once another query confirms it (README, "Consumers").

        ``key``: this client's key file (``meshreg keygen``) and ``server_key`` the
        cluster's public key file, for nodes that run with ``--key`` (docs/SECURITY.md).

        ``sessions``: keep registrations alive with one client session (one renewal per
        ``beat_interval`` for all of them; docs/PROTOCOL.md, "Sessions"); False: each
        registration beats on its own (the v1 ``beat``, what a node older than sessions
        gets anyway: the client falls back by itself).

        ``labels``: this client's labels; a config's gray version whose selector they match
        is served to it (docs/CONFIG.md). ``config_max_bytes``: the largest config content
        this client sends (the nodes' default cap, 1 MiB; at most 10 MiB).
        ``config_write_timeout``: the whole budget of a config write (publish, delete,
        rollback, gray, promote, gray-drop, import); None: ``timeout``, but at least 10 s,
        so that a write whose data id's owner just stopped is made by its successor once
        the nodes stop counting the owner (their ``peer_timeout``, 3 s by default) rather
        than end with an unknown outcome.

        ``handle_sigterm``: made on the main thread of a process whose SIGTERM is at its
        default, install a handler that turns SIGTERM into ``SystemExit(143)`` so that
        ``with`` blocks and the atexit close run and deregister (module docstring).
        A client left open is closed at interpreter exit either way.

        ``server_order``: ``"random"`` uses the list in an order of its own (shuffled): it
        starts at a random server and fails over to the next of that order, so that
        clients given the same list spread over the nodes, and the clients of a node that
        stops spread over the others (as Consul's agents do); ``"listed"`` uses the list
        as given.

        ``fail_when_refused``: a call fails as soon as every server has refused the
        connection (nothing listens there), not at the end of ``timeout``; for one-shot
        tools (the CLI sets it). By default a call waits: a node may be starting."""
        curve = _curve(key, server_key)
        for name, value in (
            ("beat_interval", beat_interval),
            ("timeout", timeout),
            ("attempt_timeout", attempt_timeout),
            ("resync_interval", resync_interval),
            ("avoid_failed_for", avoid_failed_for),
            ("config_write_timeout", config_write_timeout),
        ):
            if value is None and name == "config_write_timeout":
                continue
            low, high = CLIENT_TIME_BOUNDS[name]
            if type(value) not in (int, float) or not low <= value <= high:
                raise ConfigError(
                    f"Client: {name} must be in {low:g}..{high:g} seconds, got {value!r}"
                )
        if servers is None:
            servers = os.environ.get("MESHREG_SERVERS") or "127.0.0.1:7800"
        self.servers = _parse_servers(servers)
        if server_order not in ("random", "listed"):
            raise ConfigError(
                f"Client: server_order must be 'random' or 'listed', got {server_order!r}"
            )
        self.namespace = namespace
        self.group = group
        # 128 random bits: the session id is the capability to renew and close it
        self.session = secrets.token_hex(16) if sessions else None
        self.timeout = timeout
        self.config_write_timeout = (
            max(timeout, DEFAULT_CONFIG_WRITE_TIMEOUT)
            if config_write_timeout is None
            else config_write_timeout
        )
        self.avoid_failed_for = avoid_failed_for
        self._rng = rng or random.Random()
        self._failed_at: dict[str, float] = {}  # address -> monotonic time of its last failure
        self._failed_lock = threading.Lock()
        self.labels = dict(labels or {})  # configs: config_api.py
        cache = DiskCache(cache_dir, self.labels) if cache_dir is not None else None
        cap = HARD_MAX_CONTENT_BYTES
        if type(config_max_bytes) is not int or not 0 < config_max_bytes <= cap:
            raise ConfigError(
                f"Client: config_max_bytes must be 1..{cap}, got {config_max_bytes!r}"
            )
        self.config_max_bytes = config_max_bytes
        self._config_cache = cache
        self._config_logged: set[ConfigKey] = set()
        self._config_lock = threading.Lock()
        if self.labels:
            self._config_check("config_get", {"data_id": "x", "labels": self.labels})
        self._notifications: queue.SimpleQueue[tuple[Any, InstanceList | None] | None] = (
            queue.SimpleQueue()
        )
        self._listeners = ListenerTable()  # (un)subscribe, config_(un)listen: listeners.py
        self._closed = False  # (before the agent: its thread queues callbacks)
        if (shortfall := descriptor_shortfall(len(self.servers))) is not None:
            raise MeshregError(f"cannot make a meshreg client: {shortfall}")
        self._notifier = threading.Thread(
            target=self._run_notifier, name="meshreg-client-notify", daemon=True
        )
        self._notifier.start()
        order = list(self.servers)
        if server_order == "random":  # shuffled, not rotated: the clients of a node that
            random.shuffle(order)  # dies spread over the others (review51 F2)
        try:
            self._agent = ClientAgent(
                order,
                beat_interval,
                attempt_timeout,
                resync_interval,
                notify=self._queue_callback,
                cache=cache,
                empty_protection=empty_protection,
                curve=curve,
                session=(namespace, self.session) if self.session is not None else None,
                labels=self.labels,
                wall_offset=time.time() - time.monotonic(),  # registry writes' deadlines
                fail_when_refused=fail_when_refused,
            )
            self._agent.start()
        except zmq.ZMQError as exc:  # a descriptor taken since the check, or another cause
            self._notifications.put(None)  # the notifier ends
            raise MeshregError(f"cannot make a meshreg client: {exc} (ZeroMQ)") from exc
        self._close_lock = threading.Lock()
        self._closed = False
        _track(self, handle_sigterm)

    # -- providers -----------------------------------------------------------
    def register(
        self,
        service: str,
        ip: str,
        port: int,
        weight: float = 1.0,
        metadata: dict[str, str] | None = None,
        cluster: str = DEFAULT_CLUSTER,
        enabled: bool = True,
        group: str | None = None,
    ) -> None:
        """Register an instance and keep it alive (its session's renewals, or its own
        beats) until deregistered.  ``group``: another group than the client's (as
        Nacos's ``groupName``; every registry call takes it).

        No node could take it (none reachable, none ready, no answer, or an INTERNAL
        error): raises (``ServerUnreachableError``, ``OutcomeUnknownError`` or
        ``ServerError`` UNAVAILABLE or INTERNAL) with ``registration_kept`` true: the
        client keeps the registration and makes it once a node answers (every 3 s and when
        a node answers again), as Nacos 2 redoes one; ``deregister`` drops it.  Any other
        error keeps nothing."""
        reg = self._registration(service, ip, port, weight, metadata, cluster, enabled, group)
        self._wait("register", lambda fut: self._agent.submit(Register(reg, self.timeout, fut)))

    def register_many(
        self, instances: Iterable[dict[str, Any]], timeout: float | None = None
    ) -> list[tuple[dict[str, Any], BaseException]]:
        """Register many instances at once, in ``register_batch`` requests (PROTOCOL.md
        2.1a: up to 256 instances each, a few in flight, grouped by responsible node once
        the cluster view is known); each keeps alive as with ``register``.  Session
        renewals go out at their time meanwhile, never queued behind the batches.

        ``instances``: maps with ``service``, ``ip``, ``port`` and optionally
        ``weight``, ``metadata``, ``cluster``, ``enabled``, ``group``.  Each is checked as it is
        queued (in chunks: the first are on the wire while the rest are checked); one
        that fails the check is not sent.  Returns the ones that failed (invalid or
        refused by the node), with their errors; empty: all registered.  As with
        ``register``, one that no node could take (none reachable, none ready, no answer)
        is kept and made once a node answers: its error has ``registration_kept`` true
        (``deregister`` drops it; ``kept_registrations`` counts them).  ``timeout``: the
        whole batch's budget (default: ``timeout`` plus 1 s per 5,000 instances).
        """
        items = list(instances)
        budget = timeout if timeout is not None else self.timeout + len(items) / 5000
        waiting: list[tuple[list[dict[str, Any]], Future[Any]]] = []  # (chunk's items, handle)
        failed: list[tuple[dict[str, Any], BaseException]] = []
        chunk = 1000  # one command (and one handle) per chunk: the I/O thread batches them
        deadline = time.monotonic() + budget + 2.0

        def collect(sent: list[dict[str, Any]], fut: Future[Any]) -> None:
            nonlocal failed
            try:
                refused = fut.result(max(0.0, deadline - time.monotonic()))
                failed += [(sent[i], exc) for i, exc in refused]
            except FutureTimeout:
                failed += [(d, ServerUnreachableError("register: no answer in time")) for d in sent]
            except MeshregError as exc:
                failed += [(d, exc) for d in sent]

        for start in range(0, len(items), chunk):
            if len(waiting) >= AHEAD_CHUNKS:  # paced: checking far ahead of the wire only
                collect(*waiting.pop(0))  # takes the I/O thread's CPU (and GIL) away
            batch = []
            sent: list[dict[str, Any]] = []
            for d in items[start : start + chunk]:
                try:
                    reg = self._registration(
                        d["service"],
                        d["ip"],
                        d["port"],
                        d.get("weight", 1.0),
                        d.get("metadata"),
                        d.get("cluster", DEFAULT_CLUSTER),
                        d.get("enabled", True),
                        d.get("group"),
                    )
                except InvalidArgumentError as exc:
                    failed.append((d, exc))
                    continue
                except (KeyError, TypeError, AttributeError) as exc:  # (review55: a KeyError)
                    if not isinstance(d, Mapping):  # (review82 F13: a TypeError's own text)
                        what = f"got a {type(d).__name__}, not a dict"
                    elif isinstance(exc, KeyError):
                        what = f"field {exc} missing"
                    else:
                        what = f"a field is wrong ({exc})"
                    failed.append((d, InvalidArgumentError(
                        int(ErrorCode.INVALID_ARGUMENT),
                        "register_many: each instance is a dict with service, ip and port "
                        "(and optionally weight, metadata, cluster, enabled, group): "
                        f"{what} in {d!r:.200}",
                    )))  # fmt: skip
                    continue
                batch.append((reg, None))
                sent.append(d)
            if batch:
                fut: Future[Any] = Future()  # (index in the chunk, error) of those failed
                self._agent.submit(RegisterBatch(tuple(batch), budget, fut))
                waiting.append((sent, fut))
        for sent, fut in waiting:
            collect(sent, fut)
        if failed:
            kept = sum(1 for _, exc in failed if getattr(exc, "registration_kept", False))
            log.warning(
                "register_many: %d of %d registrations failed%s (first: %s)",
                len(failed),
                len(items),
                f", {kept} of them kept: made once a node answers" if kept else "",
                failed[0][1],
            )
        return failed

    def _registration(
        self,
        service: str,
        ip: str,
        port: int,
        weight: float,
        metadata: dict[str, str] | None,
        cluster: str,
        enabled: bool,
        group: str | None = None,
    ) -> Registration:
        fields = self._instance_fields(service, ip, port, cluster, group)
        fields.update(weight=_weight("register", weight), enabled=enabled,
                      metadata=dict(metadata or {}))  # fmt: skip
        if self.session is not None:  # the I/O thread drops it after a fallback (old node)
            fields["session"] = self.session
        try:  # the node's rules on the fields as they are: register_many checks thousands
            check_register_fields(fields)
        except RequestRejected:  # or a type msgpack would still encode: judge the bytes
            self._validate("register", fields)
        return Registration(self._key(service, group), InstanceId(ip, port, cluster), fields)

    def deregister(
        self,
        service: str,
        ip: str,
        port: int,
        cluster: str = DEFAULT_CLUSTER,
        group: str | None = None,
    ) -> None:
        """Stop beating for an instance and remove it from the registry."""
        fields = self._instance_fields(service, ip, port, cluster, group)
        self._validate("deregister", fields)
        key, iid = self._key(service, group), InstanceId(ip, port, cluster)
        self._wait(
            "deregister",
            lambda fut: self._agent.submit(Deregister(key, iid, fields, self.timeout, fut)),
        )

    def set_instance(
        self,
        service: str,
        ip: str,
        port: int,
        cluster: str = DEFAULT_CLUSTER,
        weight: float | None = None,
        enabled: bool | None = None,
        clear: bool = False,
        group: str | None = None,
    ) -> None:
        """Operators: override an instance's weight or enabled flag (enabled=False drains
        it); ``clear=True`` (alone) drops the override.

        Replicated and pushed like any change; select() and call() respect it. The
        override is kept apart from the provider's own registration: a provider that
        registers again (its app restarts, a session redo) does not undo it; only
        ``clear`` does, or its instance staying registered nowhere for ``[health]
        override_ttl`` (600 s; README, "Draining").  With a data dir, it survives a
        restart of every node.
        """
        fields = self._instance_fields(service, ip, port, cluster, group)
        if weight is not None:
            fields["weight"] = _weight("update", weight)
        if enabled is not None:
            fields["enabled"] = enabled
        if clear:
            fields["clear"] = True
        self._validate("update", fields)
        key = self._key(service, group)
        self._call("update", fields)
        self._agent.submit(NoteWrite(key))

    def set_service(
        self,
        service: str,
        protect_threshold: float | None = None,
        metadata: dict[str, str] | None = None,
        group: str | None = None,
    ) -> None:
        """Set a service's protection threshold in [0, 1] (0: off) and/or its metadata.

        While the healthy share of its instances is below the threshold, queries and
        select() use every instance, healthy or not, so the survivors are not crushed.
        ``metadata`` replaces the service's metadata (``instances(...).service_metadata``).
        A value left None is kept. Replicated to every node.
        """
        key = self._key(service, group)
        fields: dict[str, Any] = {
            "namespace": key.namespace,
            "group": key.group,
            "service": service,
        }
        if protect_threshold is not None:
            fields["protect_threshold"] = float(protect_threshold)
        if metadata is not None:
            fields["metadata"] = dict(metadata)
        self._validate("service_set", fields)
        self._call("service_set", fields)
        self._agent.submit(NoteWrite(key))

    # -- consumers -------------------------------------------------------------
    def instances(
        self,
        service: str,
        healthy_only: bool = True,
        clusters: str | Iterable[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        group: str | None = None,
    ) -> InstanceList:
        """Instances of a service (healthy and enabled ones only by default).

        ``clusters``: only instances of this cluster or of these clusters (Nacos's
        ``selectInstances(service, clusters, healthy)``); ``metadata``: only instances
        whose metadata holds every one of these pairs.  Both filter the list this
        client keeps: one view per service, whatever the filters.

        The first call for a service caches it (a pushed, locally kept view, saved
        to ``cache_dir`` when given); later calls are answered from memory without
        a round trip. Right after this client's own write to the service, reads go
        to the server so that they see it. While no node answers, the cached list
        is served.
        """
        narrowed = InstanceFilter.of(clusters, metadata)
        listing = self._instances(service, healthy_only, group)
        if not narrowed:
            return listing
        return listing.where(narrowed.clusters, metadata)

    def _instances(self, service: str, healthy_only: bool, group: str | None) -> InstanceList:
        key = self._key(service, group)
        self._validate(
            "instances", {"namespace": key.namespace, "group": key.group, "service": key.service}
        )
        state, listing = self._wait(
            "instances", lambda fut: self._agent.submit(ReadCached(key, healthy_only, fut))
        )
        if state == "view":
            return listing.copy()  # type: ignore[no-any-return]
        if state == "none":
            self._wait(
                "instances",
                lambda fut: self._agent.submit(Subscribe(key, None, self.timeout, fut, True)),
            )
            state, listing = self._wait(
                "instances", lambda fut: self._agent.submit(ReadCached(key, healthy_only, fut))
            )
            if listing is not None:
                return listing.copy()  # type: ignore[no-any-return]
        fields = {
            "namespace": key.namespace,
            "group": key.group,
            "service": key.service,
            "healthy_only": healthy_only,
        }
        try:
            result: InstancesSnapshot = self._call("instances", fields)
        except ServerUnreachableError:
            if listing is None:
                raise
            return listing.copy()  # type: ignore[no-any-return]  # the view it is, then
        return result.listing()

    def select(
        self,
        service: str,
        cluster: str | Iterable[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        group: str | None = None,
    ) -> Instance:
        """One healthy, enabled instance, at random in proportion to weight.

        ``cluster``: one cluster's name or several; ``metadata``: pairs the instance's
        metadata must hold (as ``instances``).  Instances that recently failed a
        ``call()`` are chosen only when nothing else is left. Raises
        NoInstanceAvailableError when there is none.
        """
        listing = self.instances(service, healthy_only=True, group=group)
        candidates = eligible(listing, cluster, listing.protected, metadata)
        chosen = choose(candidates, self._rng, self._avoided())
        if chosen is None:
            where = InstanceFilter.of(cluster, metadata).words()
            key = self._key(service, group)
            raise NoInstanceAvailableError(
                f"no healthy, enabled instance with weight > 0 of service {service!r}{where} "
                f"(namespace {key.namespace!r}, group {key.group!r}); check `meshreg "
                f"instances {service} --all" + (f" -g {key.group}`" if group else "`")
            )
        return chosen

    def call(
        self,
        service: str,
        fn: Callable[[Instance], Any],
        retries: int | None = None,
        cluster: str | Iterable[str] | None = None,
        retry_on: tuple[type[BaseException], ...] = CONNECTION_ERRORS,
        metadata: Mapping[str, str] | None = None,
        group: str | None = None,
    ) -> Any:
        """``fn(instance)`` on a selected instance; on a connection-type error, the next one.

        A connection-type error is one of ``retry_on``, or an exception a library raised
        for one (its cause or context, or a ``reason``, is one of them): urllib's
        ``URLError`` for a refused connection, requests' and httpx's ``ConnectError``.

        Each attempt goes to an instance not tried yet in this call (weighted, and
        avoiding those that failed recently); ``retries`` caps the extra attempts
        (None: until every instance was tried). Other exceptions from ``fn`` pass
        through at once. When every attempt fails, CallFailedError lists them.
        ``cluster`` and ``metadata`` narrow the candidates as in ``select``.
        """
        listing = self.instances(service, healthy_only=True, group=group)
        candidates = eligible(listing, cluster, listing.protected, metadata)
        if not candidates:
            self.select(service, cluster, metadata, group)  # raises "none available", clearly
        limit = len(candidates) if retries is None else min(len(candidates), retries + 1)
        attempts: list[tuple[str, BaseException]] = []
        tried: set[str] = set()
        while len(attempts) < limit:
            pool = [c for c in candidates if c.address not in tried]
            chosen = choose(pool, self._rng, self._avoided())
            if chosen is None:
                break
            try:
                return fn(chosen)
            except retry_on as caught:
                exc: BaseException = caught
            except Exception as caught:  # (never a KeyboardInterrupt: it raises at once)
                if not _caused_by(caught, retry_on):
                    raise
                exc = caught
            attempts.append((chosen.address, exc))
            tried.add(chosen.address)
            with self._failed_lock:
                self._failed_at[chosen.address] = time.monotonic()
            log.info("call to %s %s failed (%s); trying another", service, chosen.address, exc)
        detail = "; ".join(f"{addr}: {type(exc).__name__}: {exc}" for addr, exc in attempts)
        raise CallFailedError(
            f"call to service {service!r} failed on all {len(attempts)} instance(s) tried: "
            f"{detail}",
            attempts,
        )

    def _avoided(self) -> set[str]:
        cutoff = time.monotonic() - self.avoid_failed_for
        with self._failed_lock:
            for addr in [a for a, t in self._failed_at.items() if t < cutoff]:
                del self._failed_at[addr]
            return set(self._failed_at)

    def services(
        self, group: str | None = None, page_size: int = DEFAULT_SERVICES_PAGE
    ) -> list[str]:
        """Names of the services with instances in this namespace and group, sorted.

        The node answers in pages of ``page_size`` (at most 10000); this follows
        each page's ``next_cursor`` to the end. A cursor names the last service of
        its page, so the next page may come from another node after a failover;
        services registered or removed meanwhile may or may not be listed.
        """
        fields: dict[str, Any] = {
            "namespace": self.namespace,
            "group": group or self.group,
            "page_size": page_size,
        }
        pages: list[ServicesPage] = self._pages("services", fields, "cursor", "next_cursor")
        return [name for page in pages for name in page.services]

    def services_by_group(self, page_size: int = DEFAULT_SERVICES_PAGE) -> dict[str, list[str]]:
        """Every group of this namespace holding services with instances: group -> its
        services, both sorted (``services`` lists one group)."""
        fields: dict[str, Any] = {"namespace": self.namespace, "page_size": page_size}
        pages: list[ServicesPage] = self._pages("services", fields, "cursor", "next_cursor")
        found: dict[str, list[str]] = {}
        for page in pages:
            for group, name in zip(page.groups, page.services, strict=True):
                found.setdefault(group, []).append(name)
        return found

    def namespaces(self, page_size: int = 1000) -> list[NamespaceInfo]:
        """Every namespace the server holds services or live configs in, by name (only
        those this client may read something in), with their counts: what a backup
        script exports one by one (``config export -n``), a console lists.

        The node answers in pages of ``page_size`` (at most 10000); this follows them to
        the end. A page names the last namespace listed, so the next may come from
        another node after a failover."""
        fields: dict[str, Any] = {"page_size": page_size}
        pages: list[NamespacesPage] = self._pages("namespaces", fields, "after", "next_after")
        return [n for page in pages for n in page.namespaces]

    def _pages(self, op: str, fields: dict[str, Any], resume: str, next_key: str) -> list[Any]:
        """Every page of a paged read: each request sends the previous page's
        ``next_key`` as ``resume``, until a page has none."""
        self._validate(op, fields)
        pages = []
        while True:
            page = self._call(op, fields)
            pages.append(page)
            token = getattr(page, next_key)
            if token is None:
                return pages
            if token == fields.get(resume):  # a node that does not move on: stop
                raise ServerError(
                    int(ErrorCode.INTERNAL), f"{op}: the node returned {resume} {token!r} twice"
                )
            fields[resume] = token

    def subscribe(self, service: str, callback: Listener, group: str | None = None) -> None:
        """Call ``callback(instances)`` now with the current list and on every change.

        ``instances`` holds every instance (check ``healthy``/``enabled``).
        Callbacks run on the client's notifier thread, one at a time.  A callback
        subscribed again to the same service (an equal one: the same function or bound
        method) is called now, and still once per change, as with Nacos.

        No node answers (none reachable or none ready, or a node's INTERNAL error or read
        rate limit) and no disk copy: raises (``ServerUnreachableError``, or
        ``ServerError`` UNAVAILABLE, INTERNAL, RESOURCE_EXHAUSTED) with ``listener_kept``
        true: the listener stays, as with Nacos 2, and is called with the list once a node
        answers; ``unsubscribe`` drops it.  Any other error keeps nothing.
        """
        key = self._key(service, group)
        self._validate(
            "instances", {"namespace": key.namespace, "group": key.group, "service": key.service}
        )
        _check_callable("subscribe", callback, ("instances",))
        live = self._listeners.add(key, callback)
        try:
            self._wait(
                "subscribe",
                lambda fut: self._agent.submit(Subscribe(key, live, self.timeout, fut)),
            )
        except BaseException as exc:
            if isinstance(exc, MeshregError) and exc.listener_kept:
                self._listeners.take(live)
            else:
                self._listeners.discard(key, live)
            raise
        self._listeners.take(live)

    def unsubscribe(
        self, service: str, callback: Listener | None = None, group: str | None = None
    ) -> None:
        """Stop calling ``callback`` (None: every callback) for a service: once this
        returns, it is not called again for it (a call running then finishes)."""
        key = self._key(service, group)
        self._listeners.mute(key, callback)
        self._wait("unsubscribe", lambda fut: self._agent.submit(Unsubscribe(key, callback, fut)))

    # -- operations ----------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """The server's counters (see docs/PROTOCOL.md, ``stats``)."""
        return dict(self._call("stats", {}))

    def cluster(self) -> dict[str, Any]:
        """The cluster as the current server sees it (members, state, responsibility)."""
        view: ClusterView = self._call("cluster", {})
        return dict(view.raw)

    def ping(self) -> dict[str, Any]:
        """Round trip to the server; returns its epoch, version and address."""
        return dict(self._call("ping", {}))

    @property
    def server(self) -> str:
        """The server currently in use (host:port)."""
        return self._agent.status.server

    @property
    def kept_registrations(self) -> int:
        """Registrations this client keeps that no node has taken yet (a ``register`` that
        raised with ``registration_kept``): made once a node answers; 0: every
        registration is made."""
        return self._agent.status.kept_registrations

    @property
    def beat_every(self) -> float:
        """Seconds between this client's beats (or session renewals): ``beat_interval``,
        or less where a node's ``unhealthy_after`` needs more (logged when so)."""
        return self._agent.status.beat_every

    def close(self, timeout: float | None = None) -> None:
        """Deregister what this client registered, then stop its threads.  No listener is
        called once close() has begun (not for its own deregistrations either)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        with _open_lock:
            _open_clients.discard(self)
        budget = self.timeout if timeout is None else timeout
        ends = time.monotonic() + budget
        try:
            if self.session is not None:  # one message deregisters the session's instances
                fut = Future()  # (half the budget at most: the rest is the list's and the
                self._agent.submit(CloseSession(budget / 2, fut))  # deregisters', review74)
                try:
                    fut.result(budget / 2 + 1.0)
                except (MeshregError, FutureTimeout) as exc:
                    log.warning(
                        "could not close session %s on close (its instances are evicted "
                        "when it expires): %s",
                        self.session,
                        exc,
                    )
            # Deregister the rest at once, then wait for all within one budget.
            fut = Future()
            wait = max(0.0, min(budget / 2, ends - time.monotonic()))
            self._agent.submit(ListRegistrations(fut, closing=True, wait=wait))
            pending = []
            for key, iid, fields in fut.result(budget + 1.0):
                fut = Future()  # what is left of the one budget (review73 F-D: the whole)
                left = max(0.05, ends - time.monotonic())
                self._agent.submit(Deregister(key, iid, fields, left, fut))
                pending.append((key, iid, fut))
            for key, iid, fut in pending:
                try:
                    fut.result(budget + 1.0)
                except (MeshregError, FutureTimeout) as exc:
                    log.warning("could not deregister %s %s on close: %s", key, iid, exc)
            # a register answered (or applied) after those deregisters is deregistered
            # again after it: wait for that, within the budget (review72 F3)
            fut = Future()
            self._agent.submit(Settle(fut, wait=max(0.0, ends - time.monotonic())))
            left = fut.result(budget + 1.0)
            if left:
                log.warning(
                    "close: %d instance(s) may stay registered until the registry evicts "
                    "them as silent (a register of each was still out or may be applied "
                    "late, e.g. held by a stopped node): %s; give close() a longer timeout",
                    len(left),
                    ", ".join(f"{key} {iid}" for key, iid in left[:10]),
                )
            fut = Future()
            self._agent.submit(Shutdown(fut))
            fut.result(budget + 1.0)
        except (MeshregError, FutureTimeout):
            pass
        finally:
            self._agent.join(budget + 1.0)
            writer = self._agent.writer  # the last lists reach the disk cache
            if writer is not None and not writer.flush(budget):
                log.warning("disk cache: not every list was written within %gs of close", budget)
            self._notifications.put(None)
            if threading.current_thread() is not self._notifier:
                self._notifier.join(budget + 1.0)

    def _forked(self, parent: int) -> None:
        """This process is a child of ``parent`` made by ``os.fork()`` after this client
        was: unusable here (``_after_fork_in_child``), and closed without a message."""
        self._close_lock = threading.Lock()
        self._closed = True
        self._agent.forked(
            f"this meshreg Client was created in process {parent} before os.fork(): it "
            f"does not work in the child process {os.getpid()} (its I/O thread and sockets "
            "stay in the parent); create the Client in each worker after the fork "
            "(gunicorn: in post_fork or without --preload; uWSGI: lazy-apps)"
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------
    def _key(self, service: str, group: str | None = None) -> ServiceKey:
        """The service's key: this client's namespace, ``group`` or the client's."""
        return ServiceKey(self.namespace, self.group if group is None else group, service)

    def _instance_fields(
        self, service: str, ip: str, port: int, cluster: str, group: str | None = None
    ) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "group": self.group if group is None else group,
            "service": service,
            "ip": ip,
            "port": port,
            "cluster": cluster,
        }

    @staticmethod
    def _validate(op: str, fields: dict[str, Any]) -> None:
        """Check arguments with the server's own rules before they leave."""
        try:
            parse_request(encode_request(op, 0, **fields))
        except RequestRejected as exc:
            raise InvalidArgumentError(int(exc.code), exc.message) from None
        except (TypeError, ValueError) as exc:  # not even encodable
            raise InvalidArgumentError(4, f"{op}: {exc}") from None

    def _call(self, op: str, fields: dict[str, Any]) -> Any:
        return self._wait(op, lambda fut: self._agent.submit(Call(op, fields, self.timeout, fut)))

    def _wait(self, op: str, submit: Any) -> Any:
        fut: Future[Any] = Future()
        submit(fut)
        try:
            return fut.result(self.timeout + 2.0)
        except FutureTimeout:
            raise ServerUnreachableError(
                f"{op}: the meshreg client's I/O thread did not answer within "
                f"{self.timeout + 2.0:g}s (servers: {self._server_list()})"
            ) from None

    def _server_list(self) -> str:
        return ", ".join(f"{h}:{p}" for h, p in self.servers)

    def _queue_callback(self, callback: Any, instances: Any) -> None:
        """A listener call for the notifier thread; none once close() has begun (its own
        deregistrations' pushes ran callbacks inside close(): a new user's review).  One
        queued before is still made (a listen's first call right before close)."""
        if not self._closed:
            self._notifications.put((callback, instances))

    def _run_notifier(self) -> None:
        while True:
            item = self._notifications.get()
            if item is None:
                return
            callback, instances = item
            try:
                callback(instances.copy()) if instances is not None else callback()
            except Exception:
                log.exception("meshreg listener %r (subscribe or config_listen) raised", callback)
            except SystemExit as exc:  # it would end this thread alone, silently: every
                # later callback of this client was lost (review48 F4)
                log.error(
                    "meshreg callback %r called sys.exit(%r) on the client's notifier "
                    "thread: that does not stop the process (it ended only that thread, and "
                    "with it every later callback); the callbacks go on. To stop the "
                    "process from a callback, signal the main thread (os.kill(os.getpid(), "
                    "signal.SIGTERM)) or call os._exit()",
                    callback,
                    exc.code,
                )


def _curve(
    key: str | os.PathLike[str] | None, server_key: str | os.PathLike[str] | None
) -> tuple[CurveKeys, bytes] | None:
    """The CURVE settings of a client: both files or neither."""
    if key is None and server_key is None:
        return None
    if key is None or server_key is None:
        given, missing = ("key", "server_key") if server_key is None else ("server_key", "key")
        raise ConfigError(
            f"Client: {given} given without {missing}: a client of a node with a key needs "
            "its own key file (meshreg keygen NAME) and the cluster's public key (cluster.pub)"
        )
    # Here, not at the top: meshreg.security brings the node's ACL and authorization
    # modules, which a client without keys (most) need not load (bench/startup.py).
    from meshreg.security.keys import load_public_key, load_secret_key

    pair = load_secret_key(key)
    if pair.secret is None:
        raise ConfigError(
            f"Client: key {os.fspath(key)} holds only a public key; give the .key file "
            "(public and secret), and the cluster's .pub as server_key"
        )
    return CurveKeys(pair.public, pair.secret), load_public_key(server_key)


def _weight(op: str, weight: Any) -> float:
    """``weight`` as a float, or InvalidArgumentError naming the field (review45 F8: a
    string escaped as a bare ValueError, past ``except MeshregError``)."""
    if type(weight) is bool or not isinstance(weight, int | float):
        raise InvalidArgumentError(
            int(ErrorCode.INVALID_ARGUMENT),
            f"{op}: field 'weight' must be a number (got {type(weight).__name__} {weight!r:.40})",
        )
    return float(weight)
