"""Quotas: how much a node lets its clients grow (issue 10, M2), and the checks.

Theory of operation
-------------------
* **Where.**  A quota is checked by the node that *applies* a client write
  (a service's responsible node, or the node that applies a forwarded write
  its owner did not take), before it changes anything: a refused write
  changes nothing and gets ``RESOURCE_EXHAUSTED`` with a message naming the
  limit, its value, the name it was reached for and what to do.  Replicated
  state from peers is never refused: the owner that accepted it has decided,
  and a node that dropped it would diverge from the others for good.
* **What grows.**  ``register`` of a new instance (instances per service and
  per node, a new service, a new namespace), ``register`` with more metadata
  than the instance had, ``service_set`` on a new service or with more
  metadata.  Nothing else is ever refused by a quota: beats, deregistrations
  and ``update`` (weight, enabled) grow nothing, and a re-registration with
  the same fields only refreshes the beat, so a provider that is already in
  is never locked out by a full node.
* **What counts.**  The node's whole table (every node holds every service):
  a per-node quota is in effect cluster-wide.  Services are those with
  instances *or* settings (a ``service_set`` on a service with no instances
  keeps a service's worth of state); metadata bytes are the UTF-8 bytes of
  keys and values, instance metadata once per instance (as if not shared)
  plus service metadata.  The counts are the store's running counts
  (core/store, "Bounds"): a check costs O(1), whatever the table holds.
* **Per client.**  ``max_instances_per_client`` and the read rates are checked
  by the node a client's request arrives at, before it forwards anything
  (core/client_limits, where the why is).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from meshreg.core.sessions import DEFAULT_MAX_SESSIONS
from meshreg.core.store import DEFAULT_MAX_TOMBSTONES, RegistryStore, metadata_size
from meshreg.errors import ConfigError
from meshreg.model import MAX_METADATA_CHARS, InstanceId, ServiceKey

MIB = 1024 * 1024
# max_sessions_per_client = 0 gives each client this fraction of max_sessions: it takes
# this many clients at their share to fill the table
SESSION_SHARE_DIVISOR = 16
# bytes one metadata map can hold at most (a character is at most 4 bytes in UTF-8):
# while the node is further than this from its limit, no write needs its size computed
METADATA_BYTES_BOUND = 4 * MAX_METADATA_CHARS


@dataclass(frozen=True, slots=True)
class LimitsPolicy:
    """The node's quotas (``[limits]`` in the node TOML); all counts are per node.

    The defaults are generous: a node must hold a million live instances
    (issue 13) and the benchmarks register up to ~200k services and a million
    instances (bench/scale.py: N/100 services of 100 instances each); what they
    stop is one client growing a node until it falls over (issue 10, M2:
    600k services in 60 s, 500k namespaces, 2 GB of metadata).
    """

    # namespaces; a namespace costs a few hundred bytes and an index; 500k took 549 MB
    max_namespaces: int = 10_000
    # services (with instances, or with settings only) in one namespace; bench: <= 200k
    # in all, over a few namespaces
    max_services_per_namespace: int = 100_000
    # services on the node, all namespaces (else namespaces x services per namespace
    # would allow 10^9); about 1 KB each with an instance: 1M is ~1 GB
    max_services: int = 1_000_000
    # instances of one service: half of what one node-to-node reconcile may carry with
    # its tombstones (wire/peer MAX_RECONCILE_INSTANCES, 100k), so anti-entropy can
    # always repair it; the register benchmark puts 25k-50k instances in one service
    max_instances_per_service: int = 50_000
    # instances on the node; ~400 bytes each (bench/scale.py), 2M is ~1 GB: twice issue
    # 13's target of a million live instances
    max_instances: int = 2_000_000
    # bytes of instance metadata (each instance counted) plus service metadata; 512 MiB
    # is a million instances with 512 bytes each (the usual is tens of bytes)
    max_metadata_bytes: int = 512 * MIB
    # of it in one namespace: 0 is a quarter of max_metadata_bytes (128 MiB by default), so
    # one tenant confined to its namespace cannot take it all and leave every other
    # tenant's register with metadata refused (review23 F3); max_metadata_bytes: no share
    max_metadata_bytes_per_namespace: int = 0
    # tombstones (removed instances remembered so stale copies stay dead, ~350 bytes
    # each: 175 MB); above it the oldest are dropped first (core/store,
    # _enforce_tombstone_cap); churn of 830 removals/s for the 600 s they are kept
    max_tombstones: int = DEFAULT_MAX_TOMBSTONES
    # instances one client key may hold through one node (core/client_limits); needs
    # --key (a node without one has no client identities)
    max_instances_per_client: int = 200_000
    # ``services``/``cluster``/``stats`` per second, per client key (or connection, on a
    # node without a key) and per node; a burst of twice the rate is allowed
    read_rate_per_client: int = 200
    read_rate_per_node: int = 2_000
    # instance and config writes per second, per client key (or connection, on a node
    # without a key), counted by the node they arrive at: register, a register_batch's
    # entries, instance and service updates, config writes; not beats, session renewals
    # or deregistrations.  A burst of twice the rate is allowed.  0: no limit
    # (review83 F2: one key registered 20,000 instances/s through one node, every loop
    # turn of the cluster's nodes its)
    write_rate_per_client: int = 0
    # client sessions (core/sessions: a few hundred bytes each plus their index); one per
    # client process is the usual, so 100k is a hundred thousand clients per cluster
    max_sessions: int = DEFAULT_MAX_SESSIONS
    # sessions one client may hold, opened through this node (core/sessions, "Shares"):
    # per key, or per connection on a node without a key.  A client process needs one
    # per namespace it registers in; a key shared by a fleet needs one per process.
    # 0: a sixteenth of max_sessions (6,250 by default), so one client, or one stolen
    # key, cannot take the table from the others (review finding F-sessflood)
    max_sessions_per_client: int = 0
    # distinct services one client key may hold instances of in one namespace, through
    # this node, once a quarter or less of the namespace's max_services_per_namespace is
    # free (core/client_limits): applications sharing a namespace each keep room (review83
    # F3: one key took all 100,000).  0: a quarter of max_services_per_namespace
    max_services_per_client_in_namespace: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            zero = _ZERO_MEANS.get(f.name)
            least = 0 if zero is not None else 1
            if type(value) is not int or value < least:
                raise ConfigError(
                    f"[limits] {f.name} must be a whole number >= {least}, got {value!r}"
                    + (f" (0: {zero})" if zero is not None else "")
                )

    @property
    def metadata_per_namespace(self) -> int:
        """The share in effect: ``max_metadata_bytes_per_namespace``, or a quarter."""
        return self.max_metadata_bytes_per_namespace or max(
            1, self.max_metadata_bytes // METADATA_SHARE_DIVISOR
        )

    @property
    def services_per_client_in_namespace(self) -> int:
        """The share in effect: the setting, or max_services_per_namespace // 4."""
        return self.max_services_per_client_in_namespace or max(
            1, self.max_services_per_namespace // 4
        )

    @property
    def sessions_per_client(self) -> int:
        """The share in effect: ``max_sessions_per_client``, or max_sessions // 16."""
        return self.max_sessions_per_client or max(1, self.max_sessions // SESSION_SHARE_DIVISOR)


# settings whose 0 stands for a share of another (what it is, for the error)
_ZERO_MEANS = {
    "max_sessions_per_client": "max_sessions // 16",
    "max_metadata_bytes_per_namespace": "max_metadata_bytes // 4",
    "max_services_per_client_in_namespace": "max_services_per_namespace // 4",
    "write_rate_per_client": "no limit",
}
METADATA_SHARE_DIVISOR = 4


@dataclass(frozen=True, slots=True)
class QuotaExceeded:
    """A write over a quota: which limit, its value, and the message for the client."""

    limit: str
    value: int
    message: str


def _advice(limit: str, what: str) -> str:
    return f"{what}, or raise [limits] {limit} in the node config"


class Quotas:
    """Checks writes against a :class:`LimitsPolicy` and counts what it refused."""

    def __init__(self, policy: LimitsPolicy) -> None:
        self.policy = policy
        self.rejected: dict[str, int] = {}  # limit name -> writes refused

    def _exceeded(self, limit: str, message: str) -> QuotaExceeded:
        self.rejected[limit] = self.rejected.get(limit, 0) + 1
        return QuotaExceeded(limit, getattr(self.policy, limit), message)

    def _new_service(self, store: RegistryStore, key: ServiceKey, op: str) -> QuotaExceeded | None:
        """The checks for a service not known yet (no instances, no settings)."""
        p = self.policy
        ns = key.namespace
        in_namespace = store.namespaces.get(ns, 0)
        if in_namespace == 0 and len(store.namespaces) >= p.max_namespaces:
            return self._exceeded(
                "max_namespaces",
                f"{op}: quota reached: this node holds {len(store.namespaces)} namespaces "
                f"([limits] max_namespaces = {p.max_namespaces}); namespace {ns!r} would be "
                "a new one; "
                + _advice(
                    "max_namespaces", "use an existing namespace or remove a namespace's services"
                ),
            )
        if in_namespace >= p.max_services_per_namespace:
            return self._exceeded(
                "max_services_per_namespace",
                f"{op}: quota reached: namespace {ns!r} holds {in_namespace} services "
                f"([limits] max_services_per_namespace = {p.max_services_per_namespace}); "
                f"service {key.group}/{key.service} would be a new one; "
                + _advice(
                    "max_services_per_namespace", "deregister the instances of unused services"
                ),
            )
        if store.known_services >= p.max_services:
            return self._exceeded(
                "max_services",
                f"{op}: quota reached: this node holds {store.known_services} services "
                f"([limits] max_services = {p.max_services}); service {ns}/{key.group}/"
                f"{key.service} would be a new one; "
                + _advice("max_services", "deregister the instances of unused services"),
            )
        return None

    def _room_for_any_metadata(self, store: RegistryStore, namespace: str) -> bool:
        """True while no single write can reach a metadata limit (the usual case)."""
        p = self.policy
        return (
            store.metadata_bytes + METADATA_BYTES_BOUND <= p.max_metadata_bytes
            and store.metadata_by_namespace.get(namespace, 0) + METADATA_BYTES_BOUND
            <= p.metadata_per_namespace
        )

    def _metadata(
        self, store: RegistryStore, key: ServiceKey, op: str, grows: int, what: str
    ) -> QuotaExceeded | None:
        """The node's limit first (when both are reached, it is the one to raise), then
        the namespace's share."""
        if grows <= 0:
            return None
        p = self.policy
        if store.metadata_bytes + grows > p.max_metadata_bytes:
            return self._exceeded(
                "max_metadata_bytes",
                f"{op}: quota reached: metadata on this node totals {store.metadata_bytes} "
                f"bytes ([limits] max_metadata_bytes = {p.max_metadata_bytes}); {what} of "
                f"{key.namespace}/{key.group}/{key.service} would add {grows}; "
                + _advice("max_metadata_bytes", "use less metadata or deregister instances"),
            )
        in_ns = store.metadata_by_namespace.get(key.namespace, 0)
        share = p.metadata_per_namespace
        if in_ns + grows > share:
            default = "" if p.max_metadata_bytes_per_namespace else ": max_metadata_bytes // 4"
            return self._exceeded(
                "max_metadata_bytes_per_namespace",
                f"{op}: quota reached: metadata in namespace {key.namespace!r} totals {in_ns} "
                f"bytes on this node ([limits] max_metadata_bytes_per_namespace = {share}"
                f"{default}); {what} of {key.namespace}/{key.group}/{key.service} would add "
                f"{grows}; "
                + _advice(
                    "max_metadata_bytes_per_namespace",
                    "use less metadata or deregister instances of the namespace",
                ),
            )
        return None

    def check_register(
        self, store: RegistryStore, key: ServiceKey, iid: InstanceId, metadata: dict[str, str]
    ) -> QuotaExceeded | None:
        """None when ``register`` may go ahead; else the limit it would break."""
        p = self.policy
        svc = store.services.get(key)
        rec = svc.instances.get(iid) if svc is not None else None
        if rec is not None:  # already in: only its metadata can grow
            if metadata == rec.metadata or self._room_for_any_metadata(store, key.namespace):
                return None
            grows = metadata_size(metadata) - metadata_size(rec.metadata)
            return self._metadata(store, key, "register", grows, f"instance {iid}'s metadata")
        if svc is None and key not in store.settings:
            exceeded = self._new_service(store, key, "register")
            if exceeded is not None:
                return exceeded
        size = len(svc.instances) if svc is not None else 0
        if size >= p.max_instances_per_service:
            return self._exceeded(
                "max_instances_per_service",
                f"register: quota reached: service {key.namespace}/{key.group}/{key.service} "
                f"has {size} instances ([limits] max_instances_per_service = "
                f"{p.max_instances_per_service}); "
                + _advice("max_instances_per_service", "deregister instances of it"),
            )
        if store.instance_total >= p.max_instances:
            return self._exceeded(
                "max_instances",
                f"register: quota reached: this node holds {store.instance_total} instances "
                f"([limits] max_instances = {p.max_instances}); instance {iid} of "
                f"{key.namespace}/{key.group}/{key.service} would be a new one; "
                + _advice("max_instances", "deregister instances"),
            )
        if metadata and not self._room_for_any_metadata(store, key.namespace):
            grows = metadata_size(metadata)
            return self._metadata(store, key, "register", grows, f"instance {iid}'s metadata")
        return None

    def check_service_set(
        self, store: RegistryStore, key: ServiceKey, metadata: dict[str, str] | None
    ) -> QuotaExceeded | None:
        """None when ``service_set`` may go ahead; else the limit it would break."""
        current = store.settings.get(key)
        if current is None and key not in store.services:
            exceeded = self._new_service(store, key, "service_set")
            if exceeded is not None:
                return exceeded
        if metadata and not self._room_for_any_metadata(store, key.namespace):
            grows = metadata_size(metadata) - (metadata_size(current[2]) if current else 0)
            return self._metadata(store, key, "service_set", grows, "the service metadata")
        return None

    def result(self) -> dict[str, int]:
        """The quota part of ``stats``: refusals by limit."""
        return dict(self.rejected)
